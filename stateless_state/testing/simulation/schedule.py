"""What a schedule is made of: the options at each step, the fault budget, and the compact
replay line.

At every step the simulation lists its :class:`Option` s in a fixed order — first the invocation
that ran last carrying on without a fault, then the others, then faults, then world actions — and
a scheduler picks one by index. A schedule is the list of picked indices; with the run's seed it
determines everything that happens, so it is all a replay needs. Index 0 everywhere is the
plain sequential run, which is what Hypothesis shrinks towards.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, fields

from ...errors import InvalidArgument

__all__ = ["FAULTS", "Faults", "Option", "ReplayLine", "decode", "encode"]

FAULTS = ("ambiguous", "throttle", "conflict", "crash", "pause", "timeout", "duplicate", "ttl")
"""Every fault a schedule can choose; see :class:`Faults`."""


@dataclass(frozen=True)
class Faults:
    """How many of each fault one schedule may inject (0: never), and their parameters.

    * ``ambiguous``: a DynamoDB or S3 write is applied, its response lost; botocore retries it.
    * ``throttle``: a DynamoDB request answered ``ProvisionedThroughputExceededException``.
    * ``conflict``: a ``TransactWriteItems`` cancelled with ``TransactionConflict``.
    * ``crash``: the invocation dies at that step and sends nothing more, as after SIGKILL
      (its ``finally`` blocks cannot reach AWS); the event source delivers its event again.
    * ``pause``: the invocation stalls while virtual time runs ``pause_for`` seconds on (a
      zombie whose lease expires under it); it carries on later where it was.
    * ``timeout``: virtual time runs to the invocation's Lambda deadline and Lambda ends it.
    * ``duplicate``: the event source delivers the invocation's event once more (at-least-once),
      while the first delivery is still running.
    * ``ttl``: DynamoDB's TTL deletes the items whose ``ttl`` has passed, at this step: all of
      them, or (when there are several) any one alone; otherwise never. Both are what DynamoDB
      promises: deletion some time after the ``ttl``, each item on its own schedule.

    ``redeliveries`` bounds how often an event whose invocation crashed, timed out or raised is
    delivered again (SQS and Lambda's async retries do so; 0 turns it off), and
    ``redeliver_after`` is how many virtual seconds later (SQS's visibility timeout; 0: at
    once). A crashed invocation's claim or lease outlives it; a redelivery that comes sooner
    than the lease ends can only meet it.
    """

    ambiguous: int = 0
    throttle: int = 0
    conflict: int = 0
    crash: int = 0
    pause: int = 0
    timeout: int = 0
    duplicate: int = 0
    ttl: int = 0
    pause_for: float = 60.0
    redeliveries: int = 2
    redeliver_after: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0:
                raise InvalidArgument(f"Faults.{f.name} must be >= 0, got {value}")

    def budget(self) -> dict[str, int]:
        """The count of each fault kind, by name."""
        return {kind: int(getattr(self, kind)) for kind in FAULTS}

    @classmethod
    def all(cls, n: int = 1, **overrides: float) -> Faults:
        """``n`` of every fault kind (then ``overrides``)."""
        values: dict[str, float] = dict.fromkeys(FAULTS, n)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Option:
    """One choice at a step: ``task`` (an invocation's index, or -1 for the world) does
    ``action`` (``"run"``, or a fault of :data:`FAULTS`). ``preempts`` is true when choosing it
    takes the turn from the invocation that ran last while that one could have carried on."""

    task: int
    action: str
    preempts: bool = False


_DIGITS = string.digits + string.ascii_lowercase


def encode(choices: list[int]) -> str:
    """The choices as a compact string: one base-36 digit each, ``(n)`` for a choice over 35,
    and ``*k`` runs of zeros (a schedule is mostly zeros)."""
    out: list[str] = []
    zeros = 0

    def flush() -> None:
        nonlocal zeros
        if zeros:
            out.append("0" * zeros if zeros < 4 else f"*{zeros}.")
            zeros = 0

    for c in choices:
        if c == 0:
            zeros += 1
            continue
        flush()
        out.append(_DIGITS[c] if c < len(_DIGITS) else f"({c})")
    flush()
    return "".join(out)


def decode(text: str) -> list[int]:
    """The inverse of :func:`encode`."""
    choices: list[int] = []
    i = 0
    try:
        while i < len(text):
            ch = text[i]
            if ch == "*":
                end = text.index(".", i)
                choices.extend([0] * int(text[i + 1 : end]))
                i = end + 1
            elif ch == "(":
                end = text.index(")", i)
                choices.append(int(text[i + 1 : end]))
                i = end + 1
            else:
                choices.append(_DIGITS.index(ch))
                i += 1
    except ValueError:
        raise InvalidArgument(f"not a schedule: {text!r} (copy it from a failure's line)") from None
    return choices


def _faults_text(faults: Faults) -> str:
    default = Faults()
    parts = [
        f"{f.name}={getattr(faults, f.name)!r}"  # repr: a float's every digit
        for f in fields(faults)
        if getattr(faults, f.name) != getattr(default, f.name)
    ]
    return ",".join(parts) or "-"


_SECONDS = frozenset({"pause_for", "redeliver_after"})
"""The fields of :class:`Faults` that are virtual seconds (floats); the others are counts."""


def _faults_parse(text: str) -> Faults:
    if text == "-":
        return Faults()
    values: dict[str, float] = {}
    names = {f.name: f.type for f in fields(Faults)}
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name not in names:
            raise InvalidArgument(f"unknown fault {name!r} in a replay line")
        values[name] = float(value) if name in _SECONDS else int(value)
    return Faults(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ReplayLine:
    """Everything that determines a schedule: its seed, the preemption bound and fault budget it
    was chosen under, and the choices. ``str()`` is the line to paste into
    :func:`~stateless_state.testing.simulation.replay`."""

    seed: int
    choices: tuple[int, ...]
    preemptions: int | None = None
    faults: Faults = Faults()

    def __str__(self) -> str:
        bound = "-" if self.preemptions is None else str(self.preemptions)
        schedule = encode(list(self.choices))
        return f"sim1:{self.seed}:{bound}:{_faults_text(self.faults)}:{schedule}"

    @classmethod
    def parse(cls, line: str) -> ReplayLine:
        """Read a line printed by a failure (``sim1:<seed>:<bound>:<faults>:<schedule>``)."""
        parts = line.strip().split(":", 4)
        if len(parts) != 5 or parts[0] != "sim1" or not parts[1].lstrip("-").isdigit():
            raise InvalidArgument(
                f"not a replay line: {line!r}; copy the whole 'sim1:...' line a failure printed"
            )
        bound = None if parts[2] == "-" else int(parts[2])
        return cls(int(parts[1]), tuple(decode(parts[4])), bound, _faults_parse(parts[3]))
