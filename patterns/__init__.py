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
    from .batcher.load_ticket import LoadTicket
    from .batcher.manifest import Manifest, ManifestEntry, build_manifest, write_manifest
    from .feeds.pipeline import S3Feeds
    from .loaders.base import Loader, LoadOutcome
    from .loaders.postgres import PostgresLoader
    from .loaders.redshift import CopyFormat, RedshiftDataApiLoader, RedshiftLoadError
    from .loaders.sqlite import LocalWarehouseLoader
    from .pipeline import S3ToRedshift, sweep_all
    from .s3 import ParseResult, parse_s3_event, s3_arrivals

# Each name loads its module when first used (PEP 562): ``from patterns import S3ToRedshift``
# in a handler does not load the local warehouse (sqlite3), the CLI or the configuration.
_LAZY = {
    **dict.fromkeys(("Arrival", "Member"), "batcher.arrivals"),
    **dict.fromkeys(("AddResult", "Batch", "BatchState", "Thresholds"), "batcher.batches"),
    **dict.fromkeys(("Batcher", "IncompleteAdd"), "batcher"),
    "LoadTicket": "batcher.load_ticket",
    **dict.fromkeys(
        ("Manifest", "ManifestEntry", "build_manifest", "write_manifest"), "batcher.manifest"
    ),
    **dict.fromkeys(("S3ToRedshift", "sweep_all"), "pipeline"),
    "S3Feeds": "feeds.pipeline",
    **dict.fromkeys(("Loader", "LoadOutcome"), "loaders.base"),
    "PostgresLoader": "loaders.postgres",
    **dict.fromkeys(
        ("CopyFormat", "RedshiftDataApiLoader", "RedshiftLoadError"), "loaders.redshift"
    ),
    **dict.fromkeys(("ParseResult", "parse_s3_event", "s3_arrivals"), "s3"),
    "LocalWarehouseLoader": "loaders.sqlite",
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
    "S3Feeds",
    "S3ToRedshift",
    "Thresholds",
    "build_manifest",
    "parse_s3_event",
    "s3_arrivals",
    "sweep_all",
    "write_manifest",
]
