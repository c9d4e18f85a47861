"""Loading a batch into Amazon Redshift through the Data API, exactly once.

Exactly once at the warehouse: the commit is one ``BatchExecuteStatement`` (one Redshift
transaction). It locks a ledger table, inserts the rows COPY staged in a temporary table into the
target **only if the ledger has no row for this batch**, and inserts that ledger row. Two loaders
racing on one batch (a zombie past its lease and its successor) serialize on the lock; the second
finds the ledger row and inserts nothing. Redshift enforces no unique key, so the lock is what
decides, and it is a table lock: each target table has **its own ledger** by default
(``<schema>.stateless_state_ledger_<table>``, :func:`~.ledger.redshift_ledger`), so the loads
of different targets never wait for each other; only loads into one target take turns at its
commit. An operator's abandon writes a ledger row too (``status 'abandoned'``), under the same
lock, so no loader commits the batch afterwards, and a last statement, which touches the ledger
row only when it is such a tombstone, tells from its row count an abandoned batch from one
another load committed.

Each object version at most once: COPY reads each key's *current* content, which may have been
rewritten since the members were pinned (:mod:`patterns.batcher.object_pins`). When the manifest
names such keys, the load runs in one Data API **session** (``SessionKeepAliveSeconds``): its
temporary table lives on across calls, while each call is its own transaction (none spans calls, and
none needs to). Call 1 creates the temporary table and COPYs into it. Then the manifest's
``recheck`` asks S3 whether every key still holds its member's content; if not, the changed members
are staged from their own versions and COPYed again from the manifest's next revision (at most
``max_rechecks`` times; the round after them stages everything left). The last call is the commit
above. A manifest of staged copies only (``always_stage``) needs no check: it loads in one call, its
COPY inside the commit's transaction. In a session, COPY runs outside the ledger's lock, so other
batches' commits do not wait for it.

The commit's statement id is written on the batch before the loader waits for it, so a loader
that takes over a crashed one asks the Data API what happened to that statement instead of
loading again; a crash before the commit leaves only a session that expires with its table.

No SQL is built from unvalidated input: identifiers, the IAM role ARN, the manifest URL, the batch
id and the COPY options are each checked against a strict pattern or allowlist, and rejected with
a message that names the problem; identifiers and literals are then quoted by the dialect's one
quoting function (:mod:`patterns.sql`).
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from stateless_state import InvalidArgument, LeaseLost, StatelessStateError, clock
from stateless_state.clients import aws_client

from ..batcher.manifest_keys import MAX_REVISION
from ..sql import redshift_identifier, redshift_literal
from .base import AbandonOutcome, LoadOutcome, Ticket
from .ledger import redshift_ledger

if TYPE_CHECKING:
    from ..batcher.manifest import Manifest, Recheck

__all__ = ["CopyFormat", "RedshiftDataApiLoader", "RedshiftLoadError"]

_CLIENT_BUILD = threading.Lock()
# re.ASCII and explicit [0-9]: \d alone would accept any script's digits (Arabic-Indic "١٢٣").
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,126}", re.ASCII)
_ROLE = re.compile(r"arn:aws[a-z\-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/\-]{1,512}", re.ASCII)
_SECRET = re.compile(
    r"arn:aws[a-z\-]*:secretsmanager:[a-z0-9\-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@\-]+", re.ASCII
)
_BATCH_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,200}/[0-9]{1,3}/[0-9]{12}", re.ASCII)
_STREAM_NAMES = "stream names loaded into Redshift may use only letters, digits, '_', '.', ':', '-'"
# The key part up to S3's 1,024-byte key limit (ASCII here, so characters are bytes): the pipeline
# accepts manifest prefixes up to that limit, and a shorter cap would fail every load of them.
_MANIFEST_URL = re.compile(
    r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/[A-Za-z0-9_.=/:\-]{1,1024}", re.ASCII
)
_OPTIONS = {
    "ACCEPTINVCHARS",
    "BLANKSASNULL",
    "EMPTYASNULL",
    "TRUNCATECOLUMNS",
    "TIMEFORMAT 'auto'",
    "DATEFORMAT 'auto'",
    "ROUNDEC",
    "COMPUPDATE OFF",
    "STATUPDATE OFF",
}
_PARAMETERISED_OPTIONS = (
    re.compile(r"IGNOREHEADER [0-9]{1,3}", re.ASCII),
    re.compile(r"MAXERROR [0-9]{1,6}", re.ASCII),
    re.compile(r"REGION '[a-z]{2}(-[a-z]+)+-[0-9]'", re.ASCII),
)
# COPY from Parquet takes only these of the allowlist (Redshift's "COPY from columnar data
# formats"); compression is read from the files, so GZIP is refused too.
_COLUMNAR_OPTIONS = {"ACCEPTINVCHARS", "STATUPDATE OFF"}


class RedshiftLoadError(StatelessStateError):
    """The Data API reported a failed or aborted statement (recorded on the batch, which is
    retried with backoff and then left ``failed`` for an operator)."""


class CopyFormat(StrEnum):
    """The COPY data formats the loader accepts."""

    JSON_AUTO = "FORMAT AS JSON 'auto'"
    JSON_AUTO_IGNORECASE = "FORMAT AS JSON 'auto ignorecase'"
    CSV = "FORMAT AS CSV"
    PARQUET = "FORMAT AS PARQUET"


def _check(pattern: re.Pattern[str], value: Any, what: str, hint: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidArgument(f"invalid {what} {value!r}: {hint}")
    return value


@dataclass
class RedshiftDataApiLoader:
    """Loads batches through the Redshift Data API into ``table``.

    Connect to a provisioned cluster (``cluster_identifier`` with ``secret_arn`` or ``db_user``
    for IAM auth) or to Redshift Serverless (``workgroup_name``, with ``secret_arn`` or IAM).
    ``iam_role`` is the role COPY assumes to read S3. ``copy_format`` is a :class:`CopyFormat`;
    ``gzip`` adds GZIP; ``copy_options`` come from a fixed allowlist (``TIMEFORMAT 'auto'``,
    ``IGNOREHEADER n``, ``MAXERROR n``, ``REGION 'xx-xxxx-n'``, ``TRUNCATECOLUMNS``...).

    The ledger table (``ledger_table``) must exist: run :meth:`ledger_ddl` once. By default
    (empty) it is the target's own, :func:`~patterns.loaders.ledger.redshift_ledger` of
    ``table`` (``analytics.clicks`` → ``analytics.stateless_state_ledger_clicks``, shortened
    with a hash when too long): the commit locks it, so loads into other targets never wait on
    this one. Name a ledger to share it between targets (their commits then take turns), e.g.
    the single ``stateless_state_ledger`` of earlier versions. A batch must always be judged by
    one ledger: change a target's ledger only when none of its batches is loading.

    ``session_keep_alive`` (seconds, 1..86400) is how long the Data API keeps a load's session
    after each of its calls: it must cover the recheck between COPY and commit (one
    ``HeadObject`` per file, and staging what changed). ``max_rechecks`` (0..8) bounds the rounds
    that stage only what changed; the round after them stages every member still named by its
    own key, so a load ends whatever the rate of rewrites. Data API calls per load (plus the
    ``DescribeStatement`` polls): one when the manifest names staged copies only, else three,
    and one more per round that found a change.
    """

    table: str
    iam_role: str
    database: str
    cluster_identifier: str | None = None
    workgroup_name: str | None = None
    secret_arn: str | None = None
    db_user: str | None = None
    copy_format: CopyFormat = CopyFormat.JSON_AUTO
    gzip: bool = False
    copy_options: tuple[str, ...] = ()
    ledger_table: str = ""
    client: Any = None
    poll_interval: float = 1.0
    timeout: float = 600.0
    session_keep_alive: int = 300
    max_rechecks: int = 2
    _sleep: Any = field(default=clock.sleep, repr=False)

    def __post_init__(self) -> None:
        self._table = redshift_identifier(self.table)
        if not self.ledger_table:
            self.ledger_table = redshift_ledger(self.table)
        self._ledger = redshift_identifier(self.ledger_table, what="ledger_table")
        _check(_ROLE, self.iam_role, "IAM role ARN", "expected arn:aws:iam::<account>:role/<name>")
        _check(_IDENT, self.database, "database name", "letters, digits, '_' and '$'")
        if (self.cluster_identifier is None) == (self.workgroup_name is None):
            raise InvalidArgument("give exactly one of cluster_identifier or workgroup_name")
        if self.secret_arn is not None:
            _check(_SECRET, self.secret_arn, "secret ARN", "expected a Secrets Manager ARN")
        if self.copy_format not in vars(CopyFormat).values():
            raise InvalidArgument(
                f"copy_format must be a CopyFormat value, got {self.copy_format!r}"
            )
        for option in self.copy_options:
            if option not in _OPTIONS and not any(
                p.fullmatch(option) for p in _PARAMETERISED_OPTIONS
            ):
                raise InvalidArgument(
                    f"COPY option {option!r} is not in the allowlist "
                    f"({', '.join(sorted(_OPTIONS))}, IGNOREHEADER n, MAXERROR n, REGION '...')"
                )
        self._check_option_combination()
        keep = self.session_keep_alive
        if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= 86400:
            raise InvalidArgument(
                "session_keep_alive must be an int of seconds from 1 to 86400 (the Data API's "
                f"range), got {keep!r}"
            )
        rounds = self.max_rechecks
        if (
            isinstance(rounds, bool)
            or not isinstance(rounds, int)
            or not 0 <= rounds < MAX_REVISION
        ):
            raise InvalidArgument(
                f"max_rechecks must be an int from 0 to {MAX_REVISION - 1}, got {rounds!r}"
            )

    def _check_option_combination(self) -> None:
        # Refused now rather than by every COPY: a repeated keyword, or options the format
        # cannot take, would fail each load of the pipeline.
        words = [option.split(" ", 1)[0] for option in self.copy_options]
        repeated = sorted({w for w in words if words.count(w) > 1})
        if repeated:
            raise InvalidArgument(
                f"COPY options give {', '.join(repeated)} more than once: keep one of each"
            )
        if self.copy_format == CopyFormat.PARQUET:
            unsupported = [o for o in self.copy_options if o not in _COLUMNAR_OPTIONS]
            if self.gzip:
                unsupported.insert(0, "GZIP")
            if unsupported:
                raise InvalidArgument(
                    f"COPY from Parquet does not take {', '.join(unsupported)} (only "
                    f"{', '.join(sorted(_COLUMNAR_OPTIONS))}; compression is read from the "
                    "files): remove them or use another format"
                )

    def _connection(self) -> dict[str, str]:
        kwargs = {"Database": self.database}
        if self.cluster_identifier is not None:
            kwargs["ClusterIdentifier"] = self.cluster_identifier
        if self.workgroup_name is not None:
            kwargs["WorkgroupName"] = self.workgroup_name
        if self.secret_arn is not None:
            kwargs["SecretArn"] = self.secret_arn
        elif self.db_user is not None:
            kwargs["DbUser"] = self.db_user
        return kwargs

    @property
    def target(self) -> str:
        """The table this loader commits into, with its workgroup or cluster and database (no
        secret): the key the sweeper groups loads by (:mod:`patterns.sweeper`)."""
        where = self.workgroup_name or self.cluster_identifier
        return f"redshift:{where}/{self.database}/{self.table}"

    def check_stream(self, stream: str) -> None:
        """Raise :class:`InvalidArgument` unless batches of ``stream`` can be loaded: their ids
        become SQL literals, so this loader accepts only letters, digits, ``_ . : -`` in stream
        names (the batcher itself takes any name). The pipeline calls it when it is built."""
        _check(_BATCH_ID, f"{stream}/0/{0:012d}", "stream name for Redshift", _STREAM_NAMES)

    def ledger_ddl(self) -> str:
        """The one-time DDL for the ledger table."""
        return (
            f"CREATE TABLE IF NOT EXISTS {self._ledger} (batch_id VARCHAR(256) NOT NULL, "
            "fence BIGINT NOT NULL, loaded_at TIMESTAMP NOT NULL, "
            "status VARCHAR(16) NOT NULL DEFAULT 'loaded', PRIMARY KEY (batch_id))"
        )

    def _batch_literal(self, batch_id: str) -> str:
        checked = _check(_BATCH_ID, batch_id, "batch id", _STREAM_NAMES)
        return redshift_literal(checked, what="batch id")

    def _stage(self, batch_id: str) -> str:
        self._batch_literal(batch_id)
        return redshift_identifier("stage_" + re.sub(r"[^A-Za-z0-9]", "_", batch_id)[-100:])

    def _copy(self, stage: str, manifest_url: str) -> str:
        checked = _check(_MANIFEST_URL, manifest_url, "manifest URL", "expected s3://bucket/key")
        url = redshift_literal(checked, what="manifest URL")
        role = redshift_literal(self.iam_role, what="IAM role ARN")
        options = " ".join([self.copy_format, *(["GZIP"] if self.gzip else []), *self.copy_options])
        return f"COPY {stage} FROM {url} IAM_ROLE {role} MANIFEST {options}"

    def statements(self, batch_id: str, manifest_url: str | None, fence: int) -> list[str]:
        """The exact SQL of a load in one call, in order, run as one transaction: the ledger's
        lock, :meth:`copy_statements`, then the rest of :meth:`commit_statements`. For a
        manifest of staged copies only (nothing to check after COPY), or none at all
        (``manifest_url`` None: every member's content was gone, and the ledger still decides
        whether this load or another commits the batch)."""
        lock, *commit = self.commit_statements(batch_id, fence)
        return [lock, *self.copy_statements(batch_id, manifest_url), *commit]

    def copy_statements(self, batch_id: str, manifest_url: str | None) -> list[str]:
        """A session load's first call: create the temporary table and COPY the manifest into
        it (no COPY for ``None``, an empty manifest). Nothing another session can see."""
        stage = self._stage(batch_id)
        create = f"CREATE TEMP TABLE {stage} (LIKE {self._table})"
        return [create] if manifest_url is None else [create, self._copy(stage, manifest_url)]

    def recopy_statements(self, batch_id: str, manifest_url: str | None) -> list[str]:
        """A session load's call after a recheck found a change: empty the temporary table and
        COPY the manifest's new revision (``None``: no member's content is left to read)."""
        stage = self._stage(batch_id)
        empty = f"DELETE FROM {stage}"
        return [empty] if manifest_url is None else [empty, self._copy(stage, manifest_url)]

    def commit_statements(self, batch_id: str, fence: int) -> list[str]:
        """A session load's last call, in order, run as one transaction: lock the ledger,
        insert the temporary table's rows unless the ledger has the batch, insert the ledger
        row (1 row: this load committed), and the probe (1 row: the ledger row is an abandon
        tombstone)."""
        batch = self._batch_literal(batch_id)
        stage = self._stage(batch_id)
        if isinstance(fence, bool) or not isinstance(fence, int) or fence < 0:
            raise InvalidArgument(f"fence must be a non-negative int, got {fence!r}")
        absent = f"NOT EXISTS (SELECT 1 FROM {self._ledger} WHERE batch_id = {batch})"
        return [
            f"LOCK {self._ledger}",
            f"INSERT INTO {self._table} SELECT * FROM {stage} WHERE {absent}",
            f"INSERT INTO {self._ledger} (batch_id, fence, loaded_at, status) "
            f"SELECT {batch}, {fence}, GETDATE(), 'loaded' WHERE {absent}",
            self._probe(batch, "abandoned"),
        ]

    def _probe(self, batch: str, status: str) -> str:
        # A no-op update whose row count says whether the ledger row has ``status``: the Data
        # API reports each statement's ResultRows, so no result set has to be fetched.
        return (
            f"UPDATE {self._ledger} SET status = status "
            f"WHERE batch_id = {batch} AND status = {redshift_literal(status)}"
        )

    def abandon_statements(self, batch_id: str) -> list[str]:
        """The exact SQL of an abandon, in order; run as one transaction. The second inserts
        the tombstone (unless any ledger row exists); the third matches a committed load's
        row (1 row: the batch was loaded before, and nothing changed)."""
        batch = self._batch_literal(batch_id)
        absent = f"NOT EXISTS (SELECT 1 FROM {self._ledger} WHERE batch_id = {batch})"
        return [
            f"LOCK {self._ledger}",
            f"INSERT INTO {self._ledger} (batch_id, fence, loaded_at, status) "
            f"SELECT {batch}, 0, GETDATE(), 'abandoned' WHERE {absent}",
            self._probe(batch, "loaded"),
        ]

    def abandon(self, batch_id: str) -> AbandonOutcome:
        """Record the abandon in the ledger (see :meth:`abandon_statements`): one
        ``BatchExecuteStatement``, waited for."""
        r = self._client().batch_execute_statement(
            Sqls=self.abandon_statements(batch_id),
            StatementName=f"stateless_state:abandon:{batch_id}"[:500],
            **self._connection(),
        )
        status = self._finished(r["Id"], f"abandon of batch {batch_id}")
        return "loaded" if _result_rows(status, -1) == 1 else "abandoned"

    def _client(self) -> Any:
        if self.client is None:
            # boto3's default session is not thread-safe while it builds a client, and a sweep
            # of many targets loads in threads.
            with _CLIENT_BUILD:
                if self.client is None:
                    self.client = aws_client("redshift-data")
        return self.client

    def load(self, ticket: Ticket, manifest: Manifest) -> LoadOutcome:
        """Load the batch, or finish the earlier attempt recorded on it (module doc).

        Guarantees, whatever the concurrency: the batch's rows are committed at most once (the
        ledger), and no member's place is taken by other content: when the manifest names keys
        that can be rewritten, they are checked again after COPY read them and before the
        commit (``manifest.recheck``), and what changed is read again from its own version."""
        settled = self.recorded(ticket)
        if settled is not None:
            return settled
        batch_id = ticket.batch.id
        if manifest.recheck is None or not manifest.mutable_entries:
            url = manifest.url if manifest.entries else None
            sql = self.statements(batch_id, url, ticket.fence)
            return self._commit(ticket, sql, self._connection())
        commit = self.commit_statements(batch_id, ticket.fence)
        session = self._session_copy(batch_id, manifest, manifest.recheck)
        return self._commit(ticket, commit, {"SessionId": session})

    def keep_alive(self, files: int) -> int:
        """The session's keep-alive for a recheck of ``files`` keys: ``session_keep_alive``, or
        more for a large batch (60 s plus 0.1 s per file, a margin of several times a
        ``HeadObject``'s latency from Lambda), up to the Data API's 24 hours, so the session
        outlives the recheck whatever the batch's size."""
        return min(86_400, max(self.session_keep_alive, 60 + math.ceil(files * 0.1)))

    def recorded(self, ticket: Ticket) -> LoadOutcome | None:
        """What the commit recorded on the batch (its statement id) did, once it finished: the
        rows are in (or, by its last row count, the batch was found abandoned), and this load
        commits nothing. None when nothing is recorded, the statement failed, or the Data API no
        longer knows it (it keeps statements for a limited time): loading again is then safe,
        since the ledger keeps a batch from committing twice. One ``DescribeStatement`` per
        poll, waiting up to ``timeout`` for a running statement."""
        from botocore.exceptions import ClientError

        previous = ticket.batch.statement_id
        if not previous:
            return None
        try:
            status = self._wait(previous)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            return None
        if status["Status"] != "FINISHED":
            return None
        abandoned = _result_rows(status, -1) == 1
        return LoadOutcome(ticket.batch.id, False, previous, 0, abandoned=abandoned)

    def _session_copy(self, batch_id: str, manifest: Manifest, recheck: Recheck) -> str:
        """COPY into a new session's temporary table until a recheck finds every key unchanged
        (or every member staged); returns the session id."""
        client = self._client()
        name = f"stateless_state:copy:{batch_id}"[:500]
        r = client.batch_execute_statement(
            Sqls=self.copy_statements(batch_id, manifest.url),
            StatementName=name,
            SessionKeepAliveSeconds=self.keep_alive(len(manifest.mutable_entries)),
            **self._connection(),
        )
        session: str = r["SessionId"]
        self._finished(r["Id"], f"COPY of batch {batch_id}")
        for round_ in range(self.max_rechecks + 1):
            revised = recheck(manifest, everything=round_ == self.max_rechecks)
            if revised is None:
                break
            manifest = revised
            url = manifest.url if manifest.entries else None
            r = client.batch_execute_statement(
                Sqls=self.recopy_statements(batch_id, url), StatementName=name, SessionId=session
            )
            self._finished(r["Id"], f"COPY of batch {batch_id}, revision {manifest.revision}")
        return session

    def _commit(self, ticket: Ticket, sql: list[str], where: dict[str, Any]) -> LoadOutcome:
        r = self._client().batch_execute_statement(
            Sqls=sql, StatementName=f"stateless_state:{ticket.batch.id}"[:500], **where
        )
        statement_id = r["Id"]
        # Superseded after the statement was sent? It runs all the same, so wait for it and say
        # what it did (the ledger keeps it from committing twice) rather than hide it.
        with contextlib.suppress(LeaseLost):
            ticket.record_statement(statement_id)
        status = self._finished(statement_id, f"batch {ticket.batch.id}")
        return _outcome(ticket.batch.id, statement_id, status)

    def _finished(self, statement_id: str, what: str) -> dict[str, Any]:
        status = self._wait(statement_id)
        if status["Status"] != "FINISHED":
            raise RedshiftLoadError(
                f"{what}: statement {statement_id} {status['Status']}: "
                f"{status.get('Error', 'no error message')}"
            )
        return status

    def _wait(self, statement_id: str) -> dict[str, Any]:
        deadline = clock.monotonic() + self.timeout
        while True:
            status: dict[str, Any] = self._client().describe_statement(Id=statement_id)
            if status["Status"] in {"FINISHED", "FAILED", "ABORTED"}:
                return status
            if clock.monotonic() > deadline:
                raise RedshiftLoadError(
                    f"statement {statement_id} still {status['Status']} after {self.timeout}s"
                )
            self._sleep(self.poll_interval)


def _result_rows(status: Mapping[str, Any], index: int) -> int | None:
    """A sub-statement's ``ResultRows``; ``index`` may count from the end (``-1``, the last),
    as outcomes are read: the same for a one-call load and a session's commit."""
    subs = status.get("SubStatements", [])
    return subs[index].get("ResultRows") if -len(subs) <= index < len(subs) else None


def _outcome(batch_id: str, statement_id: str, status: Mapping[str, Any]) -> LoadOutcome:
    """What a finished commit did, from its last three sub-statements' row counts (the rows
    inserted, the ledger row inserted, the abandon probe)."""
    committed = _result_rows(status, -2) == 1
    abandoned = not committed and _result_rows(status, -1) == 1
    rows = _result_rows(status, -3) if committed else 0
    return LoadOutcome(batch_id, committed, statement_id, rows, abandoned=abandoned)
