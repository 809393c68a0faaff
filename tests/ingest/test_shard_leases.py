"""Sharding logic against real Redis (readers are recorded, not RTSP: the RTSP version with
three worker processes is in test_worker_sim.py)."""

from __future__ import annotations

import asyncio
import collections
import time

from ingest_helpers import wait_until

from camera_hub.ingest.shard import Shard, lease_key, members_key, rendezvous_owner

CAMS = [f"cam{i:03d}" for i in range(60)]


def test_rendezvous_spreads_and_moves_only_the_lost_workers_cameras() -> None:
    ids = [f"c{i}" for i in range(3000)]
    three = {c: rendezvous_owner(c, ["w1", "w2", "w3"]) for c in ids}
    counts = collections.Counter(three.values())
    assert all(900 < n < 1100 for n in counts.values())
    two = {c: rendezvous_owner(c, ["w1", "w3"]) for c in ids}
    assert all(two[c] == three[c] for c in ids if three[c] != "w2")
    assert rendezvous_owner("x", []) is None


class Readers:
    """Records who reads what; fails the test on any second reader."""

    def __init__(self) -> None:
        self.by_camera: dict[str, str] = {}
        self.violations: list[str] = []

    def fns(self, worker: str):
        async def start(cid: str) -> None:
            if cid in self.by_camera:
                self.violations.append(f"{cid}: {worker} while {self.by_camera[cid]}")
            self.by_camera[cid] = worker

        async def stop(cid: str) -> None:
            await asyncio.sleep(0.05)  # a reader takes a moment to wind down
            if self.by_camera.get(cid) == worker:
                del self.by_camera[cid]

        return start, stop


async def test_three_workers_split_cameras_and_take_over_a_dead_one(redis_client, redis_prefix) -> None:
    readers = Readers()
    shards, stops, tasks = {}, {}, {}
    for w in ("w1", "w2", "w3"):
        start, stop = readers.fns(w)
        shards[w] = Shard(redis_client, redis_prefix, w, CAMS, start=start, stop=stop, heartbeat_s=0.4,
                          lease_ms=1500)
        stops[w] = asyncio.Event()
        tasks[w] = asyncio.create_task(shards[w].run(stops[w]))
    try:
        await wait_until(lambda: len(readers.by_camera) == len(CAMS) and all(
            len(s.held) > 10 for s in shards.values()), 10)
        assert set().union(*(s.held for s in shards.values())) == set(CAMS)
        assert sum(len(s.held) for s in shards.values()) == len(CAMS)
        owned_by_w2 = set(shards["w2"].held)

        # "kill" w2: its loop stops without releasing anything (its leases just expire)
        tasks["w2"].cancel()
        for cid in owned_by_w2:
            readers.by_camera.pop(cid)  # a dead process has no readers left
        took = await wait_until(lambda: owned_by_w2 <= set(readers.by_camera), 10)
        assert took < 5.0  # lease 1.5 s + membership 1 s + ticks
        assert all(readers.by_camera[c] in ("w1", "w3") for c in CAMS)

        # graceful stop of w3: leases released at once, w1 takes everything well before expiry
        stops["w3"].set()
        await tasks["w3"]
        t_leave = time.monotonic()
        await shards["w3"].leave()
        assert await redis_client.zscore(members_key(redis_prefix), "w3") is None
        await wait_until(lambda: len(shards["w1"].held) == len(CAMS), 5)
        assert time.monotonic() - t_leave < 1.5
        assert readers.violations == []
        assert await redis_client.get(lease_key(redis_prefix, CAMS[0])) == b"w1"
    finally:
        for w in ("w1", "w3"):
            stops[w].set()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


async def test_a_lost_lease_stops_the_reader(redis_client, redis_prefix) -> None:
    readers = Readers()
    start, stop = readers.fns("w1")
    shard = Shard(redis_client, redis_prefix, "w1", ["solo"], start=start, stop=stop, heartbeat_s=0.4,
                  lease_ms=1000, settle_s=0.0)
    await shard.tick()
    assert shard.held == {"solo"} and readers.by_camera == {"solo": "w1"}
    await redis_client.set(lease_key(redis_prefix, "solo"), "intruder")  # e.g. we stalled past expiry
    shard._last_renew_try = 0.0
    await shard.tick()
    assert shard.held == set() and readers.by_camera == {}
    assert await redis_client.get(lease_key(redis_prefix, "solo")) == b"intruder"  # not released by us


async def test_without_redis_the_worker_keeps_running_and_reads_nothing() -> None:
    import socket

    import redis.asyncio as aioredis
    from ingest_helpers import city

    from camera_hub.ingest.worker import Worker

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = aioredis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.2)
    cfg = city([{"id": "c1", "main_url": "rtsp://127.0.0.1:1/x"}], ingest={"heartbeat_s": 0.2, "lease_ms": 1000})
    worker = Worker(cfg, worker_id="lonely", redis=client, prefix="x:")
    await worker.start()
    try:
        await asyncio.sleep(1.0)
        assert all(not t.done() for t in worker._tasks)  # nothing crashed
        assert worker.sources == {} and worker.shard.held == set()  # no lease, no reading
    finally:
        await worker.stop()
        await client.aclose()
