"""The linearizability checker on histories with known verdicts: it must be able to fail."""

from __future__ import annotations

import math

from stateless_state.testing import CounterModel, Op, RegisterModel, SetModel, check_linearizable


def op(
    p: str,
    fn: str,
    arg: object,
    t0: float,
    t1: float,
    result: object = None,
    status: str = "ok",
    key: str = "k",
) -> Op:
    return Op(p, fn, arg, key, t0, t1 if status != "unknown" else math.inf, status, result)


def test_sequential_counter_is_linearizable() -> None:
    h = [op("a", "add", 1, 0, 1, 1), op("b", "add", 2, 2, 3, 3), op("a", "get", None, 4, 5, 3)]
    assert check_linearizable(h, CounterModel())


def test_concurrent_adds_may_order_either_way() -> None:
    h = [op("a", "add", 1, 0, 10, 3), op("b", "add", 2, 1, 9, 2)]
    assert check_linearizable(h, CounterModel())


def test_a_stale_read_after_completion_is_not_linearizable() -> None:
    h = [op("a", "add", 1, 0, 1, 1), op("b", "get", None, 2, 3, 0)]
    verdict = check_linearizable(h, CounterModel())
    assert not verdict and verdict.key == "k"


def test_a_lost_update_is_not_linearizable() -> None:
    # Both CAS from version 0 succeed: the classic lost update.
    h = [op("a", "cas", (0, "x"), 0, 2, 1), op("b", "cas", (0, "y"), 1, 3, 1)]
    assert not check_linearizable(h, RegisterModel())


def test_unknown_outcome_may_or_may_not_have_happened() -> None:
    took_effect = [op("a", "add", 5, 0, 0, status="unknown"), op("b", "get", None, 2, 3, 5)]
    assert check_linearizable(took_effect, CounterModel())
    did_not = [op("a", "add", 5, 0, 0, status="unknown"), op("b", "get", None, 2, 3, 0)]
    assert check_linearizable(did_not, CounterModel())
    impossible = [op("a", "add", 5, 0, 0, status="unknown"), op("b", "get", None, 2, 3, 7)]
    assert not check_linearizable(impossible, CounterModel())


def test_failed_operations_take_no_effect() -> None:
    h = [op("a", "add", 5, 0, 1, status="fail"), op("b", "get", None, 2, 3, 5)]
    assert not check_linearizable(h, CounterModel())


def test_tokens_count_once() -> None:
    ok = [
        op("a", "add_once", ("t", 1), 0, 1, (1, True)),
        op("b", "add_once", ("t", 1), 2, 3, (None, False)),
    ]
    assert check_linearizable(ok, CounterModel())
    double = [
        op("a", "add_once", ("t", 1), 0, 1, (1, True)),
        op("b", "add_once", ("t", 1), 2, 3, (2, True)),
    ]
    assert not check_linearizable(double, CounterModel())


def test_keys_are_checked_independently() -> None:
    h = [
        op("a", "add", "x", 0, 1, True, key="s1"),
        op("b", "add", "x", 0, 1, True, key="s2"),
        op("c", "add", "x", 2, 3, True, key="s1"),
    ]
    verdict = check_linearizable(h, SetModel())
    assert not verdict and verdict.key == "s1"
