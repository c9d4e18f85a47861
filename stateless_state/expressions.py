"""Conditions and updates as small objects; the placeholders are generated, never hand-written.

.. code-block:: python

    from stateless_state.expressions import Attr, Update, render
    from stateless_state.keys import INDEX_PK

    condition = Attr("state").eq("open") & (Attr("count").not_exists() | Attr("count").lt(99))
    update = Update().add("count", 1).set_default("opened_at", now).remove(INDEX_PK)
    client.update_item(..., **render(condition=condition, update=update))

:func:`render` turns them into ``ConditionExpression`` / ``UpdateExpression`` and one
``ExpressionAttributeNames`` / ``ExpressionAttributeValues`` pair: every attribute name becomes a
``#n`` placeholder (so reserved words such as ``state`` or ``count`` need no care) and every value a
``:v`` placeholder, serialized by the table's codec and validated as DynamoDB numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .codec import serialize

__all__ = ["Attr", "Condition", "Placeholders", "Update", "render"]


class Placeholders:
    """Hands out ``#n<i>`` for attribute names and ``:v<i>`` for values, once per distinct
    name; what one request's expressions share."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, dict[str, Any]] = {}

    def name(self, attribute: str) -> str:
        for placeholder, existing in self.names.items():
            if existing == attribute:
                return placeholder
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = serialize(value)
        return placeholder

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.names:
            out["ExpressionAttributeNames"] = dict(self.names)
        if self.values:
            out["ExpressionAttributeValues"] = dict(self.values)
        return out


class Condition:
    """A condition expression; combine with ``&``, ``|`` and ``~``."""

    __slots__ = ()

    def render(self, p: Placeholders) -> str:
        raise NotImplementedError

    def __and__(self, other: Condition) -> Condition:
        return _Join("AND", (self, other))

    def __or__(self, other: Condition) -> Condition:
        return _Join("OR", (self, other))

    def __invert__(self) -> Condition:
        return _Not(self)


class _Join(Condition):
    __slots__ = ("op", "parts")

    def __init__(self, op: str, parts: tuple[Condition, ...]) -> None:
        self.op, self.parts = op, parts

    def render(self, p: Placeholders) -> str:
        return "(" + f" {self.op} ".join(c.render(p) for c in self.parts) + ")"


class _Not(Condition):
    __slots__ = ("inner",)

    def __init__(self, inner: Condition) -> None:
        self.inner = inner

    def render(self, p: Placeholders) -> str:
        return f"(NOT {self.inner.render(p)})"


class _Term(Condition):
    """One comparison or function of one attribute: ``template`` names the attribute ``{a}``
    and the values ``{0}``, ``{1}``... (``{values}`` for all of them, comma-separated)."""

    __slots__ = ("attribute", "template", "values")

    def __init__(self, template: str, attribute: str, values: tuple[Any, ...] = ()) -> None:
        self.template, self.attribute, self.values = template, attribute, values

    def render(self, p: Placeholders) -> str:
        placeholders = [p.value(v) for v in self.values]
        return self.template.format(
            *placeholders, a=p.name(self.attribute), values=", ".join(placeholders)
        )


class Attr:
    """An attribute of the item, to build conditions on."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _compare(self, op: str, value: Any) -> Condition:
        return _Term(f"{{a}} {op} {{0}}", self.name, (value,))

    def eq(self, value: Any) -> Condition:
        return self._compare("=", value)

    def ne(self, value: Any) -> Condition:
        return self._compare("<>", value)

    def lt(self, value: Any) -> Condition:
        return self._compare("<", value)

    def le(self, value: Any) -> Condition:
        return self._compare("<=", value)

    def gt(self, value: Any) -> Condition:
        return self._compare(">", value)

    def ge(self, value: Any) -> Condition:
        return self._compare(">=", value)

    def exists(self) -> Condition:
        return _Term("attribute_exists({a})", self.name)

    def not_exists(self) -> Condition:
        return _Term("attribute_not_exists({a})", self.name)

    def is_in(self, *values: Any) -> Condition:
        return _Term("{a} IN ({values})", self.name, values)

    def between(self, low: Any, high: Any) -> Condition:
        return _Term("{a} BETWEEN {0} AND {1}", self.name, (low, high))

    def begins_with(self, prefix: str) -> Condition:
        return _Term("begins_with({a}, {0})", self.name, (prefix,))


class Update:
    """An update expression, built by chaining: ``Update().set("a", 1).add("n", 1)``."""

    __slots__ = ("_add", "_remove", "_set")

    def __init__(self) -> None:
        self._set: list[tuple[str, str, Any]] = []
        self._add: list[tuple[str, Any]] = []
        self._remove: list[str] = []

    def set(self, attribute: str, value: Any) -> Update:
        """``SET attribute = value``."""
        self._set.append(("=", attribute, value))
        return self

    def set_default(self, attribute: str, value: Any) -> Update:
        """``SET attribute = if_not_exists(attribute, value)``: only when it has no value."""
        self._set.append(("default", attribute, value))
        return self

    def append(self, attribute: str, items: Iterable[Any]) -> Update:
        """Append ``items`` to a list attribute (created empty if absent)."""
        self._set.append(("append", attribute, list(items)))
        return self

    def add(self, attribute: str, value: Any) -> Update:
        """``ADD attribute value``: atomic increment (a missing number counts as 0)."""
        self._add.append((attribute, value))
        return self

    def remove(self, *attributes: str) -> Update:
        """``REMOVE`` the attributes."""
        self._remove.extend(attributes)
        return self

    def set_all(self, values: Mapping[str, Any]) -> Update:
        """``SET`` every attribute of ``values``."""
        for attribute, value in values.items():
            self.set(attribute, value)
        return self

    def render(self, p: Placeholders) -> str:
        clauses = []
        if self._set:
            parts = []
            for kind, attribute, value in self._set:
                n = p.name(attribute)
                if kind == "=":
                    parts.append(f"{n} = {p.value(value)}")
                elif kind == "default":
                    parts.append(f"{n} = if_not_exists({n}, {p.value(value)})")
                else:
                    parts.append(f"{n} = list_append(if_not_exists({n}, {p.value([])}), ")
                    parts[-1] += f"{p.value(value)})"
            clauses.append("SET " + ", ".join(parts))
        if self._add:
            clauses.append("ADD " + ", ".join(f"{p.name(a)} {p.value(v)}" for a, v in self._add))
        if self._remove:
            clauses.append("REMOVE " + ", ".join(p.name(a) for a in self._remove))
        return " ".join(clauses)


def render(
    *,
    condition: Condition | None = None,
    update: Update | None = None,
    key_condition: Condition | None = None,
) -> dict[str, Any]:
    """The request parameters for these expressions, placeholders shared between them."""
    p = Placeholders()
    out: dict[str, Any] = {}
    if key_condition is not None:
        out["KeyConditionExpression"] = key_condition.render(p)
    if update is not None:
        out["UpdateExpression"] = update.render(p)
    if condition is not None:
        out["ConditionExpression"] = condition.render(p)
    out.update(p.params())
    return out
