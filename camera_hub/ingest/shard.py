"""Sharding cameras over worker processes: heartbeat membership, rendezvous hashing, leases.

- Membership: each worker scores itself in one sorted set (``{prefix}ingest:workers``) with
  the Redis server's clock every ``heartbeat_s``; a worker silent for ``member_ttl_s`` is gone.
- Assignment: rendezvous (highest random weight) hashing over the live workers, so a change
  of membership moves only the cameras of the worker that came or went.
- Exclusion: before reading a camera a worker must hold its lease (``SET NX PX``, renewed by
  a compare-and-extend script). A worker that cannot renew in time stops reading (it fences
  itself) before the lease can expire; a camera given up is stopped first and its lease
  released after, so no camera ever has two readers. A graceful stop releases everything and
  leaves the member set at once, so the others pick the cameras up on their next tick.

Keys are single-key operations (lease per camera, one member set), so Redis Cluster is fine.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _weight(worker: str, camera: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{worker}\x00{camera}".encode(), digest_size=8).digest(), "big")


def rendezvous_owner(camera_id: str, workers: Iterable[str]) -> str | None:
    """The live worker with the highest weight for this camera (None without workers)."""
    return max(workers, key=lambda w: _weight(w, camera_id), default=None)


def members_key(prefix: str) -> str:
    return f"{prefix}ingest:workers"


def lease_key(prefix: str, camera_id: str) -> str:
    return f"{prefix}ingest:lease:{camera_id}"


StartFn = Callable[[str], Awaitable[None]]
StopFn = Callable[[str], Awaitable[None]]  # returns once the camera's reader has ended


class Shard:
    """Keeps this worker holding exactly the cameras it owns; call :meth:`tick` periodically
    (:meth:`run` does) and :meth:`leave` on a graceful stop."""

    def __init__(self, redis: Any, prefix: str, worker_id: str, camera_ids: Iterable[str], *,
                 start: StartFn, stop: StopFn, heartbeat_s: float = 2.0, lease_ms: int = 6000,
                 settle_s: float | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.worker_id = worker_id
        self.camera_ids = list(camera_ids)
        self._start, self._stop = start, stop
        self.heartbeat_s = heartbeat_s
        self.lease_ms = lease_ms
        self.member_ttl_s = 2.5 * heartbeat_s
        self.settle_s = heartbeat_s if settle_s is None else settle_s
        self.tick_s = min(0.5, heartbeat_s / 2, lease_ms / 4000)
        self.renew_every_s = min(heartbeat_s, lease_ms / 4000)
        self.held: set[str] = set()
        self._leaving: dict[str, asyncio.Task[None]] = {}
        self._redis_slots = asyncio.Semaphore(4)
        self.live: list[str] = []
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._last_beat = 0.0
        self._last_renew_ok = time.monotonic()
        self._last_renew_try = 0.0
        self._joined = time.monotonic()

    async def _now(self) -> float:
        sec, usec = await self.redis.time()
        return sec + usec / 1e6

    async def heartbeat(self) -> None:
        now = await self._now()
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(members_key(self.prefix), {self.worker_id: now})
        pipe.zremrangebyscore(members_key(self.prefix), "-inf", now - 4 * self.member_ttl_s)
        pipe.zrangebyscore(members_key(self.prefix), now - self.member_ttl_s, "+inf")
        *_, live = await pipe.execute()
        self.live = sorted(w.decode() if isinstance(w, bytes) else w for w in live)

    def desired(self) -> set[str]:
        if self.worker_id not in self.live:
            return set()
        return {c for c in self.camera_ids if rendezvous_owner(c, self.live) == self.worker_id}

    async def _renew_all(self) -> None:
        held = sorted(self.held)
        pipe = self.redis.pipeline(transaction=False)
        for cid in held:
            await self._renew(keys=[lease_key(self.prefix, cid)], args=[self.worker_id, self.lease_ms], client=pipe)
        results = await pipe.execute()
        self._last_renew_ok = time.monotonic()
        lost = [cid for cid, ok in zip(held, results, strict=True) if not ok]
        for cid in lost:  # expired and maybe taken: stop reading, never release someone else's lease
            log.warning("lease on camera %s lost", cid)
            self.held.discard(cid)
        await asyncio.gather(*(self._stop(cid) for cid in lost))

    async def _acquire(self, wanted: list[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for cid in wanted:
            pipe.set(lease_key(self.prefix, cid), self.worker_id, nx=True, px=self.lease_ms)
        for cid, ok in zip(wanted, await pipe.execute(), strict=True):
            if ok:
                self.held.add(cid)
                await self._start(cid)

    async def _give_up(self, camera_id: str) -> None:
        """Stop reading, then release the lease (in that order: never two readers). The lease
        stays held, and renewed, while the reader winds down."""
        try:
            await self._stop(camera_id)
            async with self._redis_slots:  # hundreds may end at once: do not open a connection each
                await self._release(keys=[lease_key(self.prefix, camera_id)], args=[self.worker_id])
            self.held.discard(camera_id)
        finally:
            self._leaving.pop(camera_id, None)

    async def tick(self) -> None:
        mono = time.monotonic()
        if mono - self._last_beat >= self.heartbeat_s or not self.live:
            await self.heartbeat()
            self._last_beat = mono
        if self.held and mono - self._last_renew_try >= self.renew_every_s:
            self._last_renew_try = mono
            await self._renew_all()
        want = self.desired()
        for cid in sorted(self.held - want - self._leaving.keys()):
            self._leaving[cid] = asyncio.create_task(self._give_up(cid))
        pending = sorted(want - self.held)
        if pending and mono - self._joined >= self.settle_s:  # let peers starting with us show up first
            await self._acquire(pending)

    async def fence(self) -> None:
        """Called when Redis is unreachable: once the leases may be near expiry, stop reading."""
        if self.held and time.monotonic() - self._last_renew_ok > self.lease_ms / 1000 * 0.6:
            log.error("cannot renew leases: stopping %d cameras", len(self.held))
            held, self.held = sorted(self.held), set()
            await asyncio.gather(*(self._stop(cid) for cid in held))

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:  # a Redis that hangs must not hold the tick past the leases' expiry
                await asyncio.wait_for(self.tick(), self.lease_ms / 2000)
            except Exception as exc:  # noqa: BLE001 - Redis away: keep trying, fence in time
                log.warning("shard tick failed: %s", type(exc).__name__)
                await self.fence()
            try:
                await asyncio.wait_for(stopping.wait(), self.tick_s)
            except TimeoutError:
                pass

    async def leave(self) -> None:
        """Graceful stop: stop every reader, release every lease, leave the member set."""
        await asyncio.gather(*self._leaving.values(), return_exceptions=True)
        held = sorted(self.held)
        await asyncio.gather(*(self._stop(cid) for cid in held))
        pipe = self.redis.pipeline(transaction=False)
        for cid in held:
            await self._release(keys=[lease_key(self.prefix, cid)], args=[self.worker_id], client=pipe)
        pipe.zrem(members_key(self.prefix), self.worker_id)
        await pipe.execute()
        self.held.clear()
