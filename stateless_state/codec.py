"""The attribute-value codec: Python values to DynamoDB's typed JSON and back.

Numbers are validated as DynamoDB numbers (:func:`stateless_state.domain.number`) on the way in,
so a value DynamoDB cannot store is an :class:`~stateless_state.errors.InvalidArgument` before
any request; integral numbers come back as ``int``, others as ``float``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .domain import number
from .errors import InvalidArgument, NotSerializable

__all__ = [
    "DuplicateKey",
    "Item",
    "deserialize",
    "from_item",
    "loads_strict",
    "serialize",
    "to_item",
    "to_json",
]

Item = dict[str, Any]
"""An item as Python values (attribute name to value), before :func:`to_item` or after
:func:`from_item`."""


def to_json(value: Any, what: str) -> str:
    """``value`` as canonical JSON (sorted keys, no spaces): what results and versioned values
    are stored as. Raises :class:`~stateless_state.errors.NotSerializable` naming ``what``."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise NotSerializable(
            f"{what} cannot be stored as JSON ({e}); use plain dicts, lists, str, int, float, "
            "bool or None (convert datetimes and Decimals first)"
        ) from None


class DuplicateKey(ValueError):
    """A JSON object named one key twice (:func:`loads_strict`)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def loads_strict(text: str) -> Any:
    """``json.loads(text)``, but an object naming a key twice raises :class:`DuplicateKey`
    (``json`` keeps the last of two silently: in a configuration, the first would be lost
    unseen). :class:`json.JSONDecodeError` for text that is not JSON."""
    return json.loads(text, object_pairs_hook=_unique_keys)


def serialize(value: Any) -> dict[str, Any]:
    """Python value to a DynamoDB attribute value (ints and floats to N, str to S, ...)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        # str() turns a StrEnum member into its plain value.
        return {"S": str(value)}
    if isinstance(value, int | float):
        return {"N": repr(number(value, "a number to store"))}
    if value is None:
        return {"NULL": True}
    if isinstance(value, bytes):
        return {"B": value}
    if isinstance(value, Mapping):
        return {"M": {str(k): serialize(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [serialize(v) for v in value]}
    if isinstance(value, set | frozenset):
        if all(isinstance(v, str) for v in value):
            return {"SS": sorted(value)}
        return {"NS": sorted(repr(number(v, "a number to store")) for v in value)}
    raise InvalidArgument(f"cannot store a {type(value).__name__} in DynamoDB")


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def deserialize(av: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value back to Python (N to int when integral, else float)."""
    ((tag, v),) = av.items()
    if tag == "S":
        return v
    if tag == "N":
        return _number(v)
    if tag == "BOOL":
        return bool(v)
    if tag == "NULL":
        return None
    if tag == "M":
        return {k: deserialize(x) for k, x in v.items()}
    if tag == "L":
        return [deserialize(x) for x in v]
    if tag == "SS":
        return set(v)
    if tag == "NS":
        return {_number(x) for x in v}
    if tag == "B":
        return bytes(v)
    raise InvalidArgument(f"unknown DynamoDB attribute type {tag!r}")


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """Python values to a DynamoDB item in the low-level client's attribute-value form."""
    return {k: serialize(v) for k, v in values.items()}


def from_item(item: Mapping[str, Any] | None) -> Item | None:
    """A DynamoDB item in attribute-value form to Python values; ``None`` for no (or an empty)
    item."""
    if not item:
        return None
    return {k: deserialize(v) for k, v in item.items()}
