"""The many-feeds template's read grants against the feeds' locations: never wider.

Each ``FeedLocations`` entry becomes the grant ``arn:aws:s3:::<location>*`` (CloudFormation
cannot transform a string character by character, so it cannot escape one). IAM reads ``*`` and
``?`` there as wildcards and ``${...}`` as a policy variable, and the library accepts keys and
prefixes holding them (to S3 they are opaque strings): a prefix ``raw*/`` would grant
``rawsecrets/...``, and a location written as its bucket alone (``my-feeds-bucket`` for the
whole bucket) would grant ``my-feeds-bucket-payroll`` too. So the template refuses both by the
parameter's ``AllowedPattern``, and tells why; every location it accepts grants exactly its
keys. The declared feeds are checked against the same locations (``FEED_LOCATIONS``) at cold
start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patterns.config import feeds_settings
from patterns.feeds import Feed, LocalTarget
from stateless_state import InvalidArgument
from tests.examples.test_feeds_template import SECRET_ARN, WORKGROUP_ARN, Refused, Resolved, allows

BUCKET = "my-feeds-bucket"
REDSHIFT = {"RedshiftWorkgroupArn": WORKGROUP_ARN, "RedshiftSecretArn": SECRET_ARN}
READS = {"s3:GetObject", "s3:GetObjectVersion"}
README = Path(__file__).parents[2] / "examples" / "s3_feeds" / "README.md"


def resolved(locations: list[str], buckets: list[str] | None = None) -> Resolved:
    given_buckets = buckets or sorted({loc.split("/", 1)[0] for loc in locations})
    return Resolved({"FeedBuckets": given_buckets, "FeedLocations": locations, **REDSHIFT}, "t")


def reads(template: Resolved, function: str) -> set[str]:
    return {r for a, r in template.granted(function) if a in READS}


@pytest.mark.parametrize(
    ("location", "outside"),
    [
        (f"{BUCKET}/raw*/", f"{BUCKET}/rawsecrets/payroll.csv"),
        (f"{BUCKET}/ra?/", f"{BUCKET}/rab/payroll.csv"),
        (f"{BUCKET}/${{aws:username}}/", f"{BUCKET}/admin/payroll.csv"),
        (f"{BUCKET}/${{*}}/", f"{BUCKET}/x/payroll.csv"),  # IAM's escape, still refused
        (BUCKET, f"{BUCKET}-payroll/2026/salaries.csv"),  # the whole bucket, without its slash
        (f"{BUCKET}*/", f"{BUCKET}-payroll/2026/salaries.csv"),
    ],
)
def test_a_location_whose_grant_would_read_outside_it_is_refused(
    location: str, outside: str
) -> None:
    bucket, _, prefix = location.partition("/")
    if bucket == BUCKET:  # the library takes such a prefix: only the template can refuse it
        Feed(name="f", bucket=bucket, prefix=prefix, target=LocalTarget("/tmp/x.db", "f")).check()
    where, _, key = outside.partition("/")
    assert (where, key.startswith(prefix)) != (bucket, True), "not the location's"
    with pytest.raises(Refused, match="FeedLocations"):
        resolved([f"{BUCKET}/orders/", location], [BUCKET])


def test_the_whole_bucket_is_its_name_and_a_slash() -> None:
    (grant,) = reads(resolved([f"{BUCKET}/"]), "LoaderFunction")
    assert grant == f"arn:aws:s3:::{BUCKET}/*"
    assert allows(grant, f"arn:aws:s3:::{BUCKET}/any/key.csv")
    assert not allows(grant, f"arn:aws:s3:::{BUCKET}-payroll/2026/salaries.csv")


def test_the_refusal_says_why_in_the_template_and_the_readme() -> None:
    spec = Resolved({**REDSHIFT}, "t").template["Parameters"]["FeedLocations"]
    why = str(spec["ConstraintDescription"])
    for piece in ("bucket/prefix", "bucket/", "*, ? or $", "wildcards", "policy variables"):
        assert piece in why, piece
    readme = " ".join(README.read_text().split())
    for piece in ("`*`, `?` or `$`", "wildcards", "policy variable", "`bucket/`"):
        assert piece in readme, piece


# Bucket names near one another (one a prefix of the next), and key characters IAM or S3 treat
# specially somewhere: wildcards, the policy variable's, the ARN's and the URL's separators.
BUCKETS = st.sampled_from([BUCKET, f"{BUCKET}-payroll", "my-feeds", "feeds.example.com"])
HOSTILE = st.text(alphabet="ab/*?${}:.-_ %+=&é\u00a0\x7f", max_size=12)


@st.composite
def keys_near(draw: st.DrawFn, prefix: str) -> str:
    """A key under ``prefix``, or one a character away from being under it."""
    key = draw(HOSTILE)
    if prefix and draw(st.booleans()):
        i = draw(st.integers(0, len(prefix) - 1))
        other = draw(st.sampled_from("ab/*?$"))
        return prefix[:i] + other + prefix[i + 1 :] + key
    return prefix + key if draw(st.booleans()) else key


@settings(max_examples=60, deadline=None)
@given(bucket=BUCKETS, prefix=HOSTILE, slash=st.booleans(), data=st.data())
def test_a_location_the_template_accepts_grants_exactly_its_keys(
    bucket: str, prefix: str, slash: bool, data: st.DataObject
) -> None:
    """Drawn locations, written with or without their slash: the template refuses every one
    holding a character IAM would read, or no slash; for the others, each function reads
    exactly the keys under the location (drawn keys, many a character away from it)."""
    location = f"{bucket}/{prefix}" if slash else bucket + prefix.replace("/", "")
    try:
        template = resolved([location], [bucket])
    except Refused:
        assert not slash or any(c in prefix for c in "*?$"), location
        return
    assert slash and not any(c in prefix for c in "*?$")
    for function in ("LoaderFunction", "SweeperFunction"):
        grants = reads(template, function)
        assert grants == {f"arn:aws:s3:::{bucket}/{prefix}*"}
        (lists,) = {r for a, r in template.granted(function) if a == "s3:ListBucket"}
        assert lists == f"arn:aws:s3:::{bucket}"
    other_bucket = data.draw(BUCKETS)
    key = data.draw(keys_near(prefix))
    arn = f"arn:aws:s3:::{other_bucket}/{key}"
    inside = other_bucket == bucket and key.startswith(prefix)
    assert any(allows(g, arn) for g in grants) == inside, (location, arn)


def test_the_functions_are_told_the_locations_the_grants_cover() -> None:
    """``FEED_LOCATIONS``: the parameter's entries, exactly as given, joined by commas, in the
    environment every function gets (none of them replaces it)."""
    locations = [f"{BUCKET}/orders/", f"{BUCKET}/events/2026 Q1/", "other-bucket/"]
    template = resolved(locations)
    assert template.environment()["FEED_LOCATIONS"] == ",".join(locations)
    for name, resource in template.template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            assert "Environment" not in resource["Properties"], name


def test_a_declared_feed_outside_the_locations_is_refused_at_cold_start() -> None:
    """FEEDS and FeedLocations come from one template: a declared feed the grants cannot read
    fails the cold start, naming the feed, rather than every load of it later."""

    def feed(name: str, bucket: str) -> dict[str, Any]:
        return {
            "name": name,
            "bucket": bucket,
            "prefix": f"{name}/",
            "target": {"kind": "local", "path": "/tmp/x.db", "table": name},
            "thresholds": {"count": 4, "bytes": None, "age": 1},
        }

    declaration = {"revision": 1, "feeds": [feed("orders", BUCKET), feed("hr", "another-bucket")]}
    template = Resolved(
        {
            "FeedBuckets": [BUCKET],
            "FeedLocations": [f"{BUCKET}/orders/"],
            "FeedsDeclaration": json.dumps(declaration),
            **REDSHIFT,
        },
        "state-table",
    )
    granted = reads(template, "LoaderFunction")
    assert not any(allows(r, "arn:aws:s3:::another-bucket/hr/x.json") for r in granted)
    with pytest.raises(InvalidArgument, match="hr") as refused:
        feeds_settings(template.environment(), store=object(), s3=object())  # type: ignore[arg-type]
    assert "FEED_LOCATIONS" in str(refused.value)


@pytest.mark.parametrize("prefix", ["", "my manifests/", "m*/"])
def test_a_manifest_prefix_the_library_refuses_is_refused_at_deploy(prefix: str) -> None:
    with pytest.raises(Refused, match="ManifestPrefix"):
        Resolved({**REDSHIFT, "ManifestPrefix": prefix}, "state")
