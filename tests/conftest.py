"""Shared fixtures: real Redis under a per-test key prefix, and the shared test assets."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("CAMERA_HUB_ASSETS", REPO.parent / "shared" / "assets"))
REDIS_URL = os.environ.get("CAMERA_HUB_TEST_REDIS", "redis://127.0.0.1:6379/9")


@pytest.fixture
def assets() -> Path:
    """``../shared/assets``; the test is skipped where it is absent."""
    if not ASSETS.is_dir():
        pytest.skip(f"shared test assets not found at {ASSETS}")
    return ASSETS


@pytest.fixture
def redis_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:10]}:"


@pytest.fixture
async def redis_client(redis_prefix: str) -> AsyncIterator[object]:
    """An asyncio Redis client on the test database; every key under the test's prefix is
    deleted afterwards."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL, decode_responses=False)
    try:
        await client.ping()
    except Exception as exc:  # pragma: no cover - CI starts Redis; a developer may not have
        pytest.fail(f"Redis not reachable at {REDIS_URL}: {exc}")
    yield client
    async for key in client.scan_iter(match=f"{redis_prefix}*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
def sync_redis(redis_prefix: str) -> Iterator[object]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    yield client
    for key in client.scan_iter(match=f"{redis_prefix}*", count=1000):
        client.delete(key)
    client.close()
