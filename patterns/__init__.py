"""Compositions of the stateless_state primitives: the batcher and the S3 to Redshift pipeline."""

from __future__ import annotations

from .batcher import AddResult, Arrival, Batch, Batcher, BatchState, LoadTicket, Member, Thresholds
from .manifest import Manifest, ManifestEntry, build_manifest, write_manifest
from .pipeline import S3ToRedshift
from .redshift import CopyFormat, Loader, LoadOutcome, RedshiftDataApiLoader, RedshiftLoadError
from .s3 import ParseResult, parse_s3_event, s3_arrivals
from .warehouse import LocalWarehouseLoader

__all__ = [
    "AddResult",
    "Arrival",
    "Batch",
    "BatchState",
    "Batcher",
    "CopyFormat",
    "LoadOutcome",
    "LoadTicket",
    "Loader",
    "LocalWarehouseLoader",
    "Manifest",
    "ManifestEntry",
    "Member",
    "ParseResult",
    "RedshiftDataApiLoader",
    "RedshiftLoadError",
    "S3ToRedshift",
    "Thresholds",
    "build_manifest",
    "parse_s3_event",
    "s3_arrivals",
    "write_manifest",
]
