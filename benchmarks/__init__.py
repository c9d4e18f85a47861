"""Cost and throughput measurements against DynamoDB Local."""
