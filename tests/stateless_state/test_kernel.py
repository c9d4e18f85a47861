"""The storage kernel: generated placeholders, transactions whose cancellation reasons line up
with their actions, the own-write check."""

from __future__ import annotations

import pytest

from stateless_state import InvalidArgument, Store, TransactionCanceled, keys
from stateless_state.expressions import Attr, Update, render
from stateless_state.transaction import MAX_ACTIONS, Transaction, own_write


def test_placeholders_are_generated_and_shared() -> None:
    condition = Attr("state").eq("open") & (Attr("count").not_exists() | Attr("count").lt(9))
    update = Update().add("count", 1).set_default("opened_at", 5.0).remove("gsi1pk")
    out = render(condition=condition, update=update)
    assert out["UpdateExpression"] == "SET #n0 = if_not_exists(#n0, :v0) ADD #n1 :v1 REMOVE #n2"
    assert out["ConditionExpression"] == "(#n3 = :v2 AND (attribute_not_exists(#n1) OR #n1 < :v3))"
    assert out["ExpressionAttributeNames"] == {
        "#n0": "opened_at",
        "#n1": "count",
        "#n2": "gsi1pk",
        "#n3": "state",
    }
    assert out["ExpressionAttributeValues"] == {
        ":v0": {"N": "5.0"},
        ":v1": {"N": "1"},
        ":v2": {"S": "open"},
        ":v3": {"N": "9"},
    }
    assert render(condition=~Attr("a").is_in(1, 2))["ConditionExpression"] == (
        "(NOT #n0 IN (:v0, :v1))"
    )


def test_bad_values_never_reach_a_request() -> None:
    with pytest.raises(InvalidArgument):
        render(update=Update().set("x", float("nan")))


def test_cancellation_reasons_line_up_with_the_actions(moto_store: Store) -> None:
    a, b = keys.counter("a").item(), keys.counter("b").item()
    first = Transaction(moto_store.table)
    first.put({**a, "nonce": "n1"})
    first.commit()
    tx = Transaction(moto_store.table)
    ok = tx.update(b, Update().set("v", 1))
    taken = tx.put_if_absent({**a, "nonce": "n2"})
    assert (ok, taken, len(tx)) == (0, 1, 2)
    with pytest.raises(TransactionCanceled) as raised:
        tx.commit()
    reasons = raised.value.reasons
    assert not reasons[ok].failed
    assert reasons[taken].code == "ConditionalCheckFailed"
    assert own_write(reasons[taken].item, "n1") and not own_write(reasons[taken].item, "n2")
    assert moto_store.table.get(b) is None, "nothing of a cancelled transaction is written"


def test_a_transaction_over_the_action_limit_sends_nothing(moto_store: Store) -> None:
    tx = Transaction(moto_store.table)
    for i in range(MAX_ACTIONS + 1):
        tx.put(keys.counter(f"c{i}").item())
    with pytest.raises(InvalidArgument, match="at most 100 actions"):
        tx.commit()
    assert moto_store.metrics.total.requests == 0


class Flaky:
    """Fails ``times`` times with ``error``, then returns how many calls it took."""

    def __init__(self, times: int, error: type[Exception] = KeyError) -> None:
        self.calls, self.times, self.error = 0, times, error

    def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error("not yet")
        return self.calls


class Context:
    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


def test_retries_are_bounded_by_attempts_and_counted() -> None:
    from stateless_state.errors import ConflictRetriesExhausted
    from stateless_state.metrics import Metrics
    from stateless_state.retry import run_with_retries

    metrics = Metrics()
    flaky = Flaky(3)
    assert run_with_retries(flaky, retry_on=(KeyError,), what="w", metrics=metrics) == 4
    assert metrics.by_operation["retry"].retries == 3
    never = Flaky(100)
    with pytest.raises(ConflictRetriesExhausted, match="5 attempts") as caught:
        run_with_retries(never, retry_on=(KeyError,), what="w", attempts=5)
    assert never.calls == 5 and isinstance(caught.value.last, KeyError)
    once = Flaky(100)
    with pytest.raises(ConflictRetriesExhausted):
        run_with_retries(once, retry_on=(KeyError,), what="w", attempts=1)
    assert once.calls == 1
    other = Flaky(1, ValueError)
    with pytest.raises(ValueError, match="not yet"):
        run_with_retries(other, retry_on=(KeyError,), what="w")


def test_retries_stop_before_the_invocation_runs_out() -> None:
    from stateless_state.errors import ConflictRetriesExhausted
    from stateless_state.retry import run_with_retries

    spent = Flaky(100)
    with pytest.raises(ConflictRetriesExhausted):
        run_with_retries(spent, retry_on=(KeyError,), what="w", context=Context(0))
    assert spent.calls == 1, "no second attempt past the deadline"
    spent = Flaky(100)
    with pytest.raises(ConflictRetriesExhausted):
        run_with_retries(
            spent, retry_on=(KeyError,), what="w", attempts=1000, context=Context(300), base=0.05
        )
    assert 2 <= spent.calls < 1000


def test_immediate_failures_are_retried_without_waiting() -> None:
    import time

    from stateless_state.retry import run_with_retries

    flaky = Flaky(20)
    started = time.monotonic()
    run_with_retries(
        flaky, retry_on=(KeyError,), what="w", attempts=30, immediate=(KeyError,), base=1.0
    )
    assert flaky.calls == 21 and time.monotonic() - started < 1.0
