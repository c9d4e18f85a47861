"""A PostgreSQL feed whose stream holds NUL could never load (PostgreSQL text cannot hold NUL,
and the batch id goes in the ledger's ``batch_id``): refused when added, before any arrival is
stored, as the feed's checks promise (found by an adversarial pass, session 13)."""

from __future__ import annotations

import pytest

from patterns import PostgresLoader
from patterns.feeds import Feed, PostgresTarget
from stateless_state import InvalidArgument


def test_a_nul_in_a_postgres_feeds_stream_is_refused_when_added() -> None:
    feed = Feed("n", "bkt", PostgresTarget("host=db dbname=w", "s.a"), stream="a\x00b")
    with pytest.raises(InvalidArgument, match="NUL"):
        feed.check()


def test_the_one_stream_postgres_loader_refuses_it_too() -> None:
    with pytest.raises(InvalidArgument, match="NUL"):
        PostgresLoader("host=db dbname=w", "s.a", None).check_stream("a\x00b")
    PostgresLoader("host=db dbname=w", "s.a", None).check_stream("a b")
