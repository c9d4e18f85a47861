"""A target's ledger by name: the one rule for the ledger a target gets when none is named, per
SQL dialect, and whether two names are one table.

The rule, the same for every dialect: the ledger of ``[schema.]table`` is
``[schema.]stateless_state_ledger_<table>``, in the target's own schema, so each target has its
own (Redshift's commit locks its ledger, so loads into other targets never wait on it:
:mod:`.redshift`). The prefix keeps the ledgers out of the way of the warehouse's own tables
(a business table named ``<table>_ledger`` is plausible; one named ``stateless_state_ledger_…``
is ours) and lists them together. When the derived name is longer than the dialect allows, it
keeps the table name's start and ends in ``_`` and 16 hex digits of the name's SHA-256 (of its
lower case on Redshift, which folds case, so ``T`` and ``t``, one table, get one ledger): still
in the schema, within the limit, and distinct for distinct tables.

Every container derives the same name from the same table (no state, no I/O). Each function
checks the table with its dialect's quoting function (:mod:`patterns.sql`), and the name it
returns is one that function quotes to one identifier (the loaders quote it so in every
statement). The cost is one hash, only for a long name.

:class:`~.postgres.PostgresLoader` built by itself keeps its one shared ``stateless_state_ledger``
(its row claims take no table lock, and a deployment's batches must keep being judged by the
ledger they were judged by); a feed's PostgreSQL target takes :func:`postgres_ledger`.
"""

from __future__ import annotations

import hashlib

from ..sql import (
    POSTGRES_MAX_NAME_BYTES,
    REDSHIFT_MAX_NAME_BYTES,
    postgres_name,
    redshift_identifier,
)

__all__ = ["LEDGER_PREFIX", "postgres_ledger", "redshift_ledger", "same_table"]

LEDGER_PREFIX = "stateless_state_ledger_"
"""What a derived ledger's name starts with, before the table's name."""

_DIGEST_HEX = 16  # 64 bits of SHA-256: distinct tables' long names never meet in practice


def _derived(schema: str | None, table: str, *, max_bytes: int, fold_case: bool) -> str:
    name = LEDGER_PREFIX + table
    encoded = name.encode("utf-8")
    if len(encoded) > max_bytes:
        digest = hashlib.sha256((table.lower() if fold_case else table).encode("utf-8"))
        room = max_bytes - 1 - _DIGEST_HEX
        # Cut at a character boundary: a multi-byte character split in two is not text.
        head = encoded[:room].decode("utf-8", errors="ignore")
        name = f"{head}_{digest.hexdigest()[:_DIGEST_HEX]}"
    return name if schema is None else f"{schema}.{name}"


def redshift_ledger(table: str) -> str:
    """The default ledger of the Redshift table ``[schema.]table`` (the module's rule, within
    Redshift's 127 bytes a name). Raises :class:`~stateless_state.InvalidArgument` when
    ``table`` is not a valid Redshift name."""
    redshift_identifier(table, what="table")
    schema, _, name = table.rpartition(".")
    return _derived(schema or None, name, max_bytes=REDSHIFT_MAX_NAME_BYTES, fold_case=True)


def postgres_ledger(table: str) -> str:
    """The default ledger of the PostgreSQL table ``[schema.]table`` (the module's rule, within
    PostgreSQL's 63 bytes a name; identifiers are quoted, so case is kept). Raises
    :class:`~stateless_state.InvalidArgument` when ``table`` is not a name PostgreSQL can hold."""
    parts = postgres_name(table, what="table")
    schema = parts[0] if len(parts) == 2 else None
    return _derived(schema, parts[-1], max_bytes=POSTGRES_MAX_NAME_BYTES, fold_case=False)


def same_table(a: str, b: str, *, fold_case: bool) -> bool:
    """Whether two ``[schema.]table`` names name one table (no schema taken as ``public``;
    ``fold_case`` for Redshift, which folds identifiers to lower case)."""

    def parts(name: str) -> tuple[str, ...]:
        split = tuple((name.lower() if fold_case else name).split("."))
        return split if len(split) == 2 else ("public", *split)

    return parts(a) == parts(b)
