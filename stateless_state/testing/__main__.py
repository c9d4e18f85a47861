"""``python -m stateless_state.testing install``: install DynamoDB Local (idempotent)."""

from __future__ import annotations

import sys

from .dynamodb_local import DynamoDBLocalError, install


def main(argv: list[str]) -> int:
    if argv != ["install"]:
        print("usage: python -m stateless_state.testing install", file=sys.stderr)
        return 2
    try:
        print(install())
    except DynamoDBLocalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
