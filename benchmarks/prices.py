"""On-demand prices used to turn measured units into dollars: one place, with source and date.

Source: the DynamoDB and Lambda pricing pages (aws.amazon.com/dynamodb/pricing/on-demand/,
aws.amazon.com/lambda/pricing/), us-east-1, as of 2026-11. DynamoDB's on-demand prices were cut
in November 2024 to these figures. Check them for your region before relying on the dollars; the
unit counts are what this project measures.
"""

from __future__ import annotations

DYNAMODB_PER_MILLION_WRU = 0.625
DYNAMODB_PER_MILLION_RRU = 0.125
LAMBDA_PER_MILLION_REQUESTS = 0.20
LAMBDA_PER_GB_SECOND = 0.0000166667


def dynamodb_dollars(wcu: float, rcu: float) -> float:
    """Dollars for ``wcu`` write and ``rcu`` read request units, on demand."""
    return wcu * DYNAMODB_PER_MILLION_WRU / 1e6 + rcu * DYNAMODB_PER_MILLION_RRU / 1e6
