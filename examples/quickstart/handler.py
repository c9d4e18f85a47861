"""The Quick start's handler (README.md shows it): count the files S3 notifies, each once, and
act once when the count crosses 1,000. Its table is the template's, never made at import."""

from __future__ import annotations

from typing import Any

from stateless_state import Store

store = Store.from_env()  # the table named by STATELESS_STATE_TABLE, created by the template


def handler(event: dict[str, Any], context: Any) -> None:
    for record in event["Records"]:
        key = record["s3"]["object"]["key"]
        tag = record["s3"]["object"]["sequencer"]
        count = store.counter("files-today").add(1, token=f"{key}@{tag}", context=context)
        if count.crossed(1000):
            print("1,000 files today")  # exactly one invocation gets here (and its retries)
