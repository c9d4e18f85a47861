"""The checks of CloudWatch Embedded Metric Format documents the tests share."""

from __future__ import annotations

from typing import Any

UNITS = {"Count", "None", "Seconds", "Milliseconds", "Bytes", "Percent"}


def check_emf(doc: dict[str, Any]) -> None:
    """The EMF specification's structural rules (CloudWatch drops a document that breaks one)."""
    meta = doc["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000
    directives = meta["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    for directive in directives:
        assert isinstance(directive["Namespace"], str) and 0 < len(directive["Namespace"]) <= 255
        for dimension_set in directive["Dimensions"]:
            assert 0 < len(dimension_set) <= 30
            for name in dimension_set:
                assert isinstance(doc[name], str), f"dimension {name} must be a string member"
        assert 0 < len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert 0 < len(metric["Name"]) <= 1024
            values = doc[metric["Name"]]
            for value in values if isinstance(values, list) else [values]:
                assert isinstance(value, int | float) and not isinstance(value, bool)
            assert metric.get("Unit", "None") in UNITS
