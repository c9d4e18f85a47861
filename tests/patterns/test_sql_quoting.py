"""One quoting rule per SQL dialect: hostile names reach PostgreSQL as the names they are."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from patterns import PostgresLoader
from patterns.sql import postgres_identifier, redshift_identifier, redshift_literal
from stateless_state import InvalidArgument

HOSTILE = [
    'led"ger',
    'x" (id int); DROP TABLE "victim"; --',
    "50% off; --",
    "emoji 😀 #/ name",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_ledger_ddl_quotes_as_the_loads_do(postgres: str, name: str) -> None:
    schema = f"q{uuid.uuid4().hex[:8]}"
    s3: Any = None
    loader = PostgresLoader(postgres, f"{schema}.events", s3, ledger_table=f"{schema}.{name}")
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.victim (id int)")
        conn.execute(loader.ledger_ddl())
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        }
    assert tables == {"victim", name}, "the DDL created exactly the named ledger, dropped nothing"
    # The loads' statements (with bound parameters) find that same table.
    assert loader.abandon("s/0/000000000001") == "abandoned"
    assert loader.abandon("s/0/000000000001") == "abandoned"
    assert loader.ledger() == {}


def test_postgres_refuses_names_it_would_truncate_or_cannot_store() -> None:
    with pytest.raises(InvalidArgument, match="truncate"):
        postgres_identifier("a" * 64)
    with pytest.raises(InvalidArgument, match="NUL"):
        postgres_identifier("a\x00b")
    with pytest.raises(InvalidArgument, match="truncate"):
        PostgresLoader("postgresql://x", "s." + "é" * 32, None)


@pytest.mark.parametrize("digit", ["\u0661", "\u06f1", "\uff11"])
def test_redshift_rules_accept_ascii_only(digit: str) -> None:
    with pytest.raises(InvalidArgument):
        redshift_identifier(f"t{digit}")
    with pytest.raises(InvalidArgument):
        redshift_identifier("tabl\u0435")  # Cyrillic e
    assert redshift_identifier("s.t$1") == '"s"."t$1"'
    assert redshift_literal("it's") == "'it''s'"
    with pytest.raises(InvalidArgument, match="backslash"):
        redshift_literal("a\\'; DROP TABLE t; --")


@pytest.mark.parametrize(
    "setting",
    [
        {"iam_role": "arn:aws:iam::\u0661\u0662\u0663456789012:role/copy"},
        {"copy_options": ("MAXERROR \u0661\u0660",)},
        {"copy_options": ("IGNOREHEADER \u0661",)},
        {"copy_options": ("REGION 'us-east-\u0661'",)},
        {"secret_arn": "arn:aws:secretsmanager:us-east-1:\u066123456789012:secret:x"},
    ],
)
def test_redshift_settings_refuse_non_ascii_digits(setting: dict[str, Any]) -> None:
    from patterns.loaders.redshift import RedshiftDataApiLoader

    base: dict[str, Any] = {
        "table": "analytics.clicks",
        "iam_role": "arn:aws:iam::123456789012:role/copy",
        "database": "dev",
        "cluster_identifier": "prod",
    }
    RedshiftDataApiLoader(**base)
    with pytest.raises(InvalidArgument):
        RedshiftDataApiLoader(**{**base, **setting})


@pytest.mark.parametrize("field", ["a b", "a.b", "x#/😀", "it's", 'q"uote', "--;", "1st"])
def test_local_warehouse_counts_any_field_name(tmp_path: Any, field: str) -> None:
    import contextlib
    import json
    import time

    from patterns.loaders.sqlite import LocalWarehouseLoader

    w = LocalWarehouseLoader(tmp_path / "w.db", None)
    with contextlib.closing(w._connect()) as conn:
        for n, v in enumerate(["1", "1", "2"]):
            payload = json.dumps({field: v, "other": 0})
            conn.execute("INSERT INTO rows VALUES ('b', 'u', ?, ?)", (n, payload))
        conn.execute("INSERT INTO ledger VALUES ('b', 1, 3, ?, 'loaded')", (time.time(),))
    assert w.counts_by(field) == {("1",): 2, ("2",): 1}
    assert w.counts_by(field, "other") == {("1", "0"): 2, ("2", "0"): 1}
    with pytest.raises(InvalidArgument):
        w.counts_by("a\x00b")
