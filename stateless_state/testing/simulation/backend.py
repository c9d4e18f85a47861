"""The in-process AWS the simulation runs against: moto, reset for every schedule, plus what
moto leaves out and DynamoDB does (``ClientRequestToken`` idempotency, TTL deletion).

While an exploration runs, botocore's retry sleeps go through :mod:`stateless_state.clock` too
(botocore calls ``time.sleep`` between attempts; that would be wall time, and its jitter would not
replay), and the global :mod:`random` is seeded per schedule (botocore draws its jitter there).
"""

from __future__ import annotations

import copy
import json
import pickle
import random
import time
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ... import clock
from ..faults import dynamodb_response, error_response
from .memo import READS, Answer, Memo, request_key
from .world import TOKEN_WINDOW, SimulationError

if TYPE_CHECKING:
    from .world import Engine

__all__ = ["Backend"]

_REGION = "us-east-1"
_ACCOUNT = "123456789012"


@dataclass(frozen=True)
class _Pickled:
    """A service state the memo saved as pickle bytes."""

    blob: bytes


class _BotocoreTime(types.SimpleNamespace):
    """Stands in for the ``time`` module inside ``botocore.endpoint``: sleeps on the clock."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        clock.sleep(seconds)


class Backend:
    """moto for the length of an exploration; a context manager.

    With ``memo`` (and a set-up snapshot to start each schedule from), a request sent from a
    state an earlier schedule reached is answered from memory (:mod:`.memo`), and moto is asked
    only from the first request the schedule does not share with one before it.
    """

    def __init__(self, *, memo: bool = True) -> None:
        self._memo: Memo | None = None
        self._memoize = memo
        self._services: dict[str, int] = {}
        self._backends: list[Any] = []
        self._mock: Any = None
        self._saved: Any = None
        self._random: Any = None
        self._session: Any = None
        self._cache: dict[tuple[str, str], Any] = {}
        self._snapshot: list[tuple[Any, dict[str, Any]]] | None = None
        self._run: Engine | None = None
        self._hash_keys: dict[str, str] = {}

    def __enter__(self) -> Backend:
        import boto3
        import botocore.endpoint
        from moto import mock_aws
        from moto.core.models import botocore_stubber

        self._mock = mock_aws()
        self._mock.start()
        # moto answers every client made while it is active; a client the world did not make
        # would reach it outside any step (and, under the memo, see a stale state): refuse it.
        botocore_stubber.process_request = self._refuse_foreign_client  # type: ignore[method-assign]
        self._s3_utcnow = _virtual_utcnow(self)
        self._saved = botocore.endpoint.time
        botocore.endpoint.time = _BotocoreTime()
        self._random = random.getstate()
        self._session = boto3.session.Session(
            aws_access_key_id="simulated",
            aws_secret_access_key="simulated",
            region_name=_REGION,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        import botocore.endpoint
        from moto.core.models import botocore_stubber

        del botocore_stubber.process_request
        self._s3_utcnow()
        botocore.endpoint.time = self._saved
        random.setstate(self._random)
        self._mock.stop()

    def _refuse_foreign_client(self, request: Any) -> None:
        error = SimulationError(
            f"a request ({request.method} {request.url}) through a client the simulation did "
            "not make: create every client the code under test uses with world.client(service) "
            "in the scenario, so that each of its requests is a step"
        )
        if self._run is not None:
            self._run.stop = error  # the handler may swallow it; the exploration must not
        raise error

    def reset(self, seed: int) -> None:
        """A fresh AWS for the next schedule: the state :meth:`snapshot` saved (else empty), its
        randomness seeded by ``seed``, every client's retry quota full again."""
        from moto.core.model_instances import reset_model_data
        from moto.moto_api._internal import mock_random
        from moto.moto_api._internal.models import moto_api_backend

        # moto keeps every model object it ever made (each table, item, bucket, key: a list per
        # class, for its dashboard) until its own reset, and every deep copy a schedule's start,
        # the memo's save and restore make is such an object: kept, they grow the heap by about
        # 200 KB a schedule, and each of Python's full collections walks all of them (pauses of
        # seconds after a few thousand schedules, and past the engine's WATCHDOG under load).
        # The states in use are held by moto's backends and the memo, not by that list.
        reset_model_data()
        if self._snapshot is None:
            moto_api_backend.reset()
            mock_random.seed(seed)
        elif self._memo is not None:
            mock_random.seed(seed)
            self._memo.begin(seed, tuple(saved for _, saved in self._snapshot), _random_state())
        else:
            for backend, saved in self._snapshot:
                backend.__dict__.clear()
                backend.__dict__.update(copy.deepcopy(saved))
            mock_random.seed(seed)
        random.seed(seed)
        for client in self._cache.values():
            _refill_retry_quota(client)

    def snapshot(self) -> None:
        """Remember the state set-up made (DynamoDB, S3, the Redshift Data API and every other
        service a client was made for), so that each schedule starts from a copy of it instead of
        running set-up again."""
        for service in ("dynamodb", "s3", "redshift-data", *(s for s, _ in self._cache)):
            self._cover(service)
        self._snapshot = [(b, copy.deepcopy(b.__dict__)) for b in self._backends]
        if self._memoize:
            self._memo = Memo(self._save, self._restore, _random_state, _set_random_state)

    def _cover(self, service: str) -> None:
        import moto.backends

        if service in self._services:
            return
        per_account = moto.backends.get_backend(service)[_ACCOUNT]  # type: ignore[call-overload]
        backend = per_account[_REGION] if _REGION in per_account else per_account["aws"]
        for i, known in enumerate(self._backends):
            if known is backend:
                self._services[service] = i
                return
        self._services[service] = len(self._backends)
        self._backends.append(backend)

    def _save(self, i: int) -> Any:
        """Service ``i``'s live state for the memo: pickled where pickle can carry it (bytes are
        a fraction of the object graph's memory, and nothing the garbage collector walks: the
        memo holds up to ``MAX_SAVED`` states), else a deep copy."""
        state = self._backends[i].__dict__
        try:
            return _Pickled(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception:  # something pickle cannot carry by reference (a local function)
            return copy.deepcopy(state)

    def _restore(self, i: int, saved: Any) -> None:
        backend = self._backends[i]
        fresh = pickle.loads(saved.blob) if isinstance(saved, _Pickled) else copy.deepcopy(saved)
        backend.__dict__.clear()
        backend.__dict__.update(fresh)

    def settle(self) -> None:
        """Bring moto's live state up to where the schedule is (answers from memory leave it
        behind), for checks that read moto directly."""
        if self._memo is not None and self._memo.node is not None:
            self._memo.sync()

    def bind(self, run: Engine | None) -> None:
        """Route the clients' requests to ``run`` (the schedule now running)."""
        self._run = run

    def _before_send(self, request: Any, event_name: str, **kwargs: Any) -> Any:
        if self._run is None:
            raise SimulationError("a simulated client was used outside its exploration")
        return self._run.before_send(request, event_name, **kwargs)

    def make(self, service: str, **kwargs: Any) -> Any:
        """A client whose every request goes through the run bound now. Clients live as long as
        the exploration (creating one costs milliseconds); their retry quota is refilled for
        each schedule, so that nothing carries over from one schedule to the next."""
        from botocore import UNSIGNED
        from botocore.config import Config
        from moto.core.models import botocore_stubber

        key = (service, json.dumps(kwargs, sort_keys=True, default=str))
        if key in self._cache:
            return self._cache[key]
        if self._snapshot is not None and service not in self._services:
            # a service set-up did not touch: from now on its state is restored with the rest,
            # and (rarely worth the complication) nothing is answered from memory any more
            self.settle()
            self._memo = None
            self._cover(service)
            backend = self._backends[-1]
            if all(b is not backend for b, _ in self._snapshot):
                self._snapshot.append((backend, copy.deepcopy(backend.__dict__)))
        config = kwargs.pop("config", None) or Config(
            retries={"mode": "standard", "max_attempts": 5}
        )
        if service != "s3":
            # SigV4 is a tenth of a schedule's wall time, and moto checks no signature but S3's
            # (it answers an unsigned request for a private bucket 403, as S3 does).
            config = config.merge(Config(signature_version=UNSIGNED))
        client = self._session.client(service, config=config, **kwargs)
        # moto answers through a before-send handler every client carries; here the run answers
        # (asking moto itself), so that a fault or a remembered token can stand in for moto.
        client.meta.events.unregister("before-send", botocore_stubber)
        client.meta.events.register_first("before-send", self._before_send)
        client.meta.events.register_first("before-parameter-build", _idempotency_token)
        self._cache[key] = client
        return client

    def send(self, run: Engine, request: Any, event_name: str, service: str, operation: str) -> Any:
        """moto's answer to ``request``, with DynamoDB's ``ClientRequestToken`` idempotency;
        from memory when the same request was sent from the same state before."""
        from botocore.awsrequest import AWSResponse
        from moto.core.botocore_stubber import MockRawResponse

        memo = self._memo
        if memo is None or memo.node is None or service not in self._services:
            answer = self._send(run, request, service, operation)
        else:
            key = request_key(request, service, operation, run.now)
            found = memo.follow(key)
            if isinstance(found, Answer):
                answer = found
            else:
                memo.sync()
                answer = self._send(run, request, service, operation)
                wrote = None if operation in READS else self._services[service]
                memo.record(key, answer, wrote)
        if answer.token is not None:
            run.tokens[answer.token[0]] = answer.token[1]
        raw = MockRawResponse(answer.body)
        return AWSResponse(request.url, answer.status, dict(answer.headers), raw)

    def _send(self, run: Engine, request: Any, service: str, operation: str) -> Answer:
        from moto.core.botocore_stubber import BotocoreStubber
        from moto.core.models import botocore_stubber

        token, canonical = None, ""
        if service == "dynamodb" and operation == "TransactWriteItems":
            body = json.loads(request.body or b"{}")
            token = body.get("ClientRequestToken")
            canonical = _token_parameters(body)
            seen = run.tokens.get(token) if token else None
            if seen is not None and run.now - seen[1] < TOKEN_WINDOW:
                if seen[0] == canonical:
                    return _answer(dynamodb_response(request.url, 200, {}))
                return _answer(
                    error_response(
                        request.url,
                        400,
                        "IdempotentParameterMismatchException",
                        "the ClientRequestToken was used before with other parameters",
                    )
                )
        answered = BotocoreStubber.process_request(botocore_stubber, request)
        if answered is None:
            raise SimulationError(f"moto does not answer {service} {operation} ({request.url})")
        status, headers, body = answered
        remembered = None
        if token and status == 200:
            remembered = (token, (canonical, run.now))
            run.tokens[token] = remembered[1]
        return Answer(status, dict(headers), body, remembered)

    def hash_key(self, table: str) -> str | None:
        """The partition key attribute of ``table`` (``None`` when there is no such table)."""
        name = self._hash_keys.get(table)
        if name is None:
            from moto.dynamodb.models import dynamodb_backends

            found = dynamodb_backends[_ACCOUNT][_REGION].tables.get(table)
            if found is None:
                return None
            name = self._hash_keys[table] = str(found.hash_key_attr)
        return name

    # -- TTL -----------------------------------------------------------------------------------

    def _tables(self) -> list[tuple[str, str, Any]]:
        from moto.dynamodb.models import dynamodb_backends

        found = []
        for name, table in dynamodb_backends[_ACCOUNT][_REGION].tables.items():
            ttl = getattr(table, "ttl", {}) or {}
            attribute = ttl.get("AttributeName")
            if ttl.get("TimeToLiveStatus") == "ENABLED" and attribute:
                found.append((name, attribute, table))
        return found

    def _expired_items(self, now: float) -> list[tuple[str, Any]]:
        """Every item whose ``ttl`` has passed at ``now``, in a fixed order (table, then key)."""
        expired = []
        for name, attribute, table in sorted(self._tables(), key=lambda t: t[0]):
            found = []
            for item in table.all_items():
                value = item.attrs.get(attribute)
                if value is not None and value.type == "N" and float(value.value) < now:
                    found.append((repr((item.hash_key, item.range_key)), item))
            expired += [(name, item) for _, item in sorted(found, key=lambda f: f[0])]
        return expired

    def expired(self, now: float) -> int:
        """How many items' ``ttl`` has passed at ``now``."""
        return int(self._remembered(("ttl?", now), None, lambda: len(self._expired_items(now))))

    def expire(self, now: float, which: int | None = None) -> int:
        """Delete the ``which``-th item whose ``ttl`` has passed (in :meth:`_expired_items`'
        order), or every one (``None``), as DynamoDB's TTL eventually does, each item on its
        own schedule. The number deleted."""
        wrote = self._services.get("dynamodb")
        return int(self._remembered(("ttl", now, which), wrote, lambda: self._expire(now, which)))

    def _remembered(self, key: Any, wrote: int | None, compute: Callable[[], Any]) -> Any:
        memo = self._memo
        if memo is None or memo.node is None:
            return compute()
        found = memo.follow(key)
        if found is None:
            memo.sync()
            found = compute()
            memo.record(key, found, wrote)
        return found

    def _expire(self, now: float, which: int | None) -> int:
        from moto.dynamodb.models import dynamodb_backends

        backend = dynamodb_backends[_ACCOUNT][_REGION]
        gone = 0
        expired = self._expired_items(now)
        for name, item in expired if which is None else expired[which : which + 1]:
            table = backend.tables[name]
            hash_key = item.hash_key
            range_key = item.range_key if table.has_range_key else None
            table.delete_item(hash_key, range_key)
            gone += 1
        return gone


def _idempotency_token(params: dict[str, Any], model: Any, **kwargs: Any) -> None:
    """Fill the idempotency tokens botocore would draw from ``uuid4`` (``ClientRequestToken``)
    from the invocation's clock instead, so that a replay sends the same bytes. Like botocore's,
    one token per call, reused by its retries."""
    for name in model.idempotent_members:
        if name not in params:
            params[name] = str(uuid.UUID(clock.token_hex(16)))


_NOT_PARAMETERS = ("ReturnConsumedCapacity", "ReturnItemCollectionMetrics")
"""What of a ``TransactWriteItems`` request is not compared with a token's first use: asking for
the cost back is not another request (DynamoDB Local answers a repeat that differs only there
as a repeat, not ``IdempotentParameterMismatchException``)."""


def _token_parameters(body: dict[str, Any]) -> str:
    """The parameters a ``ClientRequestToken`` is bound to, canonical: the same transaction
    written with its keys in another order is the same; its actions in another order are not."""
    return json.dumps({k: v for k, v in body.items() if k not in _NOT_PARAMETERS}, sort_keys=True)


def _virtual_utcnow(backend: Backend) -> Callable[[], None]:
    """Make moto's S3 stamp ``LastModified`` (and its other instants) from the schedule's
    virtual time instead of the machine's; returns what undoes it."""
    import datetime

    import moto.s3.models as s3_models

    names = vars(s3_models)
    real: Callable[[], datetime.datetime] = names["utcnow"]

    def utcnow() -> datetime.datetime:
        run = backend._run
        if run is None:
            return real()
        instant = datetime.datetime.fromtimestamp(run.now, datetime.UTC)
        return instant.replace(tzinfo=None)

    names["utcnow"] = utcnow

    def undo() -> None:
        names["utcnow"] = real

    return undo


def _answer(response: Any) -> Answer:
    return Answer(response.status_code, dict(response.headers), response.content)


def _random_state() -> Any:
    """moto's generator's state, pickled: every request moves it, so the memo keeps one per
    node, and as bytes it is about 4 KB rather than 24 KB of ints."""
    from moto.moto_api._internal import mock_random

    return pickle.dumps(mock_random.getstate(), protocol=pickle.HIGHEST_PROTOCOL)


def _set_random_state(state: Any) -> None:
    from moto.moto_api._internal import mock_random

    mock_random.setstate(pickle.loads(state))


def _refill_retry_quota(client: Any) -> None:
    """Give ``client``'s botocore retry quota (standard mode: 500 units) back in full."""
    emitter = client.meta.events._emitter
    service = client.meta.service_model.service_id.hyphenize()
    for handler in emitter._handlers.prefix_search(f"after-call.{service}"):
        quota = getattr(getattr(handler, "__self__", None), "_quota", None)
        if quota is not None and hasattr(quota, "_max_capacity"):
            quota._available_capacity = quota._max_capacity
