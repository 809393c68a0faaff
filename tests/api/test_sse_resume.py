"""The SSE feed over a dropped connection: reconnecting with Last-Event-ID gets exactly what
was missed. 1,000 alerts are published while the client disconnects at random points."""

from __future__ import annotations

import asyncio
import json
import os
import random

import httpx
import redis.asyncio as aioredis
from alertkit import episode

from camera_hub.alerts.store import AlertStore

N = 1000


async def test_resume_after_random_disconnects_loses_and_repeats_nothing(live, publisher) -> None:
    rng = random.Random(7)
    t0 = 1_800_000_000.0
    received: list[tuple[str, str]] = []  # (stream id, alert id)
    last: str | None = None
    connections = 0

    async def publish_all() -> list[str]:
        ids = []
        for i in range(N):
            ids.append(await publisher.publish(episode("start", camera=f"cam{i % 4}", zone=f"sse{i}",
                                                       started_at=t0 + i)))
            if i % 25 == 0:
                await asyncio.sleep(0.005)
        return ids

    producer: asyncio.Task[list[str]] | None = None
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as http:
        while len(received) < N:
            connections += 1
            headers = live.headers("viewer") | ({"Last-Event-ID": last} if last else {})
            take = rng.randint(1, 120)
            got = 0
            sid = None
            async with http.stream("GET", "/api/v1/feed", headers=headers) as resp:
                assert resp.status_code == 200
                lines = resp.aiter_lines()
                async for line in lines:
                    if line.startswith("retry:"):
                        if producer is None:  # subscribed: start the burst now
                            producer = asyncio.create_task(publish_all())
                        continue
                    if line.startswith("id: "):
                        sid = line[4:]
                    elif line.startswith("data: "):
                        doc = json.loads(line[6:])
                        if doc["event"] == "created" and doc["zone_id"].startswith("sse"):
                            received.append((sid, doc["id"]))
                        last = sid
                        got += 1
                        if got == take or len(received) == N:
                            break  # drop the connection mid-stream
            if connections > 500:
                raise AssertionError("too many reconnects")
    assert producer is not None
    ids = await producer
    assert connections > 10
    stream_ids = [s for s, _ in received]
    assert len(set(stream_ids)) == N, "an event was repeated"
    assert [a for _, a in received] == ids, "lost or reordered"
    r = aioredis.from_url(os.environ.get("CAMERA_HUB_TEST_REDIS", "redis://127.0.0.1:6379/9"))
    feed = await AlertStore(r, live.prefix).read_feed("0", count=100_000)
    await r.aclose()
    assert stream_ids == [e.stream_id for e in feed if e.event == "created" and e.alert_id in set(ids)]


async def test_resuming_from_a_trimmed_position_says_reset(live, publisher) -> None:
    aid = await publisher.publish(episode("start", camera="cam0", zone="reset", started_at=1_800_100_000.0))
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        headers = live.headers("viewer") | {"Last-Event-ID": "1-0"}  # older than anything kept
        async with http.stream("GET", "/api/v1/feed", headers=headers) as resp:
            lines = []
            async for line in resp.aiter_lines():
                lines.append(line)
                if line.startswith("data: ") and aid in line:
                    break
    assert "event: reset" in lines
    assert lines.index("event: reset") < next(i for i, x in enumerate(lines) if aid in x)
