from tests.sim_fixtures import sim_cache_dir, sim_server_factory  # noqa: F401
