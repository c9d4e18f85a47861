"""Crash points: the named places in the pipeline where a test harness may stop the process.

The pipeline calls :func:`crash_point` at each of them; it does nothing unless a hook is
installed, which only a crash-torture run does (``patterns.testing.install_crash_points``, used
by ``make torture`` and the demo's ``--crash-points``). The places, in pipeline order:

* ``between-requests``: one of an event's add requests has committed, the next not started
  (an event of many arrivals, or of several lanes, takes several);
* ``after-add``: an event's arrivals are added;
* ``after-seal``: a batch is about to be loaded (just sealed, or found by the sweeper);
* ``after-claim``: a loader holds the batch's load claim;
* ``mid-load``: the manifest is written, the warehouse load not started;
* ``after-commit``: the warehouse committed, the batch not yet marked loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

__all__ = ["CRASH_POINTS", "CrashPoint", "crash_point", "set_crash_hook"]

CrashPoint = Literal[
    "between-requests", "after-add", "after-seal", "after-claim", "mid-load", "after-commit"
]
"""The name of a place in the pipeline where a harness may stop a worker."""
CRASH_POINTS: tuple[CrashPoint, ...] = (
    "between-requests",
    "after-add",
    "after-seal",
    "after-claim",
    "mid-load",
    "after-commit",
)
"""Every crash point, in the order an arrival meets them."""

_hook: Callable[[CrashPoint], None] | None = None


def set_crash_hook(hook: Callable[[CrashPoint], None] | None) -> None:
    """Install ``hook`` (called with the point's name at each crash point), or remove it."""
    global _hook  # noqa: PLW0603 - one process-wide hook, set by a test harness
    _hook = hook


def crash_point(name: CrashPoint) -> None:
    """Mark a crash point: calls the installed hook, if any. Costs one global lookup otherwise."""
    if _hook is not None:
        _hook(name)
