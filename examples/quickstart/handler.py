"""The Quick start's handlers (README.md shows them): count the files S3 notifies, each once,
and act once when the count crosses 1,000; confirm each order EventBridge delivers once, however
often it is delivered. Their table is the template's, never made at import."""

from __future__ import annotations

from typing import Any

from stateless_state import Store, idempotent

store = Store.from_env()  # the table named by STATELESS_STATE_TABLE, created by the template


def handler(event: dict[str, Any], context: Any) -> None:
    for record in event["Records"]:
        key = record["s3"]["object"]["key"]
        tag = record["s3"]["object"]["sequencer"]
        count = store.counter("files-today").add(1, token=f"{key}@{tag}", context=context)
        if count.crossed(1000):
            print("1,000 files today")  # exactly one invocation gets here (and its retries)


@idempotent(store, key="detail.order_id", validate="detail", expires_after=3600)
def on_order(event: dict[str, Any], context: Any) -> dict[str, Any]:
    order = event["detail"]
    print(f"order {order['order_id']} confirmed")  # once per order id, however often delivered
    return {"confirmed": order["order_id"]}
