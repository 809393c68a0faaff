"""A real API server per test module (see apikit), and a publisher writing to its Redis prefix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apikit import REDIS_URL, Live, start_live, stop_live


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
