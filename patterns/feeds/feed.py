"""What a feed is: where its files arrive, its stream, its target, its thresholds and lanes.

A :class:`Feed` is a plain, immutable value. Built, it has checked its own shape without I/O and
without importing a loader (a handler parses the stored configuration at every refresh);
:meth:`Feed.check` adds the target's checks, the ones its loader makes (identifiers, ARNs, COPY
options, what a stream name may hold in SQL literals), and the configuration calls it for every
feed added or changed, before anything is stored (:mod:`patterns.feeds.config`).

Targets, one class each:

* :class:`RedshiftTarget`: a Redshift table through the Data API, with its COPY format
  (``json``, ``json-ignorecase``, ``csv``, ``parquet``), ``gzip`` and COPY options;
* :class:`PostgresTarget`: a PostgreSQL table (records read by version, mapped by name onto its
  columns);
* :class:`LocalTarget`: a table of the embedded SQLite warehouse, for local runs.

The PostgreSQL and local targets read every file as their ``format`` (a key of
:data:`FILE_FORMATS`) and ``gzip`` say, refusing a file that is not so, as a Redshift COPY
reads a whole manifest as one format; without a ``format`` they read each file by its content
(JSON lines or CSV by the key's suffix, gzip by its magic bytes).

Each target's **ledger** (the table whose row per batch keeps a batch from committing twice,
:mod:`patterns.loaders.base`) is its own by default, named by the loaders' one rule
(:mod:`patterns.loaders.ledger`: ``<schema>.stateless_state_ledger_<table>``), so loads into
different tables never take one lock. Two feeds loading into one table share its ledger, as they
share the table.

Stored as JSON (:meth:`Feed.to_json`, :func:`feed_from_json`); the JSON form is also how a
feed is declared in an environment variable or a SAM template (:mod:`patterns.feeds.config`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

from stateless_state import InvalidArgument, domain

from ..batcher.batches import Thresholds
from ..loaders.ledger import postgres_ledger, redshift_ledger, same_table
from ..s3 import check_bucket

if TYPE_CHECKING:
    from ..loaders.base import FileFormat, FileKind, Loader

__all__ = [
    "COPY_FORMATS",
    "FILE_FORMATS",
    "MAX_LOCATION_BYTES",
    "Feed",
    "LocalTarget",
    "PostgresTarget",
    "RedshiftTarget",
    "Target",
    "feed_from_json",
    "postgres_database",
    "target_from_json",
]

MAX_LOCATION_BYTES = 1024
"""S3's key limit, in UTF-8 bytes: a prefix or suffix longer than it matches no key."""

COPY_FORMATS = {
    "json": "FORMAT AS JSON 'auto'",
    "json-ignorecase": "FORMAT AS JSON 'auto ignorecase'",
    "csv": "FORMAT AS CSV",
    "parquet": "FORMAT AS PARQUET",
}
"""A Redshift target's ``format``, and the COPY clause each one is
(:class:`patterns.loaders.redshift.CopyFormat`)."""

FILE_FORMATS = ("csv", "json")
"""A PostgreSQL or local target's ``format``: ``csv``, CSV whose first row names the columns (as
a COPY with ``IGNOREHEADER 1`` reads it), or ``json``, JSON lines
(:data:`patterns.loaders.base.FileKind`)."""

_PASSWORD = re.compile(r"(^|\s)password\s*=", re.IGNORECASE)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{what} must be a non-empty str, got {value!r}")
    return value


def _optional_text(value: Any, what: str) -> str | None:
    return None if value is None else _text(value, what)


def _file_format(format: Any, gzip: Any, what: str) -> None:
    if format is not None and format not in FILE_FORMATS:
        raise InvalidArgument(
            f"{what} format {format!r} is not one of {', '.join(FILE_FORMATS)}: give one of "
            "them, or none to read each file by its content"
        )
    if not isinstance(gzip, bool):
        raise InvalidArgument(f"{what} gzip must be true or false, not {gzip!r}")
    if gzip and format is None:
        raise InvalidArgument(f"{what} gzip needs a format: give format csv or json")


@dataclass(frozen=True)
class RedshiftTarget:
    """A Redshift table, loaded with COPY of a manifest through the Data API
    (:class:`~patterns.loaders.redshift.RedshiftDataApiLoader`): a Serverless
    ``workgroup_name`` or a provisioned ``cluster_identifier``, authenticated by ``secret_arn``
    or as ``db_user`` (provisioned only) or by the function's IAM identity; ``iam_role`` is the
    role COPY assumes to read S3. ``format`` is a key of :data:`COPY_FORMATS`. ``ledger_table``
    defaults to :func:`~patterns.loaders.ledger.redshift_ledger` of ``table``."""

    table: str
    iam_role: str
    database: str
    workgroup_name: str | None = None
    cluster_identifier: str | None = None
    secret_arn: str | None = None
    db_user: str | None = None
    format: str = "json"
    gzip: bool = False
    copy_options: tuple[str, ...] = ()
    ledger_table: str | None = None

    kind = "redshift"

    def __post_init__(self) -> None:
        for name in ("table", "iam_role", "database"):
            _text(getattr(self, name), f"Redshift target {name}")
        for name in ("workgroup_name", "cluster_identifier", "secret_arn", "db_user"):
            _optional_text(getattr(self, name), f"Redshift target {name}")
        if (self.workgroup_name is None) == (self.cluster_identifier is None):
            raise InvalidArgument(
                "a Redshift target needs exactly one of workgroup_name (Serverless) or "
                "cluster_identifier (provisioned): give one"
            )
        if self.format not in COPY_FORMATS:
            raise InvalidArgument(
                f"Redshift target format {self.format!r} is not one of "
                f"{', '.join(COPY_FORMATS)}: give one of them"
            )
        if not isinstance(self.gzip, bool):
            raise InvalidArgument(f"Redshift target gzip must be true or false, not {self.gzip!r}")
        options = self.copy_options
        if isinstance(options, str) or not all(isinstance(o, str) for o in options):
            raise InvalidArgument(
                f"Redshift target copy_options must be a list of strings, got {options!r}"
            )
        object.__setattr__(self, "copy_options", tuple(options))
        _optional_text(self.ledger_table, "Redshift target ledger_table")

    @property
    def ledger(self) -> str:
        """The ledger table: ``ledger_table``, or :func:`~patterns.loaders.ledger.redshift_ledger`
        of ``table``."""
        return self.ledger_table or redshift_ledger(self.table)

    @property
    def warehouse(self) -> tuple[str, ...]:
        """Which warehouse the table is in (two targets compare tables only within one)."""
        where = self.workgroup_name or self.cluster_identifier or ""
        return ("redshift", where.lower(), self.database.lower())

    @property
    def fold_case(self) -> bool:
        """Redshift folds identifiers to lower case: ``T`` and ``t`` are one table."""
        return True

    def loader(self, *, s3: Any = None, redshift_client: Any = None) -> Loader:
        """The loader of this target (no request: the Data API client is made on first use
        when ``redshift_client`` is None). Checks what :meth:`check` checks."""
        from ..loaders.redshift import CopyFormat, RedshiftDataApiLoader

        return RedshiftDataApiLoader(
            table=self.table,
            iam_role=self.iam_role,
            database=self.database,
            workgroup_name=self.workgroup_name,
            cluster_identifier=self.cluster_identifier,
            secret_arn=self.secret_arn,
            db_user=self.db_user,
            copy_format=CopyFormat(COPY_FORMATS[self.format]),
            gzip=self.gzip,
            copy_options=self.copy_options,
            ledger_table=self.ledger,
            client=redshift_client,
        )

    def check(self, stream: str) -> None:
        """Everything a load would refuse, refused now: the loader's own checks (identifiers,
        ARNs, the COPY options and their combination with the format), the stream name as
        batch ids put it in SQL literals, a database user with a workgroup, and the ledger
        being the target table. No request."""
        if self.workgroup_name is not None and self.db_user is not None:
            raise InvalidArgument(
                "a Redshift target with a workgroup_name cannot take db_user (Redshift "
                "Serverless derives the database user from the IAM identity): remove db_user"
            )
        if self.secret_arn is not None and self.db_user is not None:
            raise InvalidArgument(
                "a Redshift target authenticates with secret_arn or as db_user, not both: "
                "remove one"
            )
        loader = self.loader()
        check_stream = getattr(loader, "check_stream", None)
        if callable(check_stream):
            check_stream(stream)
        if same_table(self.table, self.ledger, fold_case=True):
            raise InvalidArgument(
                f"Redshift target table {self.table!r} is its own ledger table: every load "
                "would write its rows into the ledger; give ledger_table another name"
            )

    def ledger_ddl(self) -> str:
        """The one-time DDL of this target's ledger table."""
        from ..loaders.redshift import RedshiftDataApiLoader

        loader = self.loader()
        assert isinstance(loader, RedshiftDataApiLoader)
        return loader.ledger_ddl()


@dataclass(frozen=True)
class PostgresTarget:
    """A PostgreSQL table (:class:`~patterns.loaders.postgres.PostgresLoader`) in the database
    at ``dsn``, a libpq connection string **without a password**: the configuration is stored
    in the state table and shown by the CLI, so the password comes from the function's
    environment (``PGPASSWORD``, ``PGPASSFILE``), which libpq reads. ``ledger_table`` defaults
    to :func:`~patterns.loaders.ledger.postgres_ledger` of ``table``. ``format`` (a key of
    :data:`FILE_FORMATS`) and ``gzip``: what every file is; none, each file is read by its
    content."""

    dsn: str
    table: str
    ledger_table: str | None = None
    format: str | None = None
    gzip: bool = False

    kind = "postgres"

    def __post_init__(self) -> None:
        _text(self.dsn, "PostgreSQL target dsn")
        _text(self.table, "PostgreSQL target table")
        _optional_text(self.ledger_table, "PostgreSQL target ledger_table")
        _file_format(self.format, self.gzip, "PostgreSQL target")
        if _has_password(self.dsn):
            raise InvalidArgument(
                "the PostgreSQL target's dsn holds a password, which the configuration would "
                "store and show: remove it and set PGPASSWORD or PGPASSFILE in the function's "
                "environment instead"
            )

    @property
    def ledger(self) -> str:
        """The ledger table: ``ledger_table``, or :func:`~patterns.loaders.ledger.postgres_ledger`
        of ``table``."""
        return self.ledger_table or postgres_ledger(self.table)

    @property
    def warehouse(self) -> tuple[str, ...]:
        """Which database the table is in: ``dsn`` parsed (key=value or URI), so that every
        spelling of one database is one warehouse (:func:`postgres_database`). Imports
        psycopg: for the configuration's checks, never the hot path."""
        return ("postgres", *postgres_database(self.dsn))

    @property
    def fold_case(self) -> bool:
        """The loader quotes every identifier: ``T`` and ``t`` are two tables."""
        return False

    def loader(self, *, s3: Any = None, redshift_client: Any = None) -> Loader:
        """The loader of this target (no connection until its first load)."""
        from ..loaders.postgres import PostgresLoader

        return PostgresLoader(
            self.dsn,
            self.table,
            s3,
            ledger_table=self.ledger,
            file_format=_loader_format(self.format, self.gzip),
        )

    def check(self, stream: str) -> None:
        """The loader's checks of the table and ledger names and of the stream (its batch ids
        must fit the ledger), and the ledger being the target table. No connection."""
        from ..loaders.postgres import PostgresLoader

        loader = self.loader()
        assert isinstance(loader, PostgresLoader)
        loader.check_stream(stream)
        if same_table(self.table, self.ledger, fold_case=False):
            raise InvalidArgument(
                f"PostgreSQL target table {self.table!r} is its own ledger table: every load "
                "would write its rows into the ledger; give ledger_table another name"
            )

    def ledger_ddl(self) -> str:
        """The one-time DDL of this target's ledger table."""
        from ..loaders.postgres import PostgresLoader

        return PostgresLoader(self.dsn, self.table, None, ledger_table=self.ledger).ledger_ddl()


@dataclass(frozen=True)
class LocalTarget:
    """The table ``table`` (default ``rows``) of the embedded SQLite warehouse at ``path``
    (:class:`~patterns.loaders.sqlite.LocalWarehouseLoader`): a table per feed if you like, and
    one ledger per file, so feeds loading into one file share its lock, as SQLite's one writer
    at a time makes them anyway. ``format`` (a key of :data:`FILE_FORMATS`) and ``gzip``: what
    every file is; none, each file is read by its content."""

    path: str
    table: str = "rows"
    format: str | None = None
    gzip: bool = False

    kind = "local"

    def __post_init__(self) -> None:
        _text(self.path, "local target path")
        if "\x00" in self.path:
            raise InvalidArgument("the local target path contains NUL: give a file path")
        _text(self.table, "local target table")
        _file_format(self.format, self.gzip, "local target")

    @property
    def ledger(self) -> str:
        """The file's one ledger table."""
        return "ledger"

    @property
    def warehouse(self) -> tuple[str, ...]:
        return ("local", self.path)

    @property
    def fold_case(self) -> bool:
        """SQLite folds ASCII case in names, quoted or not: ``T`` and ``t`` are one table."""
        return True

    def loader(self, *, s3: Any = None, redshift_client: Any = None) -> Loader:
        """The loader of this target (it creates the file and its tables if they are missing)."""
        from ..loaders.sqlite import LocalWarehouseLoader

        return LocalWarehouseLoader(
            self.path, s3, table=self.table, file_format=_loader_format(self.format, self.gzip)
        )

    def check(self, stream: str) -> None:
        """The table's name as SQLite takes it, and not the file's ledger. Without touching the
        file."""
        from ..loaders.sqlite import table_identifier

        table_identifier(self.table)

    def ledger_ddl(self) -> str:
        return "-- the local warehouse creates its ledger itself"


def _loader_format(format: str | None, gzip: bool) -> FileFormat | None:
    """A target's ``format`` and ``gzip`` as its loader takes them (imported with the loader)."""
    from ..loaders.base import FileFormat

    return None if format is None else FileFormat(cast("FileKind", format), gzip)


Target = RedshiftTarget | PostgresTarget | LocalTarget
"""Where a feed's batches are loaded."""

_TARGETS: dict[str, type[RedshiftTarget] | type[PostgresTarget] | type[LocalTarget]] = {
    "redshift": RedshiftTarget,
    "postgres": PostgresTarget,
    "local": LocalTarget,
}


# Where libpq connects without a host, or through the local socket: one server, as the checks
# take it (a refusal of one table name, never a load, rests on it).
_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


def postgres_database(dsn: str) -> tuple[str, str, str]:
    """The database a libpq connection string reaches, as host, port and dbname with libpq's
    defaults: host lowercased, none or a Unix socket directory taken as ``localhost``; port
    5432; dbname the user (``""`` when neither is given: the environment's, the same for
    both). ``PG*`` environment variables and ``service`` files are not read: two spellings
    that differ only through them are taken for two databases. :class:`InvalidArgument` if
    the string is not a connection string or psycopg is not installed (the check cannot tell
    then)."""
    try:
        from psycopg import Error
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise InvalidArgument(
            "comparing PostgreSQL targets' databases needs psycopg: pip install "
            "'psycopg[binary]' where the configuration is edited"
        ) from None
    try:
        params = conninfo_to_dict(dsn)
    except Error as e:
        raise InvalidArgument(f"the PostgreSQL target's dsn is not a connection string: {e}") from e
    host = str(params.get("host") or "").lower()
    if host in _LOCAL_HOSTS or host.startswith(("/", "@")):
        host = "localhost"
    port = str(params.get("port") or "5432")
    dbname = str(params.get("dbname") or params.get("user") or "")
    return host, port, dbname


def _has_password(dsn: str) -> bool:
    if "://" in dsn:
        parts = urlsplit(dsn)
        try:
            password = parts.password
        except ValueError:
            password = None
        return password is not None or "password" in {k.lower() for k in parse_qs(parts.query)}
    return bool(_PASSWORD.search(dsn))


def _location(value: Any, what: str) -> str:
    """A prefix or suffix: any str S3 can hold in a key, at most S3's key limit."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a str, got {type(value).__name__}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument(
            f"{what} {value!r} contains a lone surrogate, which no S3 key (UTF-8) holds"
        ) from None
    if size > MAX_LOCATION_BYTES:
        raise InvalidArgument(
            f"{what} is {size} bytes in UTF-8; S3 keys are at most {MAX_LOCATION_BYTES}, so it "
            "would match nothing: shorten it"
        )
    return value


@dataclass(frozen=True)
class Feed:
    """One feed: the objects created in ``bucket`` whose key starts with ``prefix`` and ends
    with ``suffix`` (both may be empty) are batched in ``stream`` (default: the feed's
    ``name``) under ``thresholds`` and ``lanes``, and loaded into ``target``.

    ``paused``: batches accumulate and seal but are not loaded until resumed. ``removed_at``:
    set when the feed was removed (:meth:`patterns.feeds.FeedsConfig.remove`); a removed feed
    routes nothing, and the sweeper still seals and loads what a container that had not yet
    seen the removal added to it.

    Checked when built (no I/O, no loader imported): the name and stream as names (at most 255
    bytes), the bucket by S3's naming rules, prefix and suffix within S3's 1,024-byte keys,
    lanes from 1 to 256. :meth:`check` adds the target's own checks.
    """

    name: str
    bucket: str
    target: Target
    prefix: str = ""
    suffix: str = ""
    stream: str = ""
    thresholds: Thresholds = field(default_factory=Thresholds)
    lanes: int = 1
    paused: bool = False
    removed_at: float | None = None

    def __post_init__(self) -> None:
        domain.name("feed name", self.name)
        try:
            check_bucket(self.bucket)
        except InvalidArgument as e:
            raise InvalidArgument(f"feed {self.name!r}: {e}") from None
        _location(self.prefix, f"feed {self.name!r} prefix")
        _location(self.suffix, f"feed {self.name!r} suffix")
        if not self.stream:
            object.__setattr__(self, "stream", self.name)
        domain.name("feed stream", self.stream)
        if not isinstance(self.target, RedshiftTarget | PostgresTarget | LocalTarget):
            raise InvalidArgument(
                f"feed {self.name!r} target must be a RedshiftTarget, PostgresTarget or "
                f"LocalTarget, got {type(self.target).__name__}"
            )
        if not isinstance(self.thresholds, Thresholds):
            raise InvalidArgument(
                f"feed {self.name!r} thresholds must be a Thresholds, got "
                f"{type(self.thresholds).__name__}"
            )
        # One spelling of each age (seconds), so a feed equals itself read back from JSON.
        th = self.thresholds
        object.__setattr__(self, "thresholds", Thresholds(th.count, th.bytes, th.age_seconds))
        lanes = self.lanes
        if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= 256:
            raise InvalidArgument(f"feed {self.name!r} lanes must be an int from 1 to 256")
        if not isinstance(self.paused, bool):
            raise InvalidArgument(f"feed {self.name!r} paused must be true or false")
        if self.removed_at is not None:
            domain.instant(self.removed_at, "removed_at")

    @property
    def location(self) -> tuple[str, str, str]:
        """``(bucket, prefix, suffix)``: two live feeds never have the same one."""
        return (self.bucket, self.prefix, self.suffix)

    @property
    def removed(self) -> bool:
        return self.removed_at is not None

    def matches(self, bucket: str, key: str) -> bool:
        """Whether an object ``key`` (decoded, as S3 event parsing gives it) in ``bucket`` is at
        this feed's location."""
        return bucket == self.bucket and key.startswith(self.prefix) and key.endswith(self.suffix)

    def check(self) -> None:
        """The target's checks for this feed's stream (:meth:`RedshiftTarget.check`...). No
        request."""
        try:
            self.target.check(self.stream)
        except InvalidArgument as e:
            raise InvalidArgument(f"feed {self.name!r}: {e}") from None

    def to_json(self) -> dict[str, Any]:
        """The feed as stored: plain JSON (durations in seconds)."""
        target: dict[str, Any] = {"kind": self.target.kind}
        for f in fields(self.target):
            value = getattr(self.target, f.name)
            if value != f.default:
                target[f.name] = list(value) if isinstance(value, tuple) else value
        th = self.thresholds
        out: dict[str, Any] = {
            "name": self.name,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "suffix": self.suffix,
            "stream": self.stream,
            "target": target,
            "thresholds": {"count": th.count, "bytes": th.bytes, "age": th.age_seconds},
            "lanes": self.lanes,
            "paused": self.paused,
        }
        if self.removed_at is not None:
            out["removed_at"] = self.removed_at
        return out

    def with_changes(self, changes: Mapping[str, Any]) -> Feed:
        """This feed with ``changes`` (the fields of :meth:`to_json`, as JSON) applied:
        ``target`` and ``thresholds`` are merged into the current ones field by field, so
        ``{"target": {"table": "t2"}}`` keeps the rest of the target. Raises
        :class:`InvalidArgument` naming an unknown field."""
        unknown = sorted(set(changes) - _FEED_FIELDS)
        if unknown:
            raise InvalidArgument(
                f"unknown feed field(s) {', '.join(unknown)}: use {', '.join(sorted(_FEED_FIELDS))}"
            )
        current = self.to_json()
        merged = {**current, **changes}
        for part in ("target", "thresholds"):
            if part in changes:
                given = changes[part]
                if not isinstance(given, Mapping):
                    raise InvalidArgument(f"feed {part} must be a JSON object, got {given!r}")
                kind = given.get("kind", current[part].get("kind"))
                base = current[part] if kind == current[part].get("kind") else {}
                merged[part] = {**base, **given}
        return feed_from_json(merged)


_FEED_FIELDS = frozenset(
    {"name", "bucket", "prefix", "suffix", "stream", "target", "thresholds", "lanes", "paused"}
)


def target_from_json(data: Any) -> Target:
    """A target from its JSON form (``{"kind": "redshift" | "postgres" | "local", ...}``);
    :class:`InvalidArgument` names an unknown kind or field."""
    if not isinstance(data, Mapping):
        raise InvalidArgument(f"a feed target must be a JSON object, got {data!r}")
    kind = data.get("kind")
    cls = _TARGETS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidArgument(
            f"feed target kind {kind!r} is not one of {', '.join(_TARGETS)}: give one of them"
        )
    names = {f.name for f in fields(cls)}
    given = {k: v for k, v in data.items() if k != "kind"}
    unknown = sorted(set(given) - names)
    if unknown:
        raise InvalidArgument(
            f"unknown {kind} target field(s) {', '.join(unknown)}: use {', '.join(sorted(names))}"
        )
    if "copy_options" in given and isinstance(given["copy_options"], list):
        given["copy_options"] = tuple(given["copy_options"])
    try:
        return cls(**given)
    except TypeError as e:  # a required field missing
        raise InvalidArgument(f"{kind} target: {e}") from None


def _thresholds_from_json(data: Any, feed: str) -> Thresholds:
    if data is None:
        return Thresholds()
    if not isinstance(data, Mapping):
        raise InvalidArgument(f"feed {feed!r} thresholds must be a JSON object, got {data!r}")
    unknown = sorted(set(data) - {"count", "bytes", "age"})
    if unknown:
        raise InvalidArgument(
            f"unknown threshold(s) {', '.join(unknown)} of feed {feed!r}: use count, bytes, age"
        )
    defaults = Thresholds()
    return Thresholds(
        count=data.get("count", defaults.count),
        bytes=data.get("bytes", defaults.bytes),
        age=data.get("age", defaults.age),
    )


def feed_from_json(data: Any) -> Feed:
    """A feed from its JSON form (:meth:`Feed.to_json`; ``prefix``, ``suffix``, ``stream``,
    ``thresholds``, ``lanes`` and ``paused`` may be left out). :class:`InvalidArgument` names
    what is wrong: an unknown field, a missing one, a bad value."""
    if not isinstance(data, Mapping):
        raise InvalidArgument(f"a feed must be a JSON object, got {data!r}")
    allowed = _FEED_FIELDS | {"removed_at"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidArgument(
            f"unknown feed field(s) {', '.join(unknown)}: use {', '.join(sorted(_FEED_FIELDS))}"
        )
    missing = [n for n in ("name", "bucket", "target") if n not in data]
    if missing:
        raise InvalidArgument(
            f"a feed needs {', '.join(missing)}: give {'it' if len(missing) == 1 else 'them'}"
        )
    name = data["name"]
    return Feed(
        name=name,
        bucket=data["bucket"],
        target=target_from_json(data["target"]),
        prefix=data.get("prefix", ""),
        suffix=data.get("suffix", ""),
        stream=data.get("stream") or "",
        thresholds=_thresholds_from_json(data.get("thresholds"), str(name)),
        lanes=data.get("lanes", 1),
        paused=data.get("paused", False),
        removed_at=data.get("removed_at"),
    )
