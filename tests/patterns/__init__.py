"""Tests of the batcher, the S3 to Redshift pipeline and its loaders (patterns/)."""
