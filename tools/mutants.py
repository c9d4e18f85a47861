"""``make mutants``: plant each known bug in a copy of the source and see who finds it.

A mutant is a textual patch (hunks of ``old`` → ``new``, each exactly once in its file) of a kind
that has shipped before or that the protocol exists to prevent: a write that does not carry the
condition on what it read. Each is planted in a temporary copy of the project, never in the
tree itself; then the simulation scenarios named for it run under their CI bounds
(``tools.simulate --only NAME --ci --json``), and with ``--races`` the real-thread tests named
for it run too (pytest against DynamoDB Local), so the two can be compared: schedules and
seconds until the simulation found it, against whether the race tests noticed at all.

``--only NAME`` (repeatable) picks mutants; ``--markdown PATH`` writes the table (``make
mutants`` writes ``benchmarks/MUTANTS.md``). Exits 1 if a mutant survived the simulation, or if a
patch no longer applies (the code it targets moved: update the mutant, do not drop it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_COPIED = ("stateless_state", "patterns", "tests", "tools", "benchmarks", "examples")
_TOP_FILES = ("pyproject.toml",)


@dataclass(frozen=True)
class Mutant:
    """One planted bug: what it breaks (``why``), where (``hunks`` of (file, old, new)), the
    scenarios that must find it and the real-thread tests to compare them with."""

    name: str
    why: str
    hunks: tuple[tuple[str, str, str], ...]
    scenarios: tuple[str, ...]
    races: tuple[str, ...] = ()
    full: bool = False
    """Found only under the scenarios' full bounds (minutes): ``make mutants`` runs those, the
    tests do not."""


_CLAIM = "stateless_state/idempotency/claim.py"
_LEASE = "stateless_state/lease.py"
_OWNERSHIP_RACES = "tests/stateless_state/test_ownership_races.py"
_SESSION_RACES = "tests/stateless_state/test_sessions_races.py"
_ABANDON_RACES = "tests/patterns/test_abandon_races.py"

MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "zombie_completion",
        "a completion not conditional on the claim it holds: a zombie overwrites the taker's",
        (
            (
                _CLAIM,
                "owned.record.update_held_in(tx, owned.nonce, self._done(text), "
                "condition=in_progress)",
                'tx.update(owned.record.key, self._done(text), condition=Attr("pk").exists(), '
                "return_old=True)",
            ),
        ),
        ("idempotency.zombie",),
        (_OWNERSHIP_RACES,),
    ),
    Mutant(
        "delete_on_failure",
        "a failing body deletes the record unconditionally (Powertools' way): a retry runs "
        "again beside a taker",
        (
            (
                _CLAIM,
                "owned.record.update_held(\n                owned.nonce, released, "
                'condition=Attr("status").is_in(IN_PROGRESS, RELEASED)\n            )',
                "owned.record.table.delete(owned.record.key)",
            ),
        ),
        ("idempotency.failure",),
        (_OWNERSHIP_RACES,),
    ),
    Mutant(
        "session_add_without_head",
        "a session add without the condition on the head it read: two adds split or merge",
        (
            (
                "stateless_state/sessions.py",
                "            condition=version.not_exists() if seen == 0 else version.eq(seen),\n",
                "",
            ),
        ),
        ("sessions.per_key",),
        (_SESSION_RACES,),
    ),
    Mutant(
        "lease_without_fence",
        "renew and release without the fence: a stale holder extends or frees a taken lease",
        (
            (
                _LEASE,
                "self.lease.claim.update(\n                self.fence, "
                'Update().set("expires_at", expires), condition=self._holding()\n            )',
                "self.lease.claim.table.update_item(self.lease.claim.key, "
                'Update().set("expires_at", expires))',
            ),
            (
                _LEASE,
                "self.lease.claim.update(\n                self.fence,\n                "
                'Update().set("expires_at", 0).remove("holder", "owner"),\n                '
                'condition=self._holding() | Attr("holder").not_exists(),\n            )',
                "self.lease.claim.table.update_item(\n                self.lease.claim.key, "
                'Update().set("expires_at", 0).remove("holder", "owner")\n            )',
            ),
        ),
        ("lease.fencing", "lease.pair"),
        (_OWNERSHIP_RACES,),
    ),
    Mutant(
        "stale_crossing",
        "a watermark close that checks the session is open, not that it is the one it read",
        (
            (
                "stateless_state/window_store.py",
                'condition=self._unchanged(item) & Attr("due").le(watermark),',
                'condition=Attr("state").eq("open") & Attr("due").le(watermark),',
            ),
        ),
        ("sessions.watermark",),
        (_SESSION_RACES,),
    ),
    Mutant(
        "seal_without_count",
        "a seal conditional on the batch being open, not on the count it planned: containers "
        "with stale plans seal past the threshold",
        (
            (
                "patterns/batcher/members.py",
                "return update, state.eq(BatchState.OPEN) & count.eq(plan.count) & "
                "total.eq(plan.bytes)",
                "return update, state.eq(BatchState.OPEN)",
            ),
        ),
        ("batcher.seal",),
        ("tests/patterns/test_batcher_races.py",),
    ),
    Mutant(
        "load_without_fence",
        "a load that commits without the warehouse ledger's verdict: a second loader, or one "
        "after an abandon, commits the rows again",
        (
            (
                "patterns/loaders/sqlite.py",
                '            if done:\n                abandoned = done[0] == "abandoned"\n'
                "                return LoadOutcome(manifest.batch_id, False, None, 0, "
                "abandoned=abandoned)\n",
                "",
            ),
            (
                "patterns/loaders/sqlite.py",
                "\"INSERT INTO ledger VALUES (?, ?, ?, ?, 'loaded')\"",
                "\"INSERT OR REPLACE INTO ledger VALUES (?, ?, ?, ?, 'loaded')\"",
            ),
        ),
        ("batcher.lifecycle", "batcher.abandon"),
        (_ABANDON_RACES,),
    ),
    Mutant(
        "abandon_without_ledger",
        "an operator's abandon conditional on the state it read, not the fence: a loader that "
        "claimed the batch since commits what was answered abandoned",
        (
            (
                "patterns/batcher/__init__.py",
                'seen = Attr("state").eq(expect_state) & (\n'
                "            unclaimed if expect_fence == 0 else fence.eq(expect_fence)\n"
                "        )",
                'seen = Attr("state").eq(expect_state)',
            ),
        ),
        ("batcher.abandon",),
        (_ABANDON_RACES,),
        full=True,
    ),
)
"""The planted bugs; see the module docstring."""


@dataclass
class Verdict:
    """What happened to one mutant: per scenario, (found, schedules, seconds); the race tests'
    verdict (``None`` when not run)."""

    mutant: Mutant
    scenarios: dict[str, tuple[bool, int, float]] = field(default_factory=dict)
    races: str | None = None
    race_seconds: float = 0.0

    @property
    def found(self) -> bool:
        return any(found for found, _, _ in self.scenarios.values())


class PatchDoesNotApply(RuntimeError):
    """The text a mutant replaces is not in its file exactly once: the code moved."""


def check_applies(mutant: Mutant, root: Path = ROOT) -> None:
    """Raise :class:`PatchDoesNotApply` unless each hunk's text is in its file exactly once."""
    for file, old, _ in mutant.hunks:
        found = (root / file).read_text().count(old)
        if found != 1:
            raise PatchDoesNotApply(
                f"mutant {mutant.name}: {file} holds the text to replace {found} times, not "
                "once; update the mutant to the code as it is"
            )


def plant(mutant: Mutant, into: Path) -> None:
    """Copy the project into ``into`` and apply ``mutant`` there."""
    check_applies(mutant)
    for name in _COPIED:
        shutil.copytree(
            ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    for name in _TOP_FILES:
        shutil.copy2(ROOT / name, into / name)
    for file, old, new in mutant.hunks:
        target = into / file
        target.write_text(target.read_text().replace(old, new))


def _env(root: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    env.setdefault("STATELESS_STATE_DYNAMODB_LOCAL_DIR", str(ROOT / ".cache" / "dynamodb-local"))
    return env


def simulate(
    names: tuple[str, ...], root: Path, *, ci: bool = True
) -> dict[str, tuple[bool, int, float]]:
    """Run the scenarios ``names`` under their CI (or full) bounds in the tree at ``root``."""
    args = [sys.executable, "-m", "tools.simulate", "--json", *(["--ci"] if ci else [])]
    for name in names:
        args += ["--only", name]
    proc = subprocess.run(
        args, check=False, cwd=root, env=_env(root), capture_output=True, text=True
    )
    results: dict[str, tuple[bool, int, float]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            results[row["name"]] = (row["failure"] is not None, row["schedules"], row["elapsed"])
    missing = [n for n in names if n not in results]
    if missing:
        # a scenario that crashed outright (an import error, say) found the mutant only if the
        # crash is an assertion; anything else is a broken run, said as such
        raise RuntimeError(
            f"simulate gave no result for {', '.join(missing)}:\n{proc.stdout}\n{proc.stderr}"
        )
    return results


def race_tests(tests: tuple[str, ...], root: Path) -> tuple[str, float]:
    """Run the real-thread tests ``tests`` in the tree at ``root``: ``caught`` if any failed."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        check=False,
        cwd=root,
        env=_env(root),
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if proc.returncode == 0:
        return "missed", seconds
    if proc.returncode == 1:
        return "caught", seconds
    raise RuntimeError(f"pytest could not run {tests}:\n{proc.stdout[-3000:]}\n{proc.stderr}")


def judge(mutant: Mutant, *, races: bool = False) -> Verdict:
    """Plant ``mutant`` in a temporary copy and run what should find it."""
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as tmp:
        root = Path(tmp)
        plant(mutant, root)
        verdict = Verdict(mutant, simulate(mutant.scenarios, root, ci=not mutant.full))
        if races and mutant.races:
            verdict.races, verdict.race_seconds = race_tests(mutant.races, root)
    return verdict


def markdown(verdicts: list[Verdict]) -> list[str]:
    lines = [
        "# Planted mutants: the simulation against the real-thread tests",
        "",
        "Produced by `make mutants` (`tools/mutants.py`). Each mutant is planted in a temporary "
        "copy of the source; the simulation scenarios named for it run under their CI bounds "
        "(the full ones where marked), "
        "and the real-thread race tests named for it run against DynamoDB Local on the same "
        "mutant. *Schedules* and *seconds* are until the first failing schedule.",
        "",
        "| mutant | what it breaks | scenario | found | schedules | seconds "
        "| real-thread tests | their seconds |",
        "|---|---|---|---|---:|---:|---|---:|",
    ]
    for v in verdicts:
        for name, (found, schedules, seconds) in v.scenarios.items():
            race = v.races or "not run"
            if v.races and v.mutant.races:
                race = f"{v.races} ({', '.join(f'`{t}`' for t in v.mutant.races)})"
            lines.append(
                f"| `{v.mutant.name}` | {v.mutant.why} | `{name}` | "
                f"{'yes' if found else '**no**'} | {schedules:,} | {seconds:.1f} | {race} "
                f"| {v.race_seconds:.0f} |"
            )
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    parser.add_argument("--races", action="store_true", help="run the real-thread tests too")
    parser.add_argument("--markdown", type=Path, metavar="PATH")
    args = parser.parse_args(argv)
    known = {m.name: m for m in MUTANTS}
    unknown = [n for n in args.only if n not in known]
    if unknown:
        parser.error(f"no mutant named {', '.join(unknown)}; known: {', '.join(known)}")
    verdicts = []
    for mutant in MUTANTS:
        if args.only and mutant.name not in args.only:
            continue
        verdict = judge(mutant, races=args.races)
        verdicts.append(verdict)
        found = ", ".join(
            f"{n} {s} schedules {t:.1f} s" for n, (_, s, t) in verdict.scenarios.items()
        )
        races = f"; real-thread tests {verdict.races}" if verdict.races else ""
        print(f"{mutant.name}: {'found' if verdict.found else 'SURVIVED'} {found}{races}")
    if args.markdown:
        args.markdown.write_text("\n".join(markdown(verdicts)))
    return 0 if all(v.found for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
