"""The alternatives we measure against, written here from their published algorithms and run on
the same DynamoDB Local in the same run. They go through a ``Table`` so ``store.metrics`` counts
their requests and units exactly as it counts ours.

* :class:`LoaderBaseline`: the per-file DynamoDB pattern of the deprecated
  awslabs/aws-lambda-redshift-loader: a consistent GetItem of the config, an unconditional
  UpdateItem of the processed-files record, a conditional UpdateItem appending ``{file, size}``
  to a list on the single open-batch item (condition: status open), an UpdateItem linking the file
  to the batch, a consistent GetItem of the batch to check thresholds; at the threshold a
  conditional lock of the batch and a rotation of the config to a new batch id.
* :class:`CasBatcher`: batch membership by compare-and-set: read the open batch, then a
  transaction adding the member and moving the batch's version from the one read.
* :func:`cas_counter_add`: a counter increment by read, then conditional write.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from stateless_state.codec import serialize, to_item
from stateless_state.table import ConditionFailed, Table, TransactionCanceled

__all__ = ["CasBatcher", "LoaderBaseline", "cas_counter_add"]


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))


class LoaderBaseline:
    """aws-lambda-redshift-loader's per-file request pattern (see the module docstring)."""

    def __init__(self, table: Table, prefix: str, batch_size: int) -> None:
        self.t = table
        self.prefix = prefix
        self.batch_size = batch_size
        self.retries = 0
        self._config = {"pk": f"lrl#config#{prefix}", "sk": "config"}

    def setup(self) -> None:
        self.t.call(
            "PutItem",
            TableName=self.t.name,
            Item=to_item(
                {**self._config, "currentBatch": uuid.uuid4().hex, "batchSize": self.batch_size}
            ),
        )

    def _batch_key(self, batch_id: str) -> dict[str, str]:
        return {"pk": f"lrl#batch#{self.prefix}", "sk": batch_id}

    def prefill(self, entries: int, size_each: int = 1000) -> str:
        """Put the open batch at ``entries`` members in one write (for sampling large batches)."""
        config = self.t.get(self._config) or {}
        batch_id = config["currentBatch"]
        self.t.call(
            "PutItem",
            TableName=self.t.name,
            Item=to_item(
                {
                    **self._batch_key(batch_id),
                    "status": "open",
                    "entries": [
                        {
                            "file": f"s3://bucket/{self.prefix}/prefill/{i:06d}.json",
                            "size": size_each,
                        }
                        for i in range(entries)
                    ],
                    "size": entries * size_each,
                }
            ),
        )
        return str(batch_id)

    def add(self, file: str, size: int) -> None:
        t = self.t
        for attempt in range(100):
            config = t.get(self._config) or {}
            batch_id = config["currentBatch"]
            t.call(
                "UpdateItem",
                TableName=t.name,
                Key=to_item({"pk": f"lrl#file#{file}", "sk": "file"}),
                UpdateExpression="SET lastUpdate = :now ADD timesProcessed :one",
                ExpressionAttributeValues={":now": serialize(time.time()), ":one": serialize(1)},
            )
            try:
                t.call(
                    "UpdateItem",
                    TableName=t.name,
                    Key=to_item(self._batch_key(batch_id)),
                    UpdateExpression=(
                        "SET entries = list_append(if_not_exists(entries, :empty), :entry), "
                        "#status = if_not_exists(#status, :open), lastUpdate = :now "
                        "ADD #size :size"
                    ),
                    ConditionExpression="attribute_not_exists(#status) OR #status = :open",
                    ExpressionAttributeNames={"#status": "status", "#size": "size"},
                    ExpressionAttributeValues={
                        k: serialize(v)
                        for k, v in {
                            ":empty": [],
                            ":entry": [{"file": file, "size": size}],
                            ":open": "open",
                            ":now": time.time(),
                            ":size": size,
                        }.items()
                    },
                )
            except ConditionFailed:
                self.retries += 1
                _backoff(attempt)
                continue
            t.call(
                "UpdateItem",
                TableName=t.name,
                Key=to_item({"pk": f"lrl#file#{file}", "sk": "file"}),
                UpdateExpression="SET batchId = :b",
                ExpressionAttributeValues={":b": serialize(batch_id)},
            )
            batch = t.get(self._batch_key(batch_id)) or {}
            if len(batch.get("entries", [])) >= self.batch_size:
                self._rotate(batch_id)
            return
        raise RuntimeError("baseline add never got into an open batch")

    def _rotate(self, batch_id: str) -> None:
        try:
            self.t.call(
                "UpdateItem",
                TableName=self.t.name,
                Key=to_item(self._batch_key(batch_id)),
                UpdateExpression="SET #status = :locked",
                ConditionExpression="#status = :open",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":locked": serialize("locked"),
                    ":open": serialize("open"),
                },
            )
        except ConditionFailed:
            return
        self.t.call(
            "UpdateItem",
            TableName=self.t.name,
            Key=to_item(self._config),
            UpdateExpression="SET currentBatch = :n",
            ExpressionAttributeValues={":n": serialize(uuid.uuid4().hex)},
        )


class CasBatcher:
    """Batch membership by compare-and-set: read the open batch, then a transaction that adds the
    member and moves the batch's version from the one read; on any conflict, read again."""

    def __init__(self, table: Table, stream: str, batch_size: int) -> None:
        self.t = table
        self.stream = stream
        self.batch_size = batch_size
        self.retries = 0
        self._head = {"pk": f"cas#{stream}", "sk": "head"}

    def add(self, arrival_id: str, size: int) -> None:
        t = self.t
        for attempt in range(500):
            head = t.get(self._head) or {}
            seq, count, version = (
                int(head.get("seq", 0)),
                int(head.get("count", 0)),
                int(head.get("version", 0)),
            )
            rotate = count + 1 >= self.batch_size
            values: dict[str, Any] = {
                ":v": version,
                ":nv": version + 1,
                ":seq": seq + 1 if rotate else seq,
                ":count": 0 if rotate else count + 1,
            }
            try:
                t.call(
                    "TransactWriteItems",
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": t.name,
                                "Item": to_item(
                                    {
                                        "pk": f"cas#{self.stream}#{seq}",
                                        "sk": arrival_id,
                                        "size": size,
                                    }
                                ),
                                "ConditionExpression": "attribute_not_exists(sk)",
                            }
                        },
                        {
                            "Update": {
                                "TableName": t.name,
                                "Key": to_item(self._head),
                                "UpdateExpression": (
                                    "SET version = :nv, seq = :seq, #count = :count"
                                ),
                                "ConditionExpression": (
                                    "attribute_not_exists(version) OR version = :v"
                                ),
                                "ExpressionAttributeNames": {"#count": "count"},
                                "ExpressionAttributeValues": {
                                    k: serialize(v) for k, v in values.items()
                                },
                            }
                        },
                    ],
                )
                return
            except TransactionCanceled:
                self.retries += 1
                _backoff(attempt)
        raise RuntimeError("compare-and-set batcher never got its write in")


def cas_counter_add(table: Table, name: str) -> int:
    """Increment by read, then conditional write; returns how many attempts it took."""
    key = {"pk": f"cascounter#{name}", "sk": "counter"}
    for attempt in range(1, 1000):
        item = table.get(key)
        value = int(item["v"]) if item else None
        try:
            table.call(
                "PutItem",
                TableName=table.name,
                Item=to_item({**key, "v": (value or 0) + 1}),
                ConditionExpression="attribute_not_exists(v)" if value is None else "v = :seen",
                **(
                    {}
                    if value is None
                    else {"ExpressionAttributeValues": {":seen": serialize(value)}}
                ),
            )
            return attempt
        except ConditionFailed:
            _backoff(attempt)
    raise RuntimeError("compare-and-set counter never got its write in")
