"""``store.metrics`` per invocation in CloudWatch's Embedded Metric Format: every emitted line is
checked against the EMF specification's rules, its figures against ``store.metrics``, and the
composition with Powertools' ``Metrics`` is run for real."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stateless_state import InvalidArgument, Store
from stateless_state.cloudwatch import emf_documents, metric_document, publish_metrics
from stateless_state.testing import FakeLambdaContext
from tests.support.emf import check_emf


def figures(lines: list[str]) -> dict[str, dict[str, Any]]:
    docs = [json.loads(line) for line in lines]
    for doc in docs:
        check_emf(doc)
    return {doc["Operation"]: doc for doc in docs}


def test_an_invocation_publishes_what_it_cost_by_operation(moto_store: Store) -> None:
    lines: list[str] = []
    counter = moto_store.counter("orders#placed")
    moto_store.counter("warm-up").add(1)

    @publish_metrics(moto_store, namespace="Shop", dimensions={"stage": "prod"}, emit=lines.append)
    def handler(event: dict[str, Any], context: Any) -> int:
        counter.add(1)
        counter.add(2, token=event["id"])
        return counter.get()

    before = moto_store.metrics.snapshot()
    assert handler({"id": "e#1"}, FakeLambdaContext(10_000)) == 3
    spent = (moto_store.metrics.snapshot() - before).as_dict()
    docs = figures(lines)
    assert set(docs) == set(spent) == {"UpdateItem", "TransactWriteItems", "GetItem"}
    for operation, doc in docs.items():
        assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Shop"
        assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["stage", "Operation"]]
        assert doc["stage"] == "prod"
        assert doc["Requests"] == spent[operation]["requests"]
        assert doc["ConsumedWCU"] == spent[operation]["wcu"]
        assert doc["ConsumedRCU"] == spent[operation]["rcu"]
    assert docs["TransactWriteItems"]["ConsumedWCU"] >= 4, "a token add: two items"
    lines.clear()
    assert handler({"id": "e#1"}, FakeLambdaContext(10_000)) == 4, "1 more, the token replayed"
    assert figures(lines)["TransactWriteItems"]["ConditionFailures"] == 1, "the replayed token"


def test_a_failing_invocation_still_reports_and_an_idle_one_prints_nothing(
    moto_store: Store,
) -> None:
    lines: list[str] = []
    publish = publish_metrics(moto_store, emit=lines.append)
    with pytest.raises(RuntimeError), publish:
        moto_store.counter("c").add(1)
        raise RuntimeError("the handler failed after a write")
    assert figures(lines)["UpdateItem"]["Requests"] == 1
    lines.clear()
    with publish:
        pass
    assert lines == []


def test_it_composes_with_powertools_metrics(
    moto_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = Metrics(namespace="Shop", service="orders")
    metrics.set_default_dimensions(env="prod")

    @metrics.log_metrics
    @publish_metrics(moto_store, powertools=metrics)
    def handler(event: dict[str, Any], context: Any) -> str:
        metrics.add_metric(name="OrdersPlaced", unit=MetricUnit.Count, value=1)
        moto_store.counter("orders").add(1)
        return "ok"

    assert handler({}, FakeLambdaContext(10_000)) == "ok"
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    theirs = [d for d in docs if "OrdersPlaced" in d]
    ours = [d for d in docs if "Operation" in d]
    assert len(theirs) == 1 and len(ours) == 1
    for doc in docs:
        check_emf(doc)
        assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Shop"
        assert (doc["service"], doc["env"]) == ("orders", "prod")
    assert ours[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["service", "env", "Operation"]
    ]
    assert ours[0]["Operation"] == "UpdateItem"
    assert ours[0]["Requests"] == moto_store.metrics.by_operation["UpdateItem"].requests == 1


def test_bad_settings_are_refused_up_front(moto_store: Store) -> None:
    with pytest.raises(InvalidArgument, match="Operation"):
        publish_metrics(moto_store, dimensions={"Operation": "x"})
    with pytest.raises(InvalidArgument, match="Requests"):
        publish_metrics(moto_store, dimensions={"Requests": "x"})
    with pytest.raises(InvalidArgument, match="namespace"):
        publish_metrics(moto_store, namespace="x" * 256)
    with pytest.raises(InvalidArgument, match="30"):
        emf_documents(moto_store.metrics, dimensions={f"d{i}": "v" for i in range(30)})
    with pytest.raises(InvalidArgument, match="Store"):
        publish_metrics(object())


@pytest.mark.parametrize(
    "dimensions",
    [
        {"stage": ""},
        {"stage": "   "},
        {"stage": "x" * 1025},
        {"stage": "prod 😀"},
        {"stage": "pr\x00od"},
        {"stage": "pr\nod"},
        {"": "prod"},
        {" ": "prod"},
        {":stage": "prod"},
        {"s" * 256: "prod"},
        {"stäge": "prod"},
        {"st\tage": "prod"},
    ],
)
def test_dimensions_cloudwatch_would_drop_are_refused_when_configured(
    moto_store: Store, dimensions: dict[str, str]
) -> None:
    with pytest.raises(InvalidArgument):
        publish_metrics(moto_store, dimensions=dimensions)
    with pytest.raises(InvalidArgument):
        emf_documents(moto_store.metrics, dimensions=dimensions)


@pytest.mark.parametrize("namespace", ["   ", ":Orders", "AWS/Lambda", "Ordérs", "Or\x00ders"])
def test_namespaces_cloudwatch_would_refuse_are_refused(moto_store: Store, namespace: str) -> None:
    with pytest.raises(InvalidArgument, match="namespace"):
        publish_metrics(moto_store, namespace=namespace)


def test_limits_themselves_are_accepted(moto_store: Store) -> None:
    publish_metrics(
        moto_store, namespace="N" * 255, dimensions={"d" * 255: "v" * 1024, "a:b #/": "x y"}
    )


def test_a_metric_document_carries_its_values_units_and_dimensions() -> None:
    doc = metric_document(
        "Shop",
        {"Age": 1.5, "Waiting": 2},
        units={"Age": "Seconds"},
        dimensions={"Table": "t", "Stream": "s #1"},
        timestamp=1_700_000_000.25,
    )
    check_emf(doc)
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert directive == {
        "Namespace": "Shop",
        "Dimensions": [["Table", "Stream"]],
        "Metrics": [{"Name": "Age", "Unit": "Seconds"}, {"Name": "Waiting", "Unit": "Count"}],
    }
    assert doc["_aws"]["Timestamp"] == 1_700_000_000_250
    assert (doc["Age"], doc["Waiting"], doc["Table"], doc["Stream"]) == (1.5, 2, "t", "s #1")


@pytest.mark.parametrize(
    ("values", "units", "dimensions", "named"),
    [
        ({"Age": float("nan")}, None, None, "finite"),
        ({"Age": True}, None, None, "finite"),
        ({"Age": 1}, {"Age": "Hours"}, None, "Hours"),
        ({"Âge": 1}, None, None, "metric name"),
        ({}, None, None, "1 to 100"),
        ({f"m{i}": i for i in range(101)}, None, None, "1 to 100"),
        ({"Age": 1}, None, {"Age": "x"}, "Age"),
        ({"Age": 1}, None, {"Stream": "événements"}, "Stream"),
    ],
)
def test_a_metric_cloudwatch_would_drop_is_refused(
    values: dict[str, float],
    units: dict[str, str] | None,
    dimensions: dict[str, str] | None,
    named: str,
) -> None:
    with pytest.raises(InvalidArgument, match=named):
        metric_document("Shop", values, units=units, dimensions=dimensions)
