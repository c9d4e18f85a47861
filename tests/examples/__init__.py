"""Tests of the example application (examples/s3_redshift_batcher/)."""
