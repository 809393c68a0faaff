"""The fail-fast Redis clients (``alerts.store.connect``: the live feed's reader; the API's pool)
across a Redis restart (issue #12). A pooled connection that the restart closed failed on its next
use: the API answered 503 once per pooled connection long after Redis was back, and a live-feed
client resuming with Last-Event-ID had its stream broken mid-response. Now that first command is
retried once on a fresh connection; while Redis is away a call still fails at once."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from camera_hub.alerts.store import connect
from camera_hub.api.app import connect_pooled


@pytest.mark.parametrize("make", [connect, connect_pooled], ids=["connect", "connect_pooled"])
async def test_the_first_command_after_a_redis_restart_succeeds(redis_proc, make) -> None:
    client = make(redis_proc.url)
    try:
        await client.set("k", "before")
        assert await client.get("k") == b"before"  # the pool holds a connection to this process
        redis_proc.kill()
        with pytest.raises(RedisConnectionError):  # away: fails at once, no waiting
            await client.get("k")
        redis_proc.start()
        assert await client.get("k") == b"before"  # the AOF reloaded; the closed connection was replaced
        redis_proc.kill()
        redis_proc.start()  # restarted without a command in between: the pooled connection is stale
        assert await client.get("k") == b"before"
    finally:
        await client.aclose()
