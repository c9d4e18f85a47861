"""The one quoting function per SQL dialect, for every identifier and literal the loaders put in
SQL text.

Each function validates and quotes in one step, so no caller can quote without checking or check
without quoting: a name is either refused with :class:`~stateless_state.InvalidArgument` (naming
the problem and the fix) or comes back as exactly one token of its dialect.

* **Redshift** (the Data API takes SQL text only: no parameters in ``BatchExecuteStatement``):
  :func:`redshift_identifier` and :func:`redshift_literal`. Identifiers stay within
  Redshift's undelimited rules (ASCII letters, digits, ``_`` and ``$``, 127 bytes) *and* are
  quoted, so case folding is the same as an unquoted name's and a ``"`` can never close the
  quotes. Literals double ``'``; a backslash is refused because Redshift reads it as an escape in
  a string literal, and NUL because it ends the statement text.
* **PostgreSQL**: :func:`postgres_identifier` (values are bound parameters or ``COPY`` data,
  never literals). Any name PostgreSQL can hold is accepted: ``"`` is doubled, NUL (which
  PostgreSQL cannot store) is refused, and so is a part over 63 bytes, which PostgreSQL would
  silently truncate, making two distinct names one table.
* **SQLite** (the local warehouse): every value is a bound parameter, field names included (as
  the key a ``json_each`` join matches): :func:`sqlite_field` only refuses what SQLite cannot
  bind as text. A table's name cannot be bound: :func:`sqlite_identifier` quotes it (``"``
  doubled), refusing NUL, lone surrogates, and the ``sqlite_`` names SQLite keeps for itself.

All are pure string functions (no connection, no I/O): their cost is linear in the name.
"""

from __future__ import annotations

import re

from stateless_state import InvalidArgument

__all__ = [
    "POSTGRES_MAX_NAME_BYTES",
    "REDSHIFT_MAX_NAME_BYTES",
    "postgres_identifier",
    "postgres_name",
    "redshift_identifier",
    "redshift_literal",
    "sqlite_field",
    "sqlite_identifier",
]

REDSHIFT_MAX_NAME_BYTES = 127
"""Bytes of one part (schema or table) of a Redshift identifier."""

POSTGRES_MAX_NAME_BYTES = 63
"""Bytes of one part of a PostgreSQL identifier (``NAMEDATALEN - 1``: PostgreSQL truncates
longer names silently)."""

# Explicit ASCII classes: \w or str.isalnum would let in letters and digits of any script.
_REDSHIFT_PART = re.compile(rf"[A-Za-z_][A-Za-z0-9_$]{{0,{REDSHIFT_MAX_NAME_BYTES - 1}}}", re.ASCII)


def redshift_identifier(name: object, *, what: str = "identifier") -> str:
    """``name`` (``table`` or ``schema.table``) as a quoted Redshift identifier:
    ``schema.table`` → ``"schema"."table"``. Raises :class:`InvalidArgument` naming ``what``
    unless each part is an ASCII letter or ``_`` then up to 126 letters, digits, ``_``, ``$``."""
    if not isinstance(name, str):
        raise InvalidArgument(f"{what} must be a str, got {type(name).__name__}")
    parts = name.split(".")
    if not 1 <= len(parts) <= 2 or not all(_REDSHIFT_PART.fullmatch(p) for p in parts):
        raise InvalidArgument(
            f"{what} {name!r} is not a valid Redshift identifier: use [schema.]table made of "
            "ASCII letters, digits, '_' and '$', starting with a letter or '_'"
        )
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def redshift_literal(value: object, *, what: str = "value") -> str:
    """``value`` as a Redshift string literal (``'...'`` with ``'`` doubled). Raises
    :class:`InvalidArgument` for a non-str, a backslash (Redshift's escape character in
    literals, so it would change the value) or NUL."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a str, got {type(value).__name__}")
    if "\\" in value or "\x00" in value:
        raise InvalidArgument(
            f"{what} {value!r} contains a backslash or NUL, which a Redshift string literal "
            "cannot carry as-is: remove it"
        )
    return "'" + value.replace("'", "''") + "'"


def postgres_name(name: object, *, what: str = "table name") -> tuple[str, ...]:
    """The parts of ``[schema.]table``, each checked as :func:`postgres_identifier` checks."""
    if not isinstance(name, str):
        raise InvalidArgument(f"{what} must be a str, got {type(name).__name__}")
    parts = tuple(name.split("."))
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise InvalidArgument(
            f"{what} {name!r} is not a [schema.]table name: give one or two non-empty parts "
            "separated by '.'"
        )
    for part in parts:
        _postgres_part(part, what)
    return parts


def _postgres_part(part: str, what: str) -> None:
    if "\x00" in part:
        raise InvalidArgument(f"{what} {part!r} contains NUL, which PostgreSQL cannot store")
    try:
        size = len(part.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} {part!r} is not valid Unicode (a lone surrogate)") from None
    if size > POSTGRES_MAX_NAME_BYTES:
        raise InvalidArgument(
            f"{what} {part!r} is {size} bytes; PostgreSQL would truncate it to "
            f"{POSTGRES_MAX_NAME_BYTES} (two names could become one table): use a shorter name"
        )


def postgres_identifier(*parts: str, what: str = "identifier") -> str:
    """The parts of one name as a quoted PostgreSQL identifier (``"a""b"."c"``): any text but
    NUL, each part at most 63 bytes in UTF-8, else :class:`InvalidArgument`."""
    if not 1 <= len(parts) <= 3:
        raise InvalidArgument(f"{what} must have 1 to 3 parts, got {len(parts)}")
    for part in parts:
        if not isinstance(part, str) or not part:
            raise InvalidArgument(f"{what} parts must be non-empty str, got {part!r}")
        _postgres_part(part, what)
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def sqlite_field(field: object) -> str:
    """``field`` if SQLite can bind it as a text parameter (a non-empty str without NUL or lone
    surrogates); raises :class:`InvalidArgument` otherwise."""
    if not isinstance(field, str) or not field or "\x00" in field:
        raise InvalidArgument(f"field {field!r} must be a non-empty str without NUL")
    try:
        field.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"field {field!r} is not valid Unicode (a lone surrogate)") from None
    return field


def sqlite_identifier(name: object, *, what: str = "table name") -> str:
    """``name`` as one quoted SQLite identifier (``"a""b"``): any non-empty text but NUL and
    lone surrogates, and not starting with ``sqlite_`` in any case (SQLite refuses to create
    such tables: they are its own). Raises :class:`InvalidArgument` naming ``what``."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{what} must be a non-empty str, got {name!r}")
    if "\x00" in name:
        raise InvalidArgument(f"{what} {name!r} contains NUL, which SQLite cannot store")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} {name!r} is not valid Unicode (a lone surrogate)") from None
    if name[:7].lower() == "sqlite_":
        raise InvalidArgument(
            f"{what} {name!r} starts with 'sqlite_', which SQLite keeps for its own tables: "
            "give another name"
        )
    return '"' + name.replace('"', '""') + '"'
