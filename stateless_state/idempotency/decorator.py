"""The ``@idempotent`` decorator: a Lambda handler or plain function run once per key, and the
writes its body commits with the key's completion (:func:`commit_with_completion`).

What a call crosses: the request's key and validated payload are selected here
(:mod:`~stateless_state.idempotency.request_keys`), the key is claimed by
:class:`~stateless_state.idempotency.records.Idempotency`, and the body's result is stored by
the :class:`~stateless_state.idempotency.claim.Claim` it returns.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, Unpack

from ..errors import InvalidArgument
from ..transaction import Transaction, check_actions
from .records import IdempotencyOptions
from .request_keys import SELECTED_NOTHING, IdempotencyKey, payload_hash, selected_key, selector

if TYPE_CHECKING:
    from .records import Idempotency

__all__ = ["IdempotentOptions", "commit_with_completion", "idempotent"]

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger("stateless_state.idempotency")


class IdempotentOptions(IdempotencyOptions, total=False):
    """The keyword arguments of :func:`idempotent` (after ``store``): its own, and those of
    :class:`~stateless_state.idempotency.records.IdempotencyOptions`."""

    key: str | Callable[..., IdempotencyKey | None] | None
    validate: bool | str | Callable[..., Any] | None
    namespace: str | None
    raise_on_missing_key: bool


_pending: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar(
    "stateless_state_completion_writes", default=None
)


def commit_with_completion(*actions: Mapping[str, Any]) -> None:
    """Inside the body of an :func:`idempotent` function: commit ``actions``
    (``TransactWriteItems`` entries, e.g. from :mod:`stateless_state.pynamodb`) in the same
    transaction as the key's completion, so they are written exactly once per key.

    Nothing is written when the body returns: if this invocation's claim was taken over
    (it outlived its lease), the completion and these writes fail together with
    :class:`LeaseLost`; if the body raises, they are dropped with the claim. Each entry is
    checked for shape now (:class:`InvalidArgument` otherwise); at most 99 in all. A body run
    without idempotency (no key in its event, ``raise_on_missing_key=False``) has no
    completion: its writes commit as one transaction of their own when it returns. Call it from
    the body's own thread or task: the pending writes live in a context variable, which work
    handed to a thread pool does not see.
    """
    pending = _pending.get()
    if pending is None:
        raise InvalidArgument(
            "commit_with_completion() adds writes to the completion of an @idempotent "
            "function and must be called inside its body; elsewhere pass them to "
            "Claim.complete(result, also=...)"
        )
    pending.extend(check_actions(actions))


def _collecting(
    fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> tuple[R, list[dict[str, Any]]]:
    """``fn``'s result and the writes its body handed to :func:`commit_with_completion`."""
    writes: list[dict[str, Any]] = []
    token = _pending.set(writes)
    try:
        return fn(*args, **kwargs), writes
    finally:
        _pending.reset(token)


class _Call:
    """One call of the decorated function, as the key and validation see it. (A plain class:
    a NamedTuple would cost every idempotent handler's cold start a tenth of a millisecond.)"""

    __slots__ = ("args", "context", "event", "handler", "kwargs", "payload")

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.args, self.kwargs = args, kwargs
        # A Lambda handler's (event, context), or a plain function's arguments.
        self.handler = len(args) == 2 and not kwargs and _is_context(args[1])
        self.payload: Any = args[0] if self.handler else {"args": list(args), "kwargs": kwargs}
        self.context: Any = args[1] if self.handler else None
        # What an expression selects from: the event, or the first argument.
        self.event: Any = args[0] if self.handler else args[0] if args else kwargs

    def apply(self, fn: Callable[..., Any]) -> Any:
        """``fn`` of the event (a handler) or of the function's own arguments."""
        return fn(self.payload) if self.handler else fn(*self.args, **self.kwargs)


def _is_context(obj: Any) -> bool:
    return callable(getattr(obj, "get_remaining_time_in_millis", None))


class _Selection:
    """What identifies a request and what of it is validated: the ``key`` and ``validate``
    arguments of :func:`idempotent`, their expressions compiled once."""

    def __init__(
        self,
        key: str | Callable[..., IdempotencyKey | None] | None,
        validate: bool | str | Callable[..., Any] | None,
    ) -> None:
        self.key, self.validate = key, validate
        self.pick = selector(key, "key") if isinstance(key, str) else None
        self.check = selector(validate, "validate") if isinstance(validate, str) else None
        self.what = f"key {key!r}" if isinstance(key, str) else "the key function"

    def key_of(self, call: _Call) -> IdempotencyKey | None:
        """The call's idempotency key, or None when it selects nothing."""
        if self.key is None:
            return payload_hash(call.payload)
        if self.pick is not None:
            return selected_key(self.pick(call.event))
        assert callable(self.key)
        return selected_key(call.apply(self.key))

    def checked(self, call: _Call) -> Any:
        """The part of the call a repeated key must carry unchanged (None: no validation)."""
        if self.validate is True:
            return call.payload
        if self.check is not None:
            checked = self.check(call.event)
            return SELECTED_NOTHING if checked is None else checked
        if callable(self.validate):
            checked = call.apply(self.validate)
            return SELECTED_NOTHING if checked is None else checked
        return None


def _unkeyed(
    records: Idempotency, fn: Callable[P, R], what: str, *args: P.args, **kwargs: P.kwargs
) -> R:
    """The body run without idempotency (its event selects no key)."""
    _log.warning("%s selects no idempotency key; running without idempotency", what)
    result, writes = _collecting(fn, *args, **kwargs)
    # No completion to commit them with: they land as the body ran, unguarded, as one
    # transaction of their own.
    tx = Transaction(records.table)
    tx.raw(*writes)
    tx.commit()
    return result


_USAGE = (
    "@idempotent(store, key=...) above the function, with store a stateless_state.Store, e.g. "
    '@idempotent(Store.from_env(), key="requestContext.requestId")'
)


def _check_store(store: Any) -> None:
    """Refuse, when decorating, a ``store`` that is not a Store: above all the function itself,
    which a bare ``@idempotent`` (no parentheses) passes, and which would otherwise turn the
    handler into the decorator and fail only when invoked."""
    # Duck-typed so this primitive does not import the Store that builds it.
    if callable(getattr(store, "idempotency", None)):
        return
    if callable(store):
        name = getattr(store, "__qualname__", repr(store))
        raise InvalidArgument(
            f"@idempotent was used without arguments on {name}: it needs the store and, "
            f"usually, the key. Write {_USAGE}"
        )
    raise InvalidArgument(
        f"idempotent(store, ...) needs a stateless_state.Store, got {type(store).__name__}. "
        f"Write {_USAGE}"
    )


def _check_sync(fn: Callable[..., Any]) -> None:
    """Refuse an ``async def`` function (or generator, or an object whose ``__call__`` is one)
    when decorating: its call returns a coroutine before the body has run, so the claim would
    end before the body began, and the body would run unguarded when awaited, or never."""
    if any(
        inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f)
        for f in (fn, type(fn).__call__)
    ):
        name = getattr(fn, "__qualname__", repr(fn))
        raise InvalidArgument(
            f"@idempotent cannot guard {name}: it is an async def function, and the claim, the "
            "body and the completion must run in one synchronous call (the library's AWS calls "
            "are boto3's, which block). Decorate a plain def function instead: call your "
            "coroutine in it with asyncio.run(...), and from async code call the decorated "
            "function with await asyncio.to_thread(f, ...)"
        )


def _default_namespace(fn: Callable[..., Any]) -> str:
    """``fn``'s qualified name. A function defined inside another (``make.<locals>.handler``)
    or a lambda has a name every function made there shares: the same handler built once per
    container (or per test) rightly shares its records, but two different handlers a factory
    makes would replay each other's results, so it is logged as a warning asking for
    ``namespace=`` where they differ."""
    name = f"{fn.__module__}.{fn.__qualname__}"
    if "<locals>" in name or "<lambda>" in name:
        _log.warning(
            "@idempotent on %s: every function defined there has this name, so its default "
            "namespace; if that place makes different functions, give each namespace=...",
            name,
        )
    return name


def idempotent(
    store: Any,
    *,
    key: str | Callable[..., IdempotencyKey | None] | None = None,
    validate: bool | str | Callable[..., Any] | None = None,
    namespace: str | None = None,
    raise_on_missing_key: bool = True,
    **options: Unpack[IdempotencyOptions],
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Make a Lambda handler ``(event, context)`` or a plain function idempotent.

    Args:
        key: what identifies a request. A JMESPath expression into the event
            (``"requestContext.requestId"``, ``"Records[0].messageId"``,
            ``"powertools_json(body).order_id"``; dotted paths such as
            ``"Records.0.messageId"`` still work, see :func:`selector`), a callable given the
            event (handlers) or the function's arguments (plain functions), or None for a hash
            of the whole payload. A plain function's expression applies to its first argument.
            What it selects is the key: a string as it is, a number, bool, list or object typed
            (``1`` and ``"1"`` are two requests, ``1`` and ``1.0`` one: see
            :func:`canonical_key`).
        validate: also check that a repeated key carries the same payload: True for the whole
            payload, or an expression or callable selecting the part to compare (an expression
            that selects nothing compares as null). A mismatch raises
            :class:`PayloadMismatch`.
        namespace: separates keys of different functions; defaults to the function's qualified
            name, which separates functions of different names only: every function defined
            inside one other function (a factory's) or every lambda of one place has the same
            one, so give different such functions each a namespace (a warning is logged).
        raise_on_missing_key: when ``key`` selects nothing (a missing path, JSON ``null``, an
            empty string, or a list or object all of whose members are null, such as the
            multi-select ``[order_id, customer]`` over an event with neither), raise
            :class:`InvalidArgument` (the default) rather than let unrelated events share one
            record; False runs the body without idempotency, for each such event, and logs a
            warning (Powertools' ``raise_on_no_idempotency_key=False``).
        options: those of :class:`~stateless_state.idempotency.records.IdempotencyOptions`:
            ``expires_after``, how long a completed result is kept and replayed (an hour);
            ``in_progress_timeout``, the claim's lease when there is no Lambda context (with
            one, the lease ends with the invocation's remaining time; 15 minutes);
            ``cache_size``, how many completed results to keep in process memory (none; a hit
            still checks ``validate``'s payload).

    The body runs at most once per key while the record lives; duplicates get the stored result
    (falsy ones too) or :class:`AlreadyInProgress` while the first is still running. If the body
    raises, the claim is released and the exception propagates, so a retry can run it. Writes
    the body hands to :func:`commit_with_completion` commit with the completion: exactly once
    per key, even when an invocation outlives its lease and a retry takes over.
    """

    _check_store(store)

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        _check_sync(fn)
        records: Idempotency = store.idempotency(namespace or _default_namespace(fn), **options)
        selection = _Selection(key, validate)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            call = _Call(args, kwargs)
            k = selection.key_of(call)
            if k is None:
                if raise_on_missing_key:
                    raise InvalidArgument(
                        f"{selection.what} selects no idempotency key in this event (missing, "
                        "null, empty, or every field of a multi-select null); fix the "
                        "expression, or pass raise_on_missing_key=False to run such events "
                        "without idempotency"
                    )
                return _unkeyed(records, fn, selection.what, *args, **kwargs)
            claim = records.claim(k, payload=selection.checked(call), context=call.context)
            if claim.replay:
                replayed: R = claim.result
                return replayed
            try:
                result, writes = _collecting(fn, *args, **kwargs)
            except BaseException:
                claim.release()
                raise
            claim.complete(result, also=writes)
            return result

        return wrapper

    return decorate
