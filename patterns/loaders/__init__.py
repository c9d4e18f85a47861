"""Warehouse loaders: the contract (:mod:`.base`) and one module per warehouse.

* :mod:`.redshift`: Amazon Redshift through the Data API (COPY of a manifest);
* :mod:`.postgres`: PostgreSQL (psycopg), rows read from S3 by version;
* :mod:`.sqlite`: an embedded SQLite warehouse for local runs and the demo;
* :mod:`.ledger`: the one rule that names a target's ledger when none is given, per dialect.

Each name loads its module when first used, so a handler that loads into Redshift never
imports sqlite3 or psycopg.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stateless_state.lazy import lazy_attributes

if TYPE_CHECKING:
    from .base import AbandonOutcome, Loader, LoadOutcome, Ticket, read_records
    from .ledger import postgres_ledger, redshift_ledger, same_table
    from .postgres import PostgresLoader
    from .redshift import CopyFormat, RedshiftDataApiLoader, RedshiftLoadError
    from .sqlite import LocalWarehouseLoader

_LAZY = {
    **dict.fromkeys(("AbandonOutcome", "LoadOutcome", "Loader", "Ticket", "read_records"), "base"),
    **dict.fromkeys(("postgres_ledger", "redshift_ledger", "same_table"), "ledger"),
    "PostgresLoader": "postgres",
    **dict.fromkeys(("CopyFormat", "RedshiftDataApiLoader", "RedshiftLoadError"), "redshift"),
    "LocalWarehouseLoader": "sqlite",
}

__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = [
    "AbandonOutcome",
    "CopyFormat",
    "LoadOutcome",
    "Loader",
    "LocalWarehouseLoader",
    "PostgresLoader",
    "RedshiftDataApiLoader",
    "RedshiftLoadError",
    "Ticket",
    "postgres_ledger",
    "read_records",
    "redshift_ledger",
    "same_table",
]
