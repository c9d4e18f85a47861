"""What a user trusts before installing: the metadata says what the package is, one version
everywhere, a license file that is the license the metadata names, a changelog whose newest
entry is this version, a versioning policy that covers the item layout, and the testing extra
the pytest plugin needs. (Building and installing the wheel is ``make check-dist``.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import stateless_state

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_one_version_everywhere() -> None:
    assert "version" not in PROJECT and PROJECT["dynamic"] == ["version"]
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["dynamic"]["version"] == {"attr": "stateless_state.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", stateless_state.__version__)
    changelog = (ROOT / "CHANGELOG.md").read_text()
    newest = re.search(r"^## (\S+)", changelog, re.MULTILINE)
    assert newest is not None and newest.group(1) == stateless_state.__version__


def test_the_license_file_is_the_license_the_metadata_names() -> None:
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text, "the whole license, not its first page"
    assert not any("License ::" in c for c in PROJECT["classifiers"]), "PEP 639: the expression"


def test_classifiers_and_urls() -> None:
    classifiers = set(PROJECT["classifiers"])
    for wanted in ("Typing :: Typed", "Framework :: Pytest", "Programming Language :: Python :: 3"):
        assert wanted in classifiers
    minimum = re.fullmatch(r">=3\.(\d+)", PROJECT["requires-python"])
    assert minimum is not None
    assert f"Programming Language :: Python :: 3.{minimum.group(1)}" in classifiers
    assert set(PROJECT["urls"]) >= {"Homepage", "Documentation", "Repository", "Changelog"}


def test_the_testing_extra_carries_what_the_plugin_imports() -> None:
    extras = PROJECT["optional-dependencies"]
    names = {re.split(r"[\[<>=~]", r)[0] for r in extras["testing"]}
    assert names == {"moto", "hypothesis", "pytest"}
    assert "dynamodb" in next(r for r in extras["testing"] if r.startswith("moto["))
    dev = {re.split(r"[\[<>=~]", r)[0] for r in extras["dev"]}
    assert {"build", "twine"} <= dev


def test_the_versioning_policy_covers_the_item_layout_and_is_linked() -> None:
    policy = (ROOT / "docs" / "versioning.md").read_text()
    for words in ("item layout", "Read both", "Write the new", "Migrate, then drop the old"):
        assert words in policy, words
    for linking in ("README.md", "CHANGELOG.md"):
        assert "docs/versioning.md" in (ROOT / linking).read_text(), linking
