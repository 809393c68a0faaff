"""A real API server per test module (see apikit), and a publisher writing to its Redis prefix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apikit import REDIS_URL, Live, start_live, stop_live


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """scrypt at OWASP's N=2^17 takes ~1.7 s a hash on a CI core, and these tests log in hundreds of
    times: hash at N=2^10 here (test_api_limits checks the real parameters, and the re-hash)."""
    from camera_hub.api import auth

    saved = dict(auth.SCRYPT)
    auth.SCRYPT["n"] = 2**10
    yield
    auth.SCRYPT.update(saved)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[Live]:
    lv, server, sync = start_live(tmp_path_factory.mktemp("api-data"))
    try:
        yield lv
    finally:
        stop_live(lv, server, sync)


@pytest.fixture
async def publisher(live: Live):
    import redis.asyncio as aioredis

    from camera_hub.alerts.publisher import AlertPublisher

    client = aioredis.from_url(REDIS_URL)
    pub = AlertPublisher(live.cfg, client, prefix=live.prefix, data_dir=live.data_dir)
    yield pub
    await pub.close()
    await client.aclose()
