"""The shared fixtures (tests/support/fixtures.py) for every test package; the
primitives' fixtures come from the pytest plugin (stateless_state.testing.pytest_plugin)."""

pytest_plugins = ["tests.support.fixtures"]
