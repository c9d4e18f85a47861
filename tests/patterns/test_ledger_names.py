"""The one rule that names a target's default ledger (:mod:`patterns.loaders.ledger`): the same
shape in both dialects, in the target's schema, within each dialect's name limit (shortened with
a hash beyond it), deterministic, distinct for distinct tables, and always a name its dialect's
quoting function takes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patterns.loaders import postgres_ledger, redshift_ledger, same_table
from patterns.loaders.postgres import PostgresLoader
from patterns.loaders.redshift import RedshiftDataApiLoader
from patterns.sql import postgres_identifier, postgres_name, redshift_identifier
from stateless_state import InvalidArgument

ROLE = "arn:aws:iam::123456789012:role/copy"


@pytest.mark.parametrize("ledger", [redshift_ledger, postgres_ledger])
def test_the_rule_is_the_same_in_both_dialects(ledger: object) -> None:
    assert callable(ledger)
    assert ledger("analytics.clicks") == "analytics.stateless_state_ledger_clicks"
    assert ledger("clicks") == "stateless_state_ledger_clicks"


@pytest.mark.parametrize(
    ("ledger", "limit"), [(redshift_ledger, 127), (postgres_ledger, 63)], ids=["rs", "pg"]
)
def test_at_the_limit_the_name_is_kept_and_beyond_it_shortened_with_a_hash(
    ledger: object, limit: int
) -> None:
    assert callable(ledger)
    fits = "c" * (limit - len("stateless_state_ledger_"))
    assert ledger(f"s.{fits}") == f"s.stateless_state_ledger_{fits}"
    over_a, over_b = f"s.{fits}a", f"s.{fits}b"  # one byte over, differing only at the end
    a, b = ledger(over_a), ledger(over_b)
    assert a != b, "distinct tables, distinct ledgers, though their names' starts are one"
    for derived in (a, b):
        schema, name = derived.split(".")
        assert schema == "s" and len(name) == limit
        assert name.startswith("stateless_state_ledger_ccc")
    assert ledger(over_a) == a, "deterministic"


def test_redshift_folds_case_so_one_table_has_one_ledger_long_or_short() -> None:
    assert same_table(redshift_ledger("S.Clicks"), redshift_ledger("s.clicks"), fold_case=True)
    long = "Tt" * 60
    assert redshift_ledger(f"s.{long}") != redshift_ledger(f"s.{long.lower()}")  # as spelled...
    assert same_table(  # ...yet one table to Redshift
        redshift_ledger(f"s.{long}"), redshift_ledger(f"s.{long.lower()}"), fold_case=True
    )
    # PostgreSQL quotes identifiers: two spellings are two tables, with two ledgers.
    assert not same_table(
        postgres_ledger(f"s.{long[:50]}"),
        postgres_ledger(f"s.{long[:50].lower()}"),
        fold_case=False,
    )


def test_a_long_postgres_name_is_cut_at_a_character_boundary() -> None:
    table = "s." + "é" * 31  # 62 bytes: a valid table, whose ledger would be 85
    ledger = postgres_ledger(table)
    name = ledger.split(".")[1]
    assert len(name.encode("utf-8")) <= 63
    assert name.startswith("stateless_state_ledger_é")
    postgres_identifier(*postgres_name(ledger))


@given(st.text(min_size=1, max_size=63).filter(lambda t: "." not in t and "\x00" not in t))
def test_every_postgres_table_gets_a_ledger_postgres_can_hold(table: str) -> None:
    try:
        postgres_name(table)
    except InvalidArgument:
        return  # not a table PostgreSQL can hold: postgres_ledger refuses it too (below)
    ledger = postgres_ledger(f"s.{table}")
    postgres_identifier(*postgres_name(ledger))
    assert not same_table(ledger, f"s.{table}", fold_case=False), "never its own ledger"


@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_$]{0,126}", fullmatch=True))
def test_every_redshift_table_gets_a_ledger_redshift_takes(table: str) -> None:
    ledger = redshift_ledger(f"s.{table}")
    redshift_identifier(ledger)
    assert not same_table(ledger, f"s.{table}", fold_case=True), "never its own ledger"


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda: redshift_ledger("a;b"), "table 'a;b' is not a valid Redshift identifier"),
        (lambda: redshift_ledger("a.b.c"), "not a valid Redshift identifier"),
        (lambda: postgres_ledger("a.b.c"), "table 'a.b.c' is not a \\[schema.\\]table name"),
        (lambda: postgres_ledger("s." + "t" * 64), "PostgreSQL would truncate it"),
    ],
)
def test_a_table_its_dialect_refuses_is_refused_naming_it(call: object, problem: str) -> None:
    assert callable(call)
    with pytest.raises(InvalidArgument, match=problem):
        call()


def test_the_redshift_loader_takes_its_default_ledger_from_the_rule() -> None:
    table = "analytics." + "c" * 120
    loader = RedshiftDataApiLoader(table=table, iam_role=ROLE, database="dev", workgroup_name="w")
    assert loader.ledger_table == redshift_ledger(table)
    quoted = ".".join(f'"{p}"' for p in redshift_ledger(table).split("."))
    assert loader.ledger_ddl().startswith(f"CREATE TABLE IF NOT EXISTS {quoted} ")


def test_the_postgres_loader_by_itself_keeps_its_one_shared_ledger() -> None:
    # Its row claims take no table lock; a deployment keeps the ledger it judged batches by.
    assert PostgresLoader("host=db", "s.t", None).ledger_table == "stateless_state_ledger"
    named = PostgresLoader("host=db", "s.t", None, ledger_table=postgres_ledger("s.t"))
    assert named.ledger_ddl().startswith(
        'CREATE TABLE IF NOT EXISTS "s"."stateless_state_ledger_t" '
    )
