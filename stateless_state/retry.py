"""Retries the library owns: transaction conflicts and optimistic read-compare-write loops.

botocore (standard mode) already retries throttling and 5xx; wrapping it again would multiply
attempts, so nothing here retries those. ``ConditionalCheckFailed`` is an answer, never retried
blindly: a loop that retries after one re-reads first.

tenacity is imported when a call first needs a second attempt, not before: most calls succeed at
once, and its import costs several milliseconds of a handler's cold start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from . import clock

if TYPE_CHECKING:
    import tenacity

__all__ = ["LambdaContext", "deadline_from", "retrying", "run_with_retries", "transient"]

T = TypeVar("T")


class LambdaContext(Protocol):
    """The part of the Lambda context object the library reads."""

    def get_remaining_time_in_millis(self) -> int: ...


def deadline_from(context: LambdaContext | None, *, margin: float = 0.0) -> float | None:
    """The ``clock.monotonic()`` instant this invocation's time runs out, less ``margin`` seconds.

    A context reporting 0 ms left yields a deadline that has already passed: 0 is a real value.
    """
    if context is None:
        return None
    return clock.monotonic() + context.get_remaining_time_in_millis() / 1000.0 - margin


def _stop_at(deadline: float | None) -> Callable[[tenacity.RetryCallState], bool]:
    """A tenacity stop condition: the next attempt would start past ``deadline``."""

    def stop(retry_state: tenacity.RetryCallState) -> bool:
        if deadline is None:
            return False
        sleep = retry_state.upcoming_sleep or 0.0
        return clock.monotonic() + sleep >= deadline

    return stop


def transient(error: BaseException) -> bool:
    """True for a failure botocore already retried and gave up on: connection errors, timeouts,
    throttling and 5xx; and a transaction cancelled by a conflicting request, which botocore never
    retries. Never true for a failed condition (an answer) or a validation error."""
    from botocore.exceptions import BotoCoreError, ClientError

    from .errors import TransactionCanceled

    if isinstance(error, BotoCoreError):
        return True
    if isinstance(error, TransactionCanceled):
        return error.conflict and not error.condition_failed
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or "Throttl" in code or code in _THROTTLES
    return False


_THROTTLES = frozenset(
    {"ProvisionedThroughputExceededException", "RequestLimitExceeded", "ThrottlingException"}
)


def retrying(
    retry_on: tuple[type[BaseException], ...],
    *,
    attempts: int = 10,
    deadline: float | None = None,
    base: float = 0.01,
    cap: float = 1.0,
    on_retry: Any = None,
    immediate: tuple[type[BaseException], ...] = (),
) -> tenacity.Retrying:
    """A tenacity loop with full-jitter backoff, bounded by attempts and by ``deadline``.

    With an empty ``retry_on`` it retries :func:`transient` failures: only for the rare write that
    must land after botocore has given up (an idempotency completion), never as a general layer.
    When it gives up it re-raises the last error, so callers see the real cause. Failures of an
    ``immediate`` type are retried without waiting: they carry what the next attempt needs (a
    batch found sealed, say), not a sign of contention.
    """
    import tenacity

    def wait(state: tenacity.RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, immediate):
            return 0.0
        # Full jitter drawn from the current clock, so a simulation replays the same waits.
        return clock.uniform(0, min(cap, base * 2 ** (state.attempt_number - 1)))

    by_attempts, at_deadline = tenacity.stop_after_attempt(attempts), _stop_at(deadline)
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(retry_on)
        if retry_on
        else tenacity.retry_if_exception(transient),
        wait=wait,
        stop=lambda state: by_attempts(state) or at_deadline(state),
        before_sleep=on_retry,
        sleep=clock.sleep,
        reraise=True,
    )


def run_with_retries(
    fn: Callable[[], T],
    *,
    retry_on: tuple[type[BaseException], ...],
    what: str,
    attempts: int = 10,
    context: LambdaContext | None = None,
    margin: float = 0.0,
    metrics: Any = None,
    operation: str = "retry",
    base: float = 0.01,
    cap: float = 1.0,
    immediate: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``fn`` until it returns, retrying ``retry_on`` with full-jitter backoff, at most
    ``attempts`` times and never past the invocation's remaining time (less ``margin``) when a
    Lambda ``context`` is given. Each retry is counted in ``metrics`` (a
    :class:`~stateless_state.metrics.Metrics`) under ``operation``. When it gives up it raises
    :class:`~stateless_state.errors.ConflictRetriesExhausted` naming ``what`` and the attempts.
    """
    from .errors import ConflictRetriesExhausted

    deadline = deadline_from(context, margin=margin)
    try:
        return fn()
    except retry_on as e:
        first = e
    # The second attempt waits as tenacity's first retry would; the loop after it is tenacity's
    # (started one step on, so its backoff grows from there).
    pause = 0.0 if isinstance(first, immediate) else clock.uniform(0, base)
    if attempts <= 1 or (deadline is not None and clock.monotonic() + pause >= deadline):
        raise ConflictRetriesExhausted(what, 1, first) from None
    if metrics is not None:
        metrics.record_retry(operation)
    clock.sleep(pause)
    count = 1

    def record(_state: tenacity.RetryCallState) -> None:
        if metrics is not None:
            metrics.record_retry(operation)

    try:
        for attempt in retrying(
            retry_on,
            attempts=attempts - 1,
            deadline=deadline,
            base=base * 2,
            cap=cap,
            on_retry=record,
            immediate=immediate,
        ):
            with attempt:
                count += 1
                return fn()
    except retry_on as e:
        raise ConflictRetriesExhausted(what, count, e) from None
    raise AssertionError("unreachable")  # pragma: no cover
