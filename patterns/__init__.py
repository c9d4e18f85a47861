"""Compositions of the stateless_state primitives: the batcher and the S3 to Redshift pipeline."""

from __future__ import annotations

__all__: list[str] = []
