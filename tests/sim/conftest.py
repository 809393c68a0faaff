"""Simulator tests: the shared simulator fixtures (until tests/conftest.py registers them)."""

from tests.sim_fixtures import sim_cache_dir, sim_server_factory  # noqa: F401
