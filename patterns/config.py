"""Configuration of the S3 → Redshift pipeline from environment variables: the same code in
Lambda, in the local demo and against real AWS (``S3ToRedshift.from_env()``).

=============================  ================================================================
``STATELESS_STATE_TABLE``      the DynamoDB table (required)
``STREAM``                     the batch stream name (default ``events``)
``MANIFEST_BUCKET``            where manifests are written (required)
``MANIFEST_PREFIX``            default ``manifests/``
``THRESHOLD_COUNT``            files per batch, 1 to 2**63-1 (default 1000; empty to disable)
``THRESHOLD_BYTES``            bytes per batch, 1 to 2**63-1 (default 512 MiB; empty to disable)
``THRESHOLD_AGE``              seconds a batch may stay open, > 0 (default 300; empty to disable)
``LANES``                      independent batch sequences, 1 to 256 (default 1)
``LOAD_LEASE``                 seconds a loader holds a batch, 1 to 86400 (default 300)
``REDSHIFT_TABLE``             target ``schema.table``; set it to load into Redshift
``REDSHIFT_IAM_ROLE``          the role COPY assumes to read S3
``REDSHIFT_DATABASE``          the database
``REDSHIFT_WORKGROUP``         a Redshift Serverless workgroup, or
``REDSHIFT_CLUSTER``           a provisioned cluster identifier
``REDSHIFT_SECRET_ARN``        Secrets Manager auth, or ``REDSHIFT_DB_USER`` (cluster only)
``REDSHIFT_GZIP``              ``1`` when the files are gzipped, ``0`` when not
``REDSHIFT_LEDGER_TABLE``      the ledger (default: the target's own,
                               ``<schema>.stateless_state_ledger_<table>``)
``LOCAL_WAREHOUSE``            a SQLite path: load locally instead (the demo)
``POSTGRES_DSN``               a PostgreSQL connection string: load into PostgreSQL instead
``POSTGRES_TABLE``             its target ``schema.table`` (``POSTGRES_LEDGER_TABLE``: ledger)
=============================  ================================================================

Every variable is checked when the pipeline is built, before any arrival is stored: a value
that would make every later load fail is :class:`~stateless_state.InvalidArgument` naming the
variable, its value and what is accepted. Every problem is reported at once
(:class:`SettingsRefused`, one line, each problem numbered), so a first deployment is not a
loop of fixing one variable, redeploying and meeting the next. Numbers are ASCII digits only
(seconds may have a decimal part): ``int()`` would also take other scripts' digits
(Arabic-Indic ``"١٢"``), full-width ones, ``"1_000"`` and ``" 12 "``, and ``float()``
``"nan"`` and ``"inf"``. Zero is never a default in disguise: ``LANES=0`` is refused, not
read as 1. An empty variable is unset, so that a template can pass every parameter, except
where empty has a meaning (a threshold's: off) or none (``STREAM``, ``LANES``,
``LOAD_LEASE``: refused). Exactly one warehouse: the local one, PostgreSQL or Redshift;
settings of two, or of one by halves, are refused naming the variables on both sides.

**Many feeds** (``S3Feeds.from_env()``, :mod:`patterns.feeds`): each feed's stream, target,
thresholds and lanes live in the feeds' configuration, so the stream, threshold, lane and
warehouse variables above are refused beside ``FEEDS_CONFIG`` (set one or the other);
``STATELESS_STATE_TABLE``, ``MANIFEST_BUCKET``, ``MANIFEST_PREFIX`` and ``LOAD_LEASE`` keep
their meaning, and :func:`feeds_settings` reads these:

=============================  ================================================================
``FEEDS_CONFIG``               the configuration's name (default ``feeds``)
``FEEDS_CACHE_INTERVAL``       seconds a container keeps it, 0 to 900 (default 60)
``FEEDS``                      feeds declared in the deployment, as JSON:
                               ``{"revision": 3, "feeds": [{"name": ..., "bucket": ...,
                               "target": {"kind": "redshift", ...}}, ...]}`` (optional)
``FEEDS_FILE``                 or the path of a file holding that JSON, relative to the
                               function's code (``LAMBDA_TASK_ROOT``) unless absolute: Lambda
                               caps a function's environment at 4 KB, about 9 Redshift feeds
``FEED_LOCATIONS``             ``bucket/prefix,...``: the locations the functions may read (the
                               template's ``FeedLocations``); a declared feed outside them is
                               refused, a stored one logged (optional)
=============================  ================================================================

DynamoDB and S3 endpoints follow boto3's conventions (``AWS_ENDPOINT_URL_DYNAMODB``,
``AWS_ENDPOINT_URL_S3``), which is how the local demo points the same code at its local services.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from stateless_state import InvalidArgument, Store, domain
from stateless_state.clients import aws_client
from stateless_state.codec import DuplicateKey, loads_strict

from .batcher.arrivals import MAX_ARRIVAL_SIZE
from .batcher.batches import Thresholds, batch_id
from .batcher.manifest_keys import check_prefix
from .loaders.base import Loader
from .loaders.ledger import same_table
from .loaders.redshift import RedshiftDataApiLoader
from .s3 import check_bucket

__all__ = [
    "MAX_LOAD_LEASE",
    "SettingsRefused",
    "build_loader",
    "feeds_settings",
    "pipeline_settings",
]

T = TypeVar("T")

MAX_LOAD_LEASE = 86_400
"""The longest ``LOAD_LEASE``, in seconds: a Data API statement runs for at most 24 hours, and a
longer lease only delays the takeover of a crashed loader's batch."""

_INTEGER = re.compile(r"[0-9]+", re.ASCII)
_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)
# The Data API's own patterns for these parameters (botocore's model of redshift-data), which
# botocore does not check: a name outside them fails every load's first request.
_CLUSTER = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", re.ASCII)
_WORKGROUP = re.compile(
    r"[a-z0-9-]{3,63}|arn:aws(-[a-z]+)*:redshift-serverless:[a-z0-9-]+:[0-9]{12}:workgroup/"
    r"[a-z0-9-]{1,63}(/[a-z0-9-]{1,63})?",
    re.ASCII,
)

_LOCAL = ("LOCAL_WAREHOUSE",)
_POSTGRES = ("POSTGRES_DSN", "POSTGRES_TABLE", "POSTGRES_LEDGER_TABLE")
_REDSHIFT_FIELDS = {
    "REDSHIFT_TABLE": "table",
    "REDSHIFT_IAM_ROLE": "iam_role",
    "REDSHIFT_DATABASE": "database",
    "REDSHIFT_WORKGROUP": "workgroup_name",
    "REDSHIFT_CLUSTER": "cluster_identifier",
    "REDSHIFT_SECRET_ARN": "secret_arn",
    "REDSHIFT_DB_USER": "db_user",
    "REDSHIFT_LEDGER_TABLE": "ledger_table",
}
_REDSHIFT = (*_REDSHIFT_FIELDS, "REDSHIFT_GZIP")
# Settings the Redshift loader accepts, beside which one refused variable is tried alone.
_VALID_REDSHIFT: dict[str, Any] = {
    "table": "t",
    "iam_role": "arn:aws:iam::123456789012:role/r",
    "database": "dev",
    "workgroup_name": "w",
}


class SettingsRefused(InvalidArgument):
    """More than one environment variable is missing, refused or in conflict: ``problems``
    holds one message per problem, each naming its variables; the message numbers them all.
    (A single problem is a plain :class:`~stateless_state.InvalidArgument`.)"""

    def __init__(self, problems: Sequence[str]) -> None:
        listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
        super().__init__(f"{len(problems)} problems with the pipeline's settings: {listed}")
        self.problems = tuple(problems)


class _Problems:
    """The problems found so far; :meth:`check` runs one check and keeps its refusal, so that
    the checks after it still run."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, check: Callable[[], T]) -> T | None:
        """``check()``, or None when it refused (its problems kept)."""
        try:
            return check()
        except SettingsRefused as e:
            self.found.extend(e.problems)
        except InvalidArgument as e:
            self.found.append(str(e))
        return None

    def add(self, problem: InvalidArgument) -> None:
        self.found.append(str(problem))

    def raise_any(self) -> None:
        if len(self.found) == 1:
            raise InvalidArgument(self.found[0])
        if self.found:
            raise SettingsRefused(self.found)


def _refused(name: str, raw: str, accepted: str) -> InvalidArgument:
    return InvalidArgument(f"environment variable {name}={raw!r} is refused: {accepted}")


def _named(name: str, raw: str, check: Callable[[], T]) -> T:
    """``check()``, its :class:`InvalidArgument` naming the variable the value came from."""
    try:
        return check()
    except InvalidArgument as e:
        raise _refused(name, raw, str(e)) from None


def _given(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value; None when it is unset or empty."""
    return env.get(name) or None


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise InvalidArgument(f"environment variable {name} is not set (or empty): set it")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, *, maximum: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    value = int(raw) if _INTEGER.fullmatch(raw) else None
    if value is None or not 1 <= value <= maximum:
        off = ", or empty to turn it off" if name.startswith("THRESHOLD_") else ""
        raise _refused(name, raw, f"give an integer from 1 to {maximum} in ASCII digits{off}")
    return value


def _seconds(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float,
    maximum: float,
    allow_zero: bool = False,
) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    value = float(raw) if _SECONDS.fullmatch(raw) else None
    zero = allow_zero and value == 0
    if value is None or (value <= 0 and not zero) or value < minimum or value > maximum:
        low = (
            f"at least {minimum:g}" if minimum > 0 else "0 or more" if allow_zero else "more than 0"
        )
        off = ", or empty to turn it off" if name.startswith("THRESHOLD_") else ""
        raise _refused(
            name,
            raw,
            f"give seconds, {low} and at most {maximum:g}, in ASCII digits with an optional "
            f"decimal part (e.g. 300 or 2.5){off}",
        )
    return value


def _warehouse(env: Mapping[str, str]) -> str:
    """Which warehouse the environment configures: exactly one of them has variables set."""
    sides = {
        "local": [n for n in _LOCAL if _given(env, n)],
        "postgres": [n for n in _POSTGRES if _given(env, n)],
        "redshift": [n for n in _REDSHIFT if _given(env, n)],
    }
    chosen = [kind for kind, names in sides.items() if names]
    if len(chosen) > 1:
        given = "; ".join(", ".join(sides[kind]) for kind in chosen)
        raise InvalidArgument(
            f"environment variables for more than one warehouse are set ({given}): the "
            "pipeline loads into one, so unset the others' (LOCAL_WAREHOUSE, POSTGRES_* or "
            "REDSHIFT_*)"
        )
    if not chosen:
        raise InvalidArgument(
            "no warehouse is configured: set LOCAL_WAREHOUSE (a SQLite path), POSTGRES_DSN and "
            "POSTGRES_TABLE, or REDSHIFT_TABLE, REDSHIFT_IAM_ROLE, REDSHIFT_DATABASE and "
            "REDSHIFT_WORKGROUP or REDSHIFT_CLUSTER"
        )
    return chosen[0]


def _incomplete(env: Mapping[str, str], missing: list[str], warehouse: str) -> None:
    if missing:
        present = [n for n in (*_POSTGRES, *_REDSHIFT) if _given(env, n)]
        raise InvalidArgument(
            f"the {warehouse} settings are incomplete: {', '.join(present)} set but "
            f"{', '.join(missing)} not; set {'it' if len(missing) == 1 else 'them'}"
        )


def _missing(env: Mapping[str, str], *names: str) -> list[str]:
    return [n for n in names if not _given(env, n)]


def _exclusive(env: Mapping[str, str], a: str, b: str, why: str) -> None:
    if _given(env, a) and _given(env, b):
        raise InvalidArgument(
            f"environment variables {a} and {b} are both set, and {why}: unset one of them"
        )


def _postgres(env: Mapping[str, str], s3: Any) -> Loader:
    from .loaders.postgres import PostgresLoader

    _incomplete(env, _missing(env, "POSTGRES_DSN", "POSTGRES_TABLE"), "PostgreSQL")
    dsn, table = env["POSTGRES_DSN"], env["POSTGRES_TABLE"]
    if not dsn.strip():
        raise _refused("POSTGRES_DSN", dsn, "give a PostgreSQL connection string")
    ledger = _given(env, "POSTGRES_LEDGER_TABLE") or "stateless_state_ledger"
    _named("POSTGRES_TABLE", table, lambda: PostgresLoader(dsn, table, s3))
    _named(
        "POSTGRES_LEDGER_TABLE",
        ledger,
        lambda: PostgresLoader(dsn, "t", s3, ledger_table=ledger),
    )
    if same_table(table, ledger, fold_case=False):
        raise InvalidArgument(
            f"POSTGRES_TABLE={table!r} and the ledger (POSTGRES_LEDGER_TABLE={ledger!r}) are "
            "one table: every load would write its rows into the ledger; give them apart"
        )
    return PostgresLoader(dsn, table, s3, ledger_table=ledger)


def _redshift(env: Mapping[str, str]) -> Loader:
    problems = _Problems()
    missing = _missing(env, "REDSHIFT_TABLE", "REDSHIFT_IAM_ROLE", "REDSHIFT_DATABASE")
    if not (_given(env, "REDSHIFT_WORKGROUP") or _given(env, "REDSHIFT_CLUSTER")):
        missing.append("REDSHIFT_WORKGROUP (Serverless) or REDSHIFT_CLUSTER (provisioned)")
    problems.check(lambda: _incomplete(env, missing, "Redshift"))
    for a, b, why in (
        ("REDSHIFT_WORKGROUP", "REDSHIFT_CLUSTER", "a load goes to one workgroup or cluster"),
        (
            "REDSHIFT_SECRET_ARN",
            "REDSHIFT_DB_USER",
            "a load authenticates with the secret or as the database user, not both",
        ),
        (
            "REDSHIFT_WORKGROUP",
            "REDSHIFT_DB_USER",
            "the Data API takes a database user for a provisioned cluster only (Redshift "
            "Serverless derives it from the IAM identity)",
        ),
    ):
        problems.check(partial(_exclusive, env, a, b, why))
    for name, pattern, accepted in (
        ("REDSHIFT_CLUSTER", _CLUSTER, "a cluster identifier: a-z 0-9 and single '-'"),
        ("REDSHIFT_WORKGROUP", _WORKGROUP, "a workgroup name (3 to 63 of a-z 0-9 -) or ARN"),
    ):
        raw = _given(env, name)
        if raw is not None and not (pattern.fullmatch(raw) and len(raw) <= 128):
            problems.add(_refused(name, raw, f"give {accepted}, as the Data API requires"))
    gzip = env.get("REDSHIFT_GZIP") or "0"
    if gzip not in {"0", "1"}:
        problems.add(_refused("REDSHIFT_GZIP", gzip, "give 1 (the files are gzipped) or 0"))
    fields: dict[str, Any] = {f: _given(env, n) for n, f in _REDSHIFT_FIELDS.items()}
    for name, field in _REDSHIFT_FIELDS.items():
        problems.check(partial(_redshift_field, name, field, fields[field]))
    problems.raise_any()
    loader = RedshiftDataApiLoader(**fields, gzip=gzip == "1")
    if same_table(loader.table, loader.ledger_table, fold_case=True):
        raise InvalidArgument(
            f"REDSHIFT_TABLE={loader.table!r} is the loader's ledger table "
            f"(REDSHIFT_LEDGER_TABLE={loader.ledger_table!r}): every load would write its rows "
            "into the ledger; give them apart"
        )
    return loader


def _redshift_field(name: str, field: str, value: str | None) -> None:
    """Raise, naming ``name``, if the loader refuses ``value`` as ``field`` beside valid
    settings: it checks each field on its own, so this tells which variable it refused."""
    checked = {"table", "iam_role", "database", "secret_arn", "ledger_table"}
    if value is not None and field in checked:
        _named(name, value, lambda: RedshiftDataApiLoader(**{**_VALID_REDSHIFT, field: value}))


def build_loader(env: Mapping[str, str], s3: Any) -> Loader:
    """The local warehouse when ``LOCAL_WAREHOUSE`` is set, PostgreSQL when ``POSTGRES_*``
    are, the Redshift Data API loader when ``REDSHIFT_*`` are; settings of more than one, of
    none, or of one by halves are :class:`InvalidArgument` naming the variables. No request."""
    kind = _warehouse(env)
    if kind == "local":
        # Imported here, as PostgreSQL's is: a function loading into Redshift never loads
        # sqlite3 (tests/test_cold_start.py).
        from .loaders.sqlite import LocalWarehouseLoader

        return LocalWarehouseLoader(env["LOCAL_WAREHOUSE"], s3)
    if kind == "postgres":
        return _postgres(env, s3)
    return _redshift(env)


def pipeline_settings(
    env: Mapping[str, str] | None = None, *, store: Store | None = None, s3: Any = None
) -> dict[str, Any]:
    """The arguments of :class:`~patterns.pipeline.S3ToRedshift` as configured by ``env``
    (default: ``os.environ``); ``S3ToRedshift.from_env()`` builds the pipeline from them.
    Every variable is checked here (see the module docstring): no request is made."""
    env = os.environ if env is None else env
    problems = _Problems()
    if store is None:
        table = problems.check(lambda: _require(env, "STATELESS_STATE_TABLE"))
        if table is not None:
            store = problems.check(
                lambda: _named("STATELESS_STATE_TABLE", table, lambda: Store(table))
            )
    raw_stream = env.get("STREAM", "events")
    stream = problems.check(
        lambda: _named("STREAM", raw_stream, lambda: domain.name("stream", raw_stream))
    )
    lanes = problems.check(lambda: _integer(env, "LANES", 1, maximum=256))
    thresholds = _thresholds(env, problems)
    lease, bucket, prefix = _lease_and_manifests(env, problems)
    if stream is not None and lanes is not None:
        longest = batch_id(stream, lanes - 1, 10**12 - 1)
        problems.check(
            lambda: _named("MANIFEST_PREFIX", prefix, lambda: check_prefix(prefix, longest))
        )
    if s3 is None:
        s3 = aws_client("s3")
    loader = problems.check(lambda: build_loader(env, s3))
    check_stream = getattr(loader, "check_stream", None)
    if callable(check_stream) and stream is not None:
        problems.check(lambda: _named("STREAM", stream, lambda: check_stream(stream)))
    problems.raise_any()
    return {
        "store": store,
        "stream": stream,
        "loader": loader,
        "manifest_bucket": bucket,
        "manifest_prefix": prefix,
        "thresholds": thresholds,
        "lanes": lanes,
        "load_lease": lease,
        "s3_client": s3,
    }


def _thresholds(env: Mapping[str, str], problems: _Problems) -> Thresholds | None:
    # Empty turns a threshold off (documented); anything else must be a valid number.
    def off(name: str) -> bool:
        return env.get(name) == ""

    big = MAX_ARRIVAL_SIZE
    before = len(problems.found)
    count = (
        None
        if off("THRESHOLD_COUNT")
        else problems.check(lambda: _integer(env, "THRESHOLD_COUNT", 1000, maximum=big))
    )
    size = (
        None
        if off("THRESHOLD_BYTES")
        else problems.check(lambda: _integer(env, "THRESHOLD_BYTES", 2**29, maximum=big))
    )
    age = (
        None
        if off("THRESHOLD_AGE")
        else problems.check(lambda: _seconds(env, "THRESHOLD_AGE", 300, minimum=0, maximum=1e12))
    )
    if len(problems.found) > before:
        return None
    if count is None and size is None and age is None:
        problems.add(
            InvalidArgument(
                "THRESHOLD_COUNT, THRESHOLD_BYTES and THRESHOLD_AGE are all empty: no batch "
                "would ever seal; set at least one"
            )
        )
        return None
    return Thresholds(count=count, bytes=size, age=age)


def _lease_and_manifests(
    env: Mapping[str, str], problems: _Problems
) -> tuple[float | None, str | None, str]:
    """``LOAD_LEASE``, ``MANIFEST_BUCKET`` and ``MANIFEST_PREFIX`` as both deployments read
    them (a refused value None, its problem kept); the prefix is checked by the caller, which
    knows the longest batch id it must hold."""
    lease = problems.check(
        lambda: _seconds(env, "LOAD_LEASE", 300, minimum=1, maximum=MAX_LOAD_LEASE)
    )
    bucket = problems.check(lambda: _require(env, "MANIFEST_BUCKET"))
    if bucket is not None:
        problems.check(lambda: _named("MANIFEST_BUCKET", bucket, lambda: check_bucket(bucket)))
    return lease, bucket, _given(env, "MANIFEST_PREFIX") or "manifests/"


_ONE_STREAM = ("STREAM", "LANES", "THRESHOLD_COUNT", "THRESHOLD_BYTES", "THRESHOLD_AGE")


def _declaration(env: Mapping[str, str]) -> tuple[str, str] | None:
    """Where the declared feeds come from and their JSON text: ``FEEDS``, or the file
    ``FEEDS_FILE`` names (relative to ``LAMBDA_TASK_ROOT``, the function's code, unless
    absolute); None when neither is set."""
    _exclusive(env, "FEEDS", "FEEDS_FILE", "the feeds are declared in one of them")
    raw = _given(env, "FEEDS")
    if raw is not None:
        return "FEEDS", raw
    path = _given(env, "FEEDS_FILE")
    if path is None:
        return None
    from pathlib import Path

    full = Path(env.get("LAMBDA_TASK_ROOT") or Path.cwd()) / path
    try:
        return f"FEEDS_FILE ({full})", full.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _refused(
            "FEEDS_FILE",
            path,
            f"cannot read {full} ({type(e).__name__}: {e}): ship the file with the function's "
            "code, or give its absolute path",
        ) from None


def _declared_feeds(name: str, raw: str, problems: _Problems) -> tuple[list[Any], int | None]:
    """The feeds and revision a declaration's JSON gives; each problem kept in ``problems``."""
    import json

    from .feeds.feed import feed_from_json

    shape = (
        'give {"revision": <int raised with every change>, "feeds": [<feed>, ...]}, each '
        "feed as `stateless-state feeds show --json` prints one"
    )
    try:
        data = loads_strict(raw)
    except json.JSONDecodeError as e:
        problems.add(_refused(name, raw[:80], f"not JSON ({e.msg} at {e.pos}): {shape}"))
        return [], None
    except DuplicateKey as e:
        problems.add(_refused(name, raw[:80], f"{e}: {shape}"))
        return [], None
    if (
        not isinstance(data, dict)
        or set(data) != {"revision", "feeds"}
        or not isinstance(data["feeds"], list)
    ):
        problems.add(_refused(name, raw[:80], shape))
        return [], None
    revision = data["revision"]
    checked = problems.check(
        lambda: _named(
            name,
            raw[:80],
            lambda: domain.integer(revision, f"{name} revision", minimum=1, maximum=10**12 - 1),
        )
    )
    declared = []
    for i, item in enumerate(data["feeds"]):
        where = f"{name} feeds[{i}]"
        before = len(problems.found)
        feed = problems.check(
            partial(_named, where, json.dumps(item)[:80], partial(feed_from_json, item))
        )
        if feed is not None:
            problems.check(partial(_named, where, feed.name, feed.check))
        if feed is not None and len(problems.found) == before:
            declared.append(feed)
    return declared, checked


def _locations(env: Mapping[str, str], problems: _Problems) -> list[str] | None:
    """``FEED_LOCATIONS``: the ``bucket/prefix`` entries the functions may read, or None; each
    refused entry kept in ``problems``."""
    raw = _given(env, "FEED_LOCATIONS")
    if raw is None:
        return None
    from .feeds.routing import check_location

    entries = [
        problems.check(partial(_named, "FEED_LOCATIONS", e[:80], partial(check_location, e)))
        for e in raw.split(",")
    ]
    return [e for e in entries if e is not None]


def feeds_settings(
    env: Mapping[str, str] | None = None, *, store: Store | None = None, s3: Any = None
) -> dict[str, Any]:
    """The arguments of :class:`~patterns.feeds.S3Feeds` as configured by ``env`` (default:
    ``os.environ``); ``S3Feeds.from_env()`` builds the deployment from them. Every variable is
    checked here, ``FEEDS`` (or ``FEEDS_FILE``) down to each declared feed's target, and every
    problem is reported at once (:class:`SettingsRefused`): no request is made."""
    env = os.environ if env is None else env
    problems = _Problems()
    one_stream = [n for n in (*_ONE_STREAM, *_LOCAL, *_POSTGRES, *_REDSHIFT) if _given(env, n)]
    if one_stream:
        problems.add(
            InvalidArgument(
                f"environment variables {', '.join(one_stream)} configure one stream, but a "
                "feeds deployment takes each feed's stream, thresholds, lanes and target from "
                "the feeds' configuration: unset them (and declare the feed in FEEDS, or add it "
                "with `stateless-state feeds add`)"
            )
        )
    if store is None:
        table = problems.check(lambda: _require(env, "STATELESS_STATE_TABLE"))
        if table is not None:
            store = problems.check(
                lambda: _named("STATELESS_STATE_TABLE", table, lambda: Store(table))
            )
    name = env.get("FEEDS_CONFIG") or "feeds"
    problems.check(
        lambda: _named("FEEDS_CONFIG", name, lambda: domain.name("feeds configuration name", name))
    )
    interval = problems.check(
        lambda: _seconds(env, "FEEDS_CACHE_INTERVAL", 60, minimum=0, maximum=900, allow_zero=True)
    )
    lease, bucket, prefix = _lease_and_manifests(env, problems)
    longest = batch_id("%" * 255, 255, 10**12 - 1)  # any feed's, percent-encoded
    problems.check(lambda: _named("MANIFEST_PREFIX", prefix, lambda: check_prefix(prefix, longest)))
    locations = _locations(env, problems)
    declared: list[Any] = []
    revision = None
    source = problems.check(lambda: _declaration(env))
    if source is not None:
        name_of_source = source[0]
        declared, revision = _declared_feeds(*source, problems)
        if declared:
            from .feeds.config import declared_problems

            # A revision refused above is reported there; the feeds are checked all the same.
            for problem in declared_problems(
                declared,
                revision=revision or 1,
                manifest_bucket=bucket,
                manifest_prefix=prefix,
                locations=locations,
            ):
                problems.add(InvalidArgument(f"{name_of_source}: {problem}"))
    problems.raise_any()
    if s3 is None:
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
        s3 = aws_client("s3", region_name=region)
    return {
        "store": store,
        "manifest_bucket": bucket,
        "manifest_prefix": prefix,
        "config_name": name,
        "cache_interval": interval,
        "declared": declared,
        "declared_revision": revision,
        "locations": locations,
        "load_lease": lease,
        "s3_client": s3,
    }
