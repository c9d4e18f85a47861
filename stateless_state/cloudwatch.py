"""``store.metrics`` to CloudWatch, per invocation, in the Embedded Metric Format (EMF).

Lambda sends a function's standard output to CloudWatch Logs, and CloudWatch turns every log line
that is an EMF document into metrics: no ``PutMetricData`` call, no extra latency, no IAM
permission beyond the logs the function already writes.

.. code-block:: python

    from stateless_state.cloudwatch import publish_metrics

    @publish_metrics(store, namespace="Orders")
    def handler(event, context): ...

At the end of each invocation it prints one EMF document per DynamoDB operation the invocation
used (``Operation`` is the dimension: ``UpdateItem``, ``TransactWriteItems``, ``counter.add``...)
with what the invocation cost: ``Requests`` (HTTP attempts, botocore's retries included),
``Calls``, ``ConsumedWCU``, ``ConsumedRCU``, ``ConditionFailures``, ``Conflicts``, ``Retries``
and ``Errors``. An invocation that made no DynamoDB call prints nothing.

With Powertools' ``Metrics`` in use, pass it as ``powertools=metrics``: the documents then carry
its namespace, its ``service`` and its default dimensions, so the library's figures sit beside
your own under the same dimensions; Powertools' own flush is untouched (it may come before or
after ours, in either decorator order).

The figures are the difference of ``store.metrics`` between entry and exit, and
``store.metrics`` counts the whole process: exact for Lambda (one invocation at a time per
container), a mix of everything concurrent for a multi-threaded program.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from . import clock
from .errors import InvalidArgument
from .metrics import Metrics

__all__ = ["DEFAULT_NAMESPACE", "emf_documents", "emit", "metric_document", "publish_metrics"]

DEFAULT_NAMESPACE = "StatelessState"
"""The CloudWatch namespace of the metrics, unless ``namespace=`` (or Powertools' ``Metrics``) names
another."""

# Metric name in CloudWatch, field of OperationStats.
_FIGURES = (
    ("Requests", "requests"),
    ("Calls", "calls"),
    ("ConsumedWCU", "wcu"),
    ("ConsumedRCU", "rcu"),
    ("ConditionFailures", "condition_failures"),
    ("Conflicts", "conflicts"),
    ("Retries", "retries"),
    ("Errors", "errors"),
)
# EMF reserves these keys, and a dimension named like a metric would be overwritten by it.
_RESERVED = frozenset({"_aws", "Operation"} | {name for name, _ in _FIGURES})


def metric_document(
    namespace: str,
    values: Mapping[str, float],
    *,
    units: Mapping[str, str] | None = None,
    dimensions: Mapping[str, str] | None = None,
    timestamp: float | None = None,
) -> dict[str, Any]:
    """One EMF document: ``values`` as metrics (unit ``Count`` unless ``units`` names
    another, e.g. ``Seconds``) under ``namespace``, with ``dimensions`` as its one dimension
    set. Namespace and dimensions are checked against CloudWatch's rules (it would drop a
    metric that breaks one without any error): :class:`InvalidArgument` names the one broken."""
    dims = _dimensions(dimensions or {}, reserved=frozenset({"_aws", *values}), room=30)
    units = units or {}
    if not 0 < len(values) <= 100:
        raise InvalidArgument(f"{len(values)} metrics given: an EMF document holds 1 to 100")
    for name, value in values.items():
        _text(name, "metric name", 255)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidArgument(f"metric {name!r} = {value!r}: give a finite number")
        if units.get(name, "Count") not in _UNITS:
            raise InvalidArgument(
                f"unit {units[name]!r} of metric {name!r} is not a CloudWatch unit: use one of "
                f"{sorted(_UNITS)}"
            )
    at = int((clock.now() if timestamp is None else timestamp) * 1000)
    return {
        "_aws": {
            "Timestamp": at,
            "CloudWatchMetrics": [
                {
                    "Namespace": _namespace(namespace),
                    "Dimensions": [list(dims)],
                    "Metrics": [{"Name": n, "Unit": units.get(n, "Count")} for n in values],
                }
            ],
        },
        **dims,
        **values,
    }


def emf_documents(
    metrics: Metrics,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    dimensions: Mapping[str, str] | None = None,
    timestamp: float | None = None,
) -> list[dict[str, Any]]:
    """``metrics`` (typically the difference of two snapshots) as EMF documents, one per
    operation, each with ``Operation`` and ``dimensions`` as its dimension set."""
    dims = _dimensions(dimensions or {})
    at = clock.now() if timestamp is None else timestamp
    return [
        metric_document(
            namespace,
            {name: getattr(stats, attribute) for name, attribute in _FIGURES},
            dimensions={**dims, "Operation": operation},
            timestamp=at,
        )
        for operation, stats in sorted(metrics.by_operation.items())
    ]


# CloudWatch's documented rules (API Dimension, Metric): ASCII without control characters, at
# least one non-whitespace character; dimension names 1-255 and not starting with ':', values
# 1-1,024; namespaces 1-255, not starting with ':' and not 'AWS/' (reserved). CloudWatch drops a
# metric that breaks one without any error, so each is refused here, when configured.
_PRINTABLE = re.compile(r"[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*", re.ASCII)
# CloudWatch's StandardUnit values: EMF rejects a document whose unit is not one of them.
_UNITS = frozenset(
    {
        *(f"{p}{u}" for u in ("Bytes", "Bits") for p in ("", "Kilo", "Mega", "Giga", "Tera")),
        *(
            f"{p}{u}/Second"
            for u in ("Bytes", "Bits")
            for p in ("", "Kilo", "Mega", "Giga", "Tera")
        ),
        *("Seconds", "Microseconds", "Milliseconds", "Percent", "Count", "Count/Second", "None"),
    }
)


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit or not _PRINTABLE.fullmatch(value):
        raise InvalidArgument(
            f"{what} {value!r} is not accepted by CloudWatch: use 1 to {limit} printable ASCII "
            "characters, not all blank (CloudWatch would drop the metrics silently)"
        )
    return value


def _namespace(value: object) -> str:
    namespace = _text(value, "namespace", 255)
    if namespace.startswith(":") or namespace.startswith("AWS/"):
        raise InvalidArgument(
            f"namespace {namespace!r} cannot start with ':' or 'AWS/' (reserved): choose another"
        )
    return namespace


def _dimensions(
    dimensions: Mapping[str, Any], *, reserved: frozenset[str] = _RESERVED, room: int = 29
) -> dict[str, str]:
    """The dimensions checked: at most ``room`` (EMF allows 30 per set; the cost documents
    keep one for ``Operation``), none named like a ``reserved`` key."""
    if len(dimensions) > room:
        raise InvalidArgument(
            f"{len(dimensions)} dimensions given; EMF allows 30 per set"
            + (", and one is Operation" if room < 30 else "")
        )
    out = {}
    for name, value in dimensions.items():
        if name in reserved or not isinstance(name, str) or not name:
            raise InvalidArgument(
                f"{name!r} cannot be a dimension name here (reserved: {sorted(reserved)})"
            )
        _text(name, "dimension name", 255)
        if name.startswith(":"):
            raise InvalidArgument(f"dimension name {name!r} cannot start with ':': rename it")
        out[name] = _text(str(value), f"value of dimension {name!r}", 1024)
    return out


class publish_metrics(contextlib.ContextDecorator):
    """Print what the enclosed code cost in DynamoDB as EMF documents when it ends, also when
    it raises. A decorator for handlers or a context manager:

    >>> with publish_metrics(store, namespace="Orders"):
    ...     handle(event)

    Args:
        store: the :class:`~stateless_state.Store` (anything with ``.metrics``).
        namespace: the CloudWatch namespace; Powertools' when ``powertools`` is given.
        dimensions: more dimensions for every document (``{"stage": "prod"}``).
        powertools: a Powertools ``Metrics``; its namespace, service and default dimensions
            are used (``namespace`` and ``dimensions`` add to or override them).
        emit: where each document goes, as one line of JSON (default: standard output, which
            Lambda sends to CloudWatch Logs).
    """

    def __init__(
        self,
        store: Any,
        *,
        namespace: str | None = None,
        dimensions: Mapping[str, str] | None = None,
        powertools: Any = None,
        emit: Callable[[str], None] | None = None,
    ) -> None:
        if not isinstance(getattr(store, "metrics", None), Metrics):
            raise InvalidArgument("publish_metrics(store, ...) needs a stateless_state.Store")
        self._store = store
        dims: dict[str, str] = {}
        if powertools is not None:
            namespace = namespace or getattr(powertools, "namespace", None)
            if getattr(powertools, "service", None):
                dims["service"] = str(powertools.service)
            dims.update(getattr(powertools, "default_dimensions", None) or {})
        dims.update(dimensions or {})
        self._namespace = _namespace(namespace or DEFAULT_NAMESPACE)
        self._dimensions = _dimensions(dims)
        self._emit = emit or _emit_line
        self._before: list[Metrics] = []

    def __enter__(self) -> publish_metrics:
        self._before.append(self._store.metrics.snapshot())
        return self

    def __exit__(self, *exc: object) -> None:
        spent = self._store.metrics.snapshot() - self._before.pop()
        for doc in emf_documents(spent, namespace=self._namespace, dimensions=self._dimensions):
            self._emit(json.dumps(doc, separators=(",", ":")))


def emit(document: Mapping[str, Any]) -> None:
    """Print ``document`` as one line of JSON on standard output, which Lambda sends to
    CloudWatch Logs, where an EMF document becomes metrics."""
    _emit_line(json.dumps(document, separators=(",", ":")))


def _emit_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
