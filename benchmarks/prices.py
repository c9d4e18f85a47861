"""On-demand prices used to turn measured units into dollars: one place, with source and date.

Source: the DynamoDB, Lambda and S3 pricing pages (aws.amazon.com/dynamodb/pricing/on-demand/,
aws.amazon.com/lambda/pricing/, aws.amazon.com/s3/pricing/), us-east-1, as of 2026-11.
DynamoDB's on-demand prices were cut in November 2024 to these figures. Check them for your
region before relying on the dollars; the unit counts are what this project measures.
"""

from __future__ import annotations

DYNAMODB_PER_MILLION_WRU = 0.625
DYNAMODB_PER_MILLION_RRU = 0.125
LAMBDA_PER_MILLION_REQUESTS = 0.20
S3_PER_MILLION_GET = 0.40
"""S3 Standard, GET-class requests (GET, HEAD, SELECT), per million."""
S3_PER_MILLION_PUT = 5.00
"""S3 Standard, PUT-class requests (PUT, COPY, POST, LIST), per million."""
LAMBDA_PER_GB_SECOND = 0.0000166667


def s3_dollars(gets: float, puts: float) -> float:
    """Dollars for ``gets`` GET-class and ``puts`` PUT-class S3 Standard requests."""
    return gets * S3_PER_MILLION_GET / 1e6 + puts * S3_PER_MILLION_PUT / 1e6


def dynamodb_dollars(wcu: float, rcu: float) -> float:
    """Dollars for ``wcu`` write and ``rcu`` read request units, on demand."""
    return wcu * DYNAMODB_PER_MILLION_WRU / 1e6 + rcu * DYNAMODB_PER_MILLION_RRU / 1e6
