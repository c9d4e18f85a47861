"""Compositions of the stateless_state primitives: the batcher and the S3 to Redshift pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stateless_state.lazy import lazy_attributes

if TYPE_CHECKING:
    from .batcher import (
        AddResult,
        Arrival,
        Batch,
        Batcher,
        BatchState,
        IncompleteAdd,
        Member,
        Thresholds,
    )
    from .loading import LoadTicket
    from .manifest import Manifest, ManifestEntry, build_manifest, write_manifest
    from .pipeline import S3ToRedshift
    from .postgres import PostgresLoader
    from .redshift import CopyFormat, Loader, LoadOutcome, RedshiftDataApiLoader, RedshiftLoadError
    from .s3 import ParseResult, parse_s3_event, s3_arrivals
    from .warehouse import LocalWarehouseLoader

# Each name loads its module when first used (PEP 562): ``from patterns import S3ToRedshift``
# in a handler does not load the local warehouse (sqlite3), the CLI or the configuration.
_LAZY = {
    **dict.fromkeys(
        ("AddResult", "Arrival", "Batch", "BatchState", "Member", "Thresholds"), "batches"
    ),
    **dict.fromkeys(("Batcher", "IncompleteAdd"), "batcher"),
    "LoadTicket": "loading",
    **dict.fromkeys(("Manifest", "ManifestEntry", "build_manifest", "write_manifest"), "manifest"),
    "S3ToRedshift": "pipeline",
    "PostgresLoader": "postgres",
    **dict.fromkeys(
        ("CopyFormat", "Loader", "LoadOutcome", "RedshiftDataApiLoader", "RedshiftLoadError"),
        "redshift",
    ),
    **dict.fromkeys(("ParseResult", "parse_s3_event", "s3_arrivals"), "s3"),
    "LocalWarehouseLoader": "warehouse",
}


__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = [
    "AddResult",
    "Arrival",
    "Batch",
    "BatchState",
    "Batcher",
    "CopyFormat",
    "IncompleteAdd",
    "LoadOutcome",
    "LoadTicket",
    "Loader",
    "LocalWarehouseLoader",
    "Manifest",
    "ManifestEntry",
    "Member",
    "ParseResult",
    "PostgresLoader",
    "RedshiftDataApiLoader",
    "RedshiftLoadError",
    "S3ToRedshift",
    "Thresholds",
    "build_manifest",
    "parse_s3_event",
    "s3_arrivals",
    "write_manifest",
]
