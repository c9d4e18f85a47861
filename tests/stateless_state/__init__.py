"""Tests of the primitives and their kernel (stateless_state/)."""
