"""SampleQueue: the bounded hand-off from sources to the (slower) analysis consumer.

When analysis falls behind, a camera's oldest waiting sample is dropped (its newer one is
worth more), and a full queue drops the oldest sample of the camera that waited longest: the
queue never grows without bound, and every drop is counted. Batches are taken round-robin
over cameras, so one busy camera cannot starve the others. Lives on the event loop (sources
hand samples in with ``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
from collections import deque

from camera_hub import metrics
from camera_hub.events import Sample


class SampleQueue:
    def __init__(self, maxsize: int = 256, per_camera: int = 2) -> None:
        self.maxsize = maxsize
        self.per_camera = per_camera
        self._by_camera: dict[str, deque[Sample]] = {}  # insertion order = oldest waiting first
        self._size = 0
        self._ready = asyncio.Event()
        self.dropped = 0
        self.put_count = 0

    def __len__(self) -> int:
        return self._size

    def _drop(self, camera_id: str) -> None:
        q = self._by_camera[camera_id]
        q.popleft()
        self._size -= 1
        if not q:
            del self._by_camera[camera_id]
        self.dropped += 1
        metrics.SAMPLES_DROPPED.labels(camera=camera_id).inc()

    def put(self, sample: Sample) -> None:
        cid = sample.camera_id
        mine = self._by_camera.get(cid)
        if mine is not None and len(mine) >= self.per_camera:
            self._drop(cid)
        elif self._size >= self.maxsize:
            self._drop(cid if mine else next(iter(self._by_camera)))
        self._by_camera.setdefault(cid, deque()).append(sample)
        self._size += 1
        self.put_count += 1
        self._ready.set()

    def waiting(self) -> list[Sample]:
        return [s for q in self._by_camera.values() for s in q]

    def take(self, max_n: int) -> list[Sample]:
        """Up to ``max_n`` samples, one per camera per round, oldest-waiting camera first."""
        out: list[Sample] = []
        while self._by_camera and len(out) < max_n:
            for cid in list(self._by_camera):
                q = self._by_camera[cid]
                out.append(q.popleft())
                if not q:
                    del self._by_camera[cid]
                if len(out) >= max_n:
                    break
        self._size -= len(out)
        if not self._size:
            self._ready.clear()
        return out

    async def get_batch(self, max_n: int) -> list[Sample]:
        while not self._size:
            await self._ready.wait()
        return self.take(max_n)
