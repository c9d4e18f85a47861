"""How many feeds the many-feeds template can declare, and where the rest go.

``FeedsDeclaration`` becomes the functions' ``FEEDS`` variable, and Lambda caps all of a
function's environment variables at 4 KB together; ``FEED_LOCATIONS`` grows with the feeds
too. The README states how many feeds with a Redshift target fit (measured here, as ``feeds show
--json`` prints them, and as large as a real stack's names make them), and sends a larger set,
such as the fifty feeds of a data platform, to a file shipped with the code
(``FeedsDeclarationFile``, the ``FEEDS_FILE`` variable), which the Makefile ships.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from patterns.config import feeds_settings
from tests.examples.test_feeds_template import (
    REDSHIFT,
    SECRET_ARN,
    WORKGROUP_ARN,
    Refused,
    Resolved,
)
from tests.support.sam import sam_build
from tools.lambda_artifact import ROOT, function

EXAMPLE = ROOT / "examples" / "s3_feeds"
LAMBDA_ENVIRONMENT_LIMIT = 4 * 1024
BUCKET = "my-feeds-bucket"
# CloudFormation's names for a stack "feeds": the table's physical name.
TABLE = "feeds-StateTable-1A2B3C4D5E6F7"


def declaration(n: int) -> dict[str, Any]:
    return {
        "revision": 1,
        "feeds": [
            {
                "name": f"feed{i:02d}",
                "bucket": BUCKET,
                "prefix": f"feed{i:02d}/",
                "target": {**REDSHIFT, "table": f"analytics.feed{i:02d}"},
                "thresholds": {"count": 100, "bytes": None, "age": 300},
            }
            for i in range(n)
        ],
    }


def deployed(n: int, *, in_file: bool = False) -> Resolved:
    """The template for ``n`` feeds, each at its own location, declared in the environment or
    in ``feeds.json``."""
    feeds = declaration(n)
    where = (
        {"FeedsDeclarationFile": "feeds.json"}
        if in_file
        else {"FeedsDeclaration": json.dumps(feeds, separators=(",", ":"))}
    )
    locations = [f"{f['bucket']}/{f['prefix']}" for f in feeds["feeds"]]
    parameters = {"FeedBuckets": [BUCKET], "FeedLocations": locations, **where}
    return Resolved(
        {**parameters, "RedshiftWorkgroupArn": WORKGROUP_ARN, "RedshiftSecretArn": SECRET_ARN},
        TABLE,
    )


def environment_bytes(template: Resolved) -> int:
    """The size Lambda checks against 4 KB, at most: the variables as a JSON object (names,
    values, and the quotes and separators around them)."""
    return len(json.dumps(template.environment(), ensure_ascii=False).encode())


def fitting() -> int:
    return max(n for n in range(60) if environment_bytes(deployed(n)) <= LAMBDA_ENVIRONMENT_LIMIT)


def test_the_readme_states_how_many_redshift_feeds_fit_in_the_environment() -> None:
    fits = fitting()
    assert 5 <= fits < 50, fits  # a few: the template is no place for a data platform's feeds
    readme = " ".join((EXAMPLE / "README.md").read_text().split())
    stated = re.findall(r"at most (\d+) feeds with a Redshift target", readme)
    assert stated == [str(fits)], (stated, fits)


def test_fifty_feeds_declared_in_a_file_leave_the_environment_small() -> None:
    """The documented route for many feeds: the file's path in ``FEEDS_FILE``, ``FEEDS``
    empty, and the environment (fifty locations included) well within 4 KB."""
    template = deployed(50, in_file=True)
    env = template.environment()
    assert env["FEEDS_FILE"] == "feeds.json" and env["FEEDS"] == ""
    assert len(env["FEED_LOCATIONS"].split(",")) == 50
    assert environment_bytes(template) <= LAMBDA_ENVIRONMENT_LIMIT
    readme = " ".join((EXAMPLE / "README.md").read_text().split())
    assert "FeedsDeclarationFile=feeds.json" in readme


def test_a_declaration_in_both_parameters_is_refused_at_deploy() -> None:
    both = {
        "RedshiftWorkgroupArn": WORKGROUP_ARN,
        "RedshiftSecretArn": SECRET_ARN,
        "FeedsDeclaration": '{"revision": 1, "feeds": []}',
    }
    with pytest.raises(Refused, match="not both"):
        Resolved({**both, "FeedsDeclarationFile": "feeds.json"}, TABLE)
    assert Resolved(both, TABLE).environment()["FEEDS_FILE"] == ""


def test_the_build_ships_feeds_json_beside_the_handler(tmp_path: Path) -> None:
    """``sam build`` of an example holding ``feeds.json`` (as the README says to write it):
    each function's code is the artifact and the file, at the top of the code directory,
    where ``FEEDS_FILE=feeds.json`` names it, and the cold start declares its fifty feeds."""
    text = json.dumps(declaration(50), indent=2)
    artifacts = sam_build(EXAMPLE, "LoaderFunction", tmp_path, files={"feeds.json": text})
    built = {p.relative_to(artifacts).as_posix() for p in artifacts.rglob("*") if p.is_file()}
    assert built == {*function(EXAMPLE / "handler.py").files, "feeds.json"}
    # The function's settings, as its cold start reads them from the code directory.
    env = {**deployed(50, in_file=True).environment(), "LAMBDA_TASK_ROOT": str(artifacts)}
    settings = feeds_settings(env, store=object(), s3=object())  # type: ignore[arg-type]
    assert [f.name for f in settings["declared"]] == [f"feed{i:02d}" for i in range(50)]
