"""Tools that keep the repository consistent with itself (run from the root)."""
