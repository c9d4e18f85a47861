"""Tests that the benchmarks run and measure what they claim (benchmarks/)."""
