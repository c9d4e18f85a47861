"""Idempotency side by side with Powertools for AWS Lambda (``@idempotent`` with
``DynamoDBPersistenceLayer``), on one DynamoDB Local, measured the same way for both.

Both clients carry the same meter (botocore event hooks): every request, botocore's retries
included, asks for ``ReturnConsumedCapacity`` and is counted. DynamoDB Local reports no units for
a write whose condition failed, and a flat 2 per transaction; AWS bills a failed conditional write
as the write it would have been (1 WCU for a small item) and a transaction 2 WCU per item, so
``wcu`` here is AWS's bill: the units reported, or that rule where none are.

The zombie scenario: a first invocation outlives its in-progress expiry (its Lambda context said
1 s), a retry takes the key over and answers, then the first finishes (or fails). Each side's
table is read afterwards, and a third delivery shows what a client would get.

Alone (``make bench`` runs it as its §6): ``.venv/bin/python -m benchmarks.peer_idempotency``.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stateless_state import LeaseLost, Store, commit_with_completion, idempotent
from stateless_state import pynamodb as ss_pynamodb
from stateless_state.store import TTL_ATTRIBUTE, table_schema
from stateless_state.table import transaction_units
from stateless_state.testing import DynamoDBLocal, FakeLambdaContext, fresh_table_name

_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


@dataclass
class Meter:
    """Requests and AWS-billed capacity of every DynamoDB call one client makes."""

    requests: int = 0
    wcu: float = 0.0
    rcu: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _pending: threading.local = field(default_factory=threading.local, repr=False)

    def attach(self, client: Any) -> Meter:
        client.meta.events.register("before-parameter-build.dynamodb", self._ask)
        client.meta.events.register("after-call.dynamodb", self._count)
        return self

    def _ask(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")
        self._pending.items = len(params.get("TransactItems", [])) or 1
        self._pending.request = params

    def _count(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        consumed = parsed.get("ConsumedCapacity")
        reported = sum(
            float(c.get("CapacityUnits", 0))
            for c in (consumed if isinstance(consumed, list) else [consumed] if consumed else [])
        )
        write = model.name in _WRITES or model.name == "TransactWriteItems"
        if model.name == "TransactWriteItems":
            reported = max(
                reported, transaction_units(self._pending.request.get("TransactItems", []))
            )
        elif write and not reported:
            reported = 1.0  # a failed conditional write: billed as the write it would have been
        with self._lock:
            self.requests += 1 + int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0))
            if write:
                self.wcu += reported
            else:
                self.rcu += reported

    def snapshot(self) -> tuple[int, float, float]:
        with self._lock:
            return self.requests, self.wcu, self.rcu


@dataclass
class Side:
    """One implementation under test: its decorated handlers and its meter."""

    name: str
    plain: Callable[[dict[str, Any], Any], Any]
    with_effect: Callable[[dict[str, Any], Any], Any]
    meter: Meter
    read_record: Callable[[str], dict[str, Any] | None]


def _powertools(engine: DynamoDBLocal, effect: Any) -> Side:
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
    )
    from aws_lambda_powertools.utilities.idempotency import idempotent as pt_idempotent

    client = engine.client()
    table = fresh_table_name("powertools")
    client.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    meter = Meter().attach(client)
    # The body's own save goes through PynamoDB's client: it is part of what Powertools costs.
    meter.attach(effect._get_connection().connection.client)
    layer = DynamoDBPersistenceLayer(table_name=table, boto3_client=client)
    config = IdempotencyConfig(event_key_jmespath="id")

    @pt_idempotent(persistence_store=layer, config=config)
    def plain(event: dict[str, Any], context: Any) -> Any:
        return _body(event)

    @pt_idempotent(persistence_store=layer, config=IdempotencyConfig(event_key_jmespath="id"))
    def with_effect(event: dict[str, Any], context: Any) -> Any:
        result = _body(event)
        # Powertools has no way to commit this with its completion: it is written here, once
        # per body run.
        effect(event["id"], event.get("who", "x"), result=str(result)).save()
        return result

    def read_record(key: str) -> dict[str, Any] | None:
        items = client.scan(TableName=table, ConsistentRead=True)["Items"]
        found = [i for i in items if i["id"]["S"].endswith(_md5(key))]
        return {k: next(iter(v.values())) for k, v in found[0].items()} if found else None

    return Side("Powertools", plain, with_effect, meter, read_record)


def _md5(key: str) -> str:
    import hashlib
    import json

    # Powertools' key: the function's name, then the md5 of the selected value's JSON.
    return hashlib.md5(json.dumps(key).encode()).hexdigest()


def _ours(engine: DynamoDBLocal, effect: Any, *, index: bool = False) -> Side:
    """Our side. ``index=False``: on a table shaped as Powertools' (a key and TTL, no index),
    which is all idempotency needs; ``index=True``: on the shared table of
    :func:`~stateless_state.store.table_schema`, whose sparse index DynamoDB Local maintains on
    every write (see :func:`index_cost`)."""
    client = engine.client()
    store = Store(fresh_table_name("ours"), client=client)
    if index:
        store.create_table()
    else:
        client.create_table(TableName=store.table_name, **_without_index(table_schema()))
        client.update_time_to_live(
            TableName=store.table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
    meter = Meter().attach(client)

    @idempotent(store, key="id", namespace="bench.plain")
    def plain(event: dict[str, Any], context: Any) -> Any:
        return _body(event)

    @idempotent(store, key="id", namespace="bench.effect")
    def with_effect(event: dict[str, Any], context: Any) -> Any:
        result = _body(event)
        commit_with_completion(
            ss_pynamodb.save(effect(event["id"], event.get("who", "x"), result=str(result)))
        )
        return result

    return Side(
        "stateless_state" + (" (shared table)" if index else ""),
        plain,
        with_effect,
        meter,
        store.idempotency("bench.effect").record,
    )


def _without_index(schema: dict[str, Any]) -> dict[str, Any]:
    keys = {k["AttributeName"] for k in schema["KeySchema"]}
    return {
        **{k: v for k, v in schema.items() if k != "GlobalSecondaryIndexes"},
        "AttributeDefinitions": [
            a for a in schema["AttributeDefinitions"] if a["AttributeName"] in keys
        ],
    }


def index_cost(engine: DynamoDBLocal, writes: int) -> tuple[float, float]:
    """Median ms of one small ``PutItem`` on two tables of the shared schema, without and with
    its sparse index, the items carrying no index key: what DynamoDB Local adds for an index
    the write never reaches. (On AWS such a write is not written to the index at all, and an
    index never holds up the base table's write.)"""
    client = engine.client()
    tables = []
    for schema in (_without_index(table_schema()), table_schema()):
        name = fresh_table_name("index-cost")
        client.create_table(TableName=name, **schema)
        tables.append(name)
    latencies: list[list[float]] = [[], []]
    for i in range(writes):
        for n in (0, 1) if i % 2 == 0 else (1, 0):
            item = {"pk": {"S": f"k{i}"}, "sk": {"S": "idem"}, "status": {"S": "in_progress"}}
            started = time.perf_counter()
            client.put_item(TableName=tables[n], Item=item)
            latencies[n].append((time.perf_counter() - started) * 1000)
    return statistics.median(latencies[0]), statistics.median(latencies[1])


def _body(event: dict[str, Any]) -> Any:
    pause = float(event.get("sleep", 0))
    if pause:
        time.sleep(pause)
    if event.get("fail"):
        raise RuntimeError(f"{event.get('who')} failed")
    return {"who": event.get("who", "x"), "n": 0}


def _interleaved(
    sides: list[Side], call: Callable[[Side], Callable[..., Any]], events: list[dict[str, Any]]
) -> dict[str, tuple[float, float, float]]:
    """Requests, WCU and median latency (ms) per call of each side over ``events``, the sides'
    calls interleaved (and the one going first alternating), so drift in the engine or the
    machine weighs on both alike. Each side's meter sees only its own clients."""
    before = {side.name: side.meter.snapshot() for side in sides}
    latencies: dict[str, list[float]] = {side.name: [] for side in sides}
    for i, event in enumerate(events):
        for side in sides if i % 2 == 0 else sides[::-1]:
            started = time.perf_counter()
            call(side)({**event, "id": f"{side.name}-{event['id']}"}, FakeLambdaContext(30_000))
            latencies[side.name].append((time.perf_counter() - started) * 1000)
    out = {}
    for side in sides:
        after, then = side.meter.snapshot(), before[side.name]
        out[side.name] = (
            (after[0] - then[0]) / len(events),
            (after[1] - then[1]) / len(events),
            statistics.median(latencies[side.name]),
        )
    return out


def _effects(effect: Any, key: str) -> list[str]:
    return sorted(e.invocation for e in effect.query(key, consistent_read=True))


def _zombie(side: Side, effect: Any, *, fails: bool) -> dict[str, str]:
    """A (context of 1 s, body 1.6 s) outlives its claim; B takes over at 1.2 s and answers;
    then A finishes (or raises). What is in the table, and what a third delivery gets."""
    key = f"zombie-{'fails' if fails else 'finishes'}-{uuid.uuid4().hex[:8]}"
    outcome: dict[str, str] = {}

    def first() -> None:
        event = {"id": key, "who": "A", "sleep": 1.6, "fail": fails}
        try:
            side.with_effect(event, FakeLambdaContext(1_000))
            outcome["A"] = "returned its result"
        except LeaseLost:
            outcome["A"] = "LeaseLost (its result and save not written)"
        except RuntimeError:
            outcome["A"] = "raised"

    a = threading.Thread(target=first)
    a.start()
    time.sleep(1.2)
    b = side.with_effect({"id": key, "who": "B"}, FakeLambdaContext(30_000))
    a.join()
    record = side.read_record(key) or {}
    stored = str(record.get("data") or record.get("result") or "")
    runs_before = len(_effects(effect, key))
    third = side.with_effect({"id": key, "who": "C"}, FakeLambdaContext(30_000))
    return {
        "B answered": str(b["who"]),
        "A then": outcome["A"],
        "record after A": (
            "deleted"
            if not record
            else f"{record.get('status')}, result of {'A' if 'A' in stored else 'B'}"
        ),
        "side effects saved": f"{runs_before} ({', '.join(_effects(effect, key)[:runs_before])})",
        "a third delivery": (
            f"replays {third['who']}" if third["who"] != "C" else "runs the body again (C)"
        ),
        "side effects after it": str(len(_effects(effect, key))),
    }


def run(engine: DynamoDBLocal, calls: int) -> dict[str, Any]:
    """Both sides: cost and latency per first call and per replay (with and without a side
    effect), and the two zombie scenarios."""
    from tests.support.pynamodb_models import effect_model

    os.environ.setdefault("AWS_LAMBDA_FUNCTION_NAME", "bench")
    effect = effect_model(engine)
    sides = [_powertools(engine, effect), _ours(engine, effect)]
    shared = _ours(engine, effect, index=True)
    out: dict[str, Any] = {"calls": calls, "rows": {s.name: {} for s in sides}}
    for side in [*sides, shared]:
        side.plain({"id": "warm-up"}, FakeLambdaContext(30_000))
    salt = uuid.uuid4().hex[:6]
    events = [{"id": f"{salt}-{i}"} for i in range(calls)]
    effect_events = [{"id": f"{salt}-e{i}", "who": "A"} for i in range(calls)]
    for row, call, batch in (
        ("first call", lambda s: s.plain, events),
        ("replay", lambda s: s.plain, events),
        ("first call + a model save", lambda s: s.with_effect, effect_events),
        ("replay (with the save)", lambda s: s.with_effect, effect_events),
    ):
        for name, figures in _interleaved(sides, call, batch).items():
            out["rows"][name][row] = figures
    out["shared"] = _interleaved(
        [sides[0], shared], lambda s: s.plain, [{"id": f"{salt}-s{i}"} for i in range(calls)]
    )
    out["index_cost"] = index_cost(engine, calls)
    out["zombie"] = {side.name: _zombie(side, effect, fails=False) for side in sides}
    out["zombie_fails"] = {side.name: _zombie(side, effect, fails=True) for side in sides}
    return out


def main() -> None:
    """Run this section alone on a DynamoDB Local of its own and print its markdown."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--calls", type=int, default=400, help="distinct keys per row")
    args = parser.parse_args()
    with DynamoDBLocal() as engine:
        results = run(engine, args.calls)
    print("\n".join(markdown(results)))


def markdown(results: dict[str, Any]) -> list[str]:
    """The section of ``RESULTS.md``."""
    rows = results["rows"]
    theirs, ours = rows["Powertools"], rows["stateless_state"]
    lines = [
        "## 6. Idempotency against Powertools (`@idempotent`, `DynamoDBPersistenceLayer`)",
        "",
        f"{results['calls']} distinct keys per row, each called once (first call) and then "
        "again (replay), with no local cache on either side; the same meter on both clients "
        "(requests include botocore's retries; WCU as AWS bills them, a failed conditional "
        "write included). Latency is the median per call on DynamoDB Local, the two sides' "
        "calls interleaved, as a ratio ours / Powertools. With a side effect, the body saves "
        "one PynamoDB model: Powertools' body saves it itself, ours hands it to "
        "`commit_with_completion` (one transaction with the completion). Both sides' first "
        "claim is a conditional `PutItem` (ours writes fence 1; only a takeover of a record "
        "that exists, released or expired, is an `UpdateItem` adding to the fence), and a "
        "replay is that `PutItem` failing its condition. Alone: "
        "`.venv/bin/python -m benchmarks.peer_idempotency`.",
        "",
        "| call | Powertools req / WCU | ours req / WCU | latency ours / Powertools |",
        "|---|---:|---:|---:|",
    ]
    for call, (req_t, wcu_t, ms_t) in theirs.items():
        req_o, wcu_o, ms_o = ours[call]
        lines.append(
            f"| {call} | {req_t:.2f} / {wcu_t:.2f} | {req_o:.2f} / {wcu_o:.2f} | "
            f"{ms_o / ms_t:.2f} ({ms_o:.1f} / {ms_t:.1f} ms) |"
        )
    req_t, wcu_t, ms_t = results["shared"]["Powertools"]
    req_o, wcu_o, ms_o = results["shared"]["stateless_state (shared table)"]
    bare, indexed = results["index_cost"]
    lines += [
        f"| first call, ours on the shared table | {req_t:.2f} / {wcu_t:.2f} | "
        f"{req_o:.2f} / {wcu_o:.2f} | {ms_o / ms_t:.2f} ({ms_o:.1f} / {ms_t:.1f} ms) |",
        "",
        "The rows above put both sides on tables of one shape (a key and TTL, no index: all "
        "idempotency needs, and what Powertools' table is). The last row runs ours on the "
        "shared table of `table_schema()`, with its sparse index: DynamoDB Local maintains an "
        f"index on every write, even one that carries no index key (a small `PutItem`: "
        f"{bare:.2f} ms without the index, {indexed:.2f} ms with it, in this run), where AWS "
        "writes such an item to the base table alone and never holds a write up for an index. "
        "On tables of one shape the requests differ in the completion: ours is a `PutItem` of "
        "the whole record conditional on the claim's owner token (the fence that stops a "
        "zombie's completion, below), Powertools' an unconditional `UpdateItem`; DynamoDB Local "
        "serves the conditional `PutItem` faster than an `UpdateItem` with or without the "
        "condition, which is why ours writes the record whole.",
    ]
    for title, scenario in (
        ("A zombie that finishes", results["zombie"]),
        ("A zombie that fails", results["zombie_fails"]),
    ):
        lines += [
            "",
            f"**{title}**: invocation A's context says 1 s, its body takes 1.6 s; at 1.2 s "
            "a retry B finds A's claim expired, takes the key over and answers; then A "
            + ("finishes and completes." if title.endswith("finishes") else "raises.")
            + " Each body saves one model.",
            "",
            "| | Powertools | stateless_state |",
            "|---|---|---|",
        ]
        for what in scenario["Powertools"]:
            lines.append(
                f"| {what} | {scenario['Powertools'][what]} | {scenario['stateless_state'][what]} |"
            )
    return lines


if __name__ == "__main__":
    main()
