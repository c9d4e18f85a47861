"""What identifies a request: the key selected from an event, and the text it is recorded under.

Typed keys: a string key's preimage is ``keys.join(namespace, key)``, as in every earlier
version, so string-keyed records stay valid across upgrades. Any other key (a number, a bool,
a list or an object selected from an event) has the preimage ``keys.join(namespace, "json",
canonical JSON)`` (see :func:`canonical_key`). :func:`~stateless_state.keys.join` escapes every
part so that it contains no ``#`` and can be unescaped back: splitting a preimage on ``#`` gives
back its parts. A string key's preimage has two parts, a typed key's three, so no typed key
ever shares a record with a string key (``1`` and ``"1"`` are two records, and so are ``{"a":
1}`` and the hex of any hash of it); two typed keys share one exactly when their canonical JSON
is equal.

CPU only, no request: everything here is a pure function of its arguments.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from .. import keys
from ..errors import InvalidArgument

if TYPE_CHECKING:
    from decimal import Decimal

__all__ = [
    "SELECTED_NOTHING",
    "IdempotencyKey",
    "canonical_key",
    "payload_hash",
    "preimage",
    "record_key",
    "selected_key",
    "selector",
]

IdempotencyKey: TypeAlias = "str | int | float | bool | Decimal | Sequence[Any] | Mapping[str, Any]"
"""What identifies a request: a non-empty string, or a JSON value of another type (see
:func:`canonical_key`); the two never share a record."""


def payload_hash(payload: Any) -> str:
    """SHA-256 of the payload as :func:`canonical_key` writes it: equal payloads give equal
    hashes (``1`` and ``1.0``, a tuple and its list), distinct ones distinct hashes (``{1: x}``
    is refused, never ``{"1": x}``'s twin). :data:`SELECTED_NOTHING` has a hash of its own,
    taken of text no JSON value is written as. Raises :class:`InvalidArgument` for what
    :func:`canonical_key` refuses (a set, a datetime, bytes...): such a payload has no one
    spelling, so it could not be compared; select a key (``key=``), or convert it."""
    if payload is SELECTED_NOTHING:
        return hashlib.sha256(b"\x01nothing selected").hexdigest()
    try:
        text = canonical_key(payload)
    except InvalidArgument as e:
        raise InvalidArgument(
            f"the payload cannot be compared: {e}; give key= (and validate=) selecting JSON "
            "values, or pass JSON values"
        ) from None
    try:
        return hashlib.sha256(text.encode()).hexdigest()
    except UnicodeEncodeError:
        raise InvalidArgument("the payload holds a lone surrogate and cannot be hashed") from None


_MAX_DEPTH = 64
# Python's own bound on int-to-text conversion: a number longer than this written out is
# refused rather than turned into megabytes of key text.
_MAX_DIGITS = 4_300


def canonical_key(value: Any) -> str:
    """The canonical JSON that a typed (non-string) idempotency key is recorded under: equal
    keys give equal text, distinct keys distinct text.

    Objects' members are sorted by name, no spaces, strings escaped to ASCII, tuples are
    lists. Numbers are the decimal numbers JSON writes, so ``1``, ``1.0`` and ``Decimal("1.00")``
    are one key (as DynamoDB's own numbers are) and a float is the shortest decimal that reads
    back as it (``repr``): ``0.1`` is JSON's ``0.1``. Powertools hashes ``json.dumps`` of the
    key, so there ``1`` and ``1.0`` are two keys (and a ``Decimal`` key is its string); here a
    number means its value whatever a producer's serializer did to it. ``True`` is not ``1``.

    Raises :class:`InvalidArgument` for NaN or an infinity, an object member name that is not a
    string, a number over 4,300 digits written out, nesting deeper than 64 levels (a value
    containing itself included), or a leaf that is not JSON (a datetime, bytes...). Cost: CPU
    only, linear in the key's size.
    """
    return _canonical(value, 0)


def _canonical(value: Any, depth: int) -> str:
    if depth > _MAX_DEPTH:
        raise InvalidArgument(
            f"an idempotency key nests deeper than {_MAX_DEPTH} levels (or contains itself); "
            "select a flatter key"
        )
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        names = list(value)
        if not all(isinstance(name, str) for name in names):
            raise InvalidArgument(
                f"an idempotency key's object has member names {names[:5]!r} that are not all "
                "strings; JSON names are strings (1 and '1' would be one name): convert them"
            )
        members = (f"{json.dumps(n)}:{_canonical(value[n], depth + 1)}" for n in sorted(names))
        return "{" + ",".join(members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canonical(v, depth + 1) for v in value) + "]"
    return _number(value)


def _number(value: Any) -> str:
    """A number as positional decimal text without trailing zeros: one text per value."""
    # Only a typed key pays for decimal (boto3 has usually imported it already).
    from decimal import Decimal

    if isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float) and math.isfinite(value):
        d = Decimal(repr(value))
    elif isinstance(value, Decimal) and value.is_finite():
        d = value
    elif isinstance(value, float | Decimal):
        raise InvalidArgument(
            f"an idempotency key cannot be (or contain) {value!r}: NaN and infinities equal no "
            "request; select a field that identifies one"
        )
    else:
        raise InvalidArgument(
            f"an idempotency key cannot contain a {type(value).__name__}: select or return a "
            "str, int, float, bool, or lists and dicts of them (and None)"
        )
    _, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    if len(digits) + abs(exponent) > _MAX_DIGITS:
        raise InvalidArgument(
            f"an idempotency key holds a number of more than {_MAX_DIGITS} digits written "
            "out; select a shorter field, or pass it as a string"
        )
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def preimage(namespace: str, key: Any) -> str:
    """What a key's record digest is taken of (the module docstring proves it injective)."""
    if isinstance(key, str):
        if not key:
            raise InvalidArgument("idempotency key must be a non-empty str or a JSON value")
        return keys.join(namespace, key)
    if key is None:
        raise InvalidArgument("idempotency key must be a non-empty str or a JSON value, not None")
    return keys.join(namespace, "json", canonical_key(key))


def record_key(namespace: str, key: IdempotencyKey) -> dict[str, str]:
    """The key (``pk``, ``sk``) of ``key``'s record: the SHA-256 of its :func:`preimage`.
    Raises :class:`InvalidArgument` for a key that selects nothing or cannot be stored."""
    text = preimage(namespace, key)
    try:
        digest = hashlib.sha256(text.encode()).hexdigest()
    except UnicodeEncodeError:
        raise InvalidArgument(
            f"idempotency key {key!r} contains a lone surrogate and cannot be stored"
        ) from None
    return keys.idempotency(digest).item()


def _path(obj: Any, path: str) -> Any:
    """The value at a dotted path (``Records.0.messageId``), None where it leads nowhere."""
    for part in path.split("."):
        try:
            obj = obj[int(part)] if isinstance(obj, list) else obj[part]
        except (KeyError, IndexError, ValueError, TypeError):
            return None
    return obj


# Compiled on first use (re caches it): only an expression that is not JMESPath needs it.
_DOTTED = r"[^.\[\]]+(?:\.[^.\[\]]+)*"


class _Nothing:
    """The type of :data:`SELECTED_NOTHING`: one object, equal only to itself."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SELECTED_NOTHING"


SELECTED_NOTHING: Any = _Nothing()
"""What a ``validate`` expression (or callable) that selects nothing compares as (as
Powertools hashes null): an object no event holds, whose hash (:func:`payload_hash`) is taken
of text no JSON value is written as, so distinct from every payload a JSON event can carry."""


def selector(expression: str, what: str = "key") -> Callable[[Any], Any]:
    """A function that picks a value out of an event by ``expression``: a JMESPath expression
    (``body.order_id``, ``Records[0].messageId``, ``powertools_json(body).id``), or one of the
    dotted paths of earlier versions (``Records.0.messageId``, ``headers.x-request-id``) where
    it is not valid JMESPath. Either selects None where the event has nothing.

    Powertools' JMESPath functions ``powertools_json``, ``powertools_base64`` and
    ``powertools_base64_gzip`` are available, so its ``event_key_jmespath`` works unchanged.
    Raises :class:`InvalidArgument` for an expression that is neither.
    """
    from . import _jmespath

    if not isinstance(expression, str) or not expression:
        raise InvalidArgument(f"{what} must be a non-empty JMESPath expression, got {expression!r}")
    try:
        compiled = _jmespath.compile(expression)
    except _jmespath.ParseError as e:
        if re.fullmatch(_DOTTED, expression):
            return lambda event: _path(event, expression)
        raise InvalidArgument(
            f"{what} {expression!r} is neither a JMESPath expression nor a dotted path: {e}"
        ) from None
    return compiled


def selected_key(value: Any) -> IdempotencyKey | None:
    """The idempotency key a selected value stands for (a string as it is, anything else
    typed); None when it selects nothing, which must never become one record shared by every
    such event: None, an empty string, or a list or object whose every member is null (a
    multi-select such as ``[order_id, customer]`` or ``{o: order_id}`` over an event that has
    none of them, which is what Powertools counts as missing too). A partly null multi-select
    is a key."""
    if value is None or (isinstance(value, str) and not value):
        return None
    members = value.values() if isinstance(value, Mapping) else value
    if isinstance(value, Mapping | list | tuple) and all(m is None for m in members):
        return None
    selected: IdempotencyKey = value
    return selected
