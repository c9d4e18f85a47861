"""``make simulate``: every registered simulation scenario under its full bounds, one line each.

``--ci`` uses the CI bounds; ``--only NAME`` (repeatable) picks scenarios; ``--json`` prints one
JSON object per scenario (what ``make mutants`` reads). Exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import sys

from tests.support.simulations import specs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ci", action="store_true", help="the tests' smaller bounds")
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    registry = specs()
    unknown = [n for n in args.only if n not in registry]
    if unknown:
        parser.error(f"no scenario named {', '.join(unknown)}; known: {', '.join(registry)}")
    failed = False
    for name, spec in registry.items():
        if args.only and name not in args.only:
            continue
        result = spec.explore(ci=args.ci)
        failed = failed or bool(result.failures)
        if args.json:
            print(
                json.dumps(
                    {
                        "name": name,
                        "bounds": spec.bounds,
                        "schedules": result.schedules,
                        "pruned": result.pruned,
                        "steps": result.steps,
                        "elapsed": round(result.elapsed, 3),
                        "finished": result.finished,
                        "failure": str(result.failures[0]) if result.failures else None,
                    }
                ),
                flush=True,
            )
        else:
            print(f"{name} ({spec.bounds}): {result}", flush=True)
            if result.failures:
                print(str(result.failures[0]), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
