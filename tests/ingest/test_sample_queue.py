"""SampleQueue: bounded, drops the oldest sample per camera, counts drops, fair batches."""

from __future__ import annotations

import asyncio

import numpy as np

from camera_hub import metrics
from camera_hub.events import Sample
from camera_hub.ingest.queue import SampleQueue

FRAME = np.zeros((2, 2, 3), np.uint8)


def s(cam: str, t: float) -> Sample:
    return Sample(cam, t, None, FRAME, True)


async def test_a_lagging_consumer_loses_the_oldest_sample_of_that_camera() -> None:
    q = SampleQueue(maxsize=100, per_camera=2)
    before = metrics.SAMPLES_DROPPED.labels(camera="qa")._value.get()
    for t in range(5):
        q.put(s("qa", t))
    q.put(s("qb", 0))
    assert len(q) == 3 and q.dropped == 3
    assert metrics.SAMPLES_DROPPED.labels(camera="qa")._value.get() - before == 3
    batch = await q.get_batch(10)
    assert sorted((x.camera_id, x.t) for x in batch) == [("qa", 3), ("qa", 4), ("qb", 0)]


async def test_a_full_queue_never_grows() -> None:
    q = SampleQueue(maxsize=10, per_camera=3)
    for i in range(200):
        q.put(s(f"c{i % 50}", i))
        assert len(q) <= 10
    assert q.dropped == 190
    batch = q.take(100)
    assert len(batch) == 10 and min(x.t for x in batch) >= 190  # only the newest survived


async def test_batches_are_round_robin_over_cameras() -> None:
    q = SampleQueue(maxsize=100, per_camera=3)
    for t in range(3):
        q.put(s("busy", t))
    q.put(s("quiet", 0))
    first = q.take(2)
    assert {x.camera_id for x in first} == {"busy", "quiet"}


async def test_get_batch_waits_for_a_sample() -> None:
    q = SampleQueue()
    task = asyncio.create_task(q.get_batch(4))
    await asyncio.sleep(0.01)
    assert not task.done()
    q.put(s("x", 1.0))
    assert [x.t for x in await asyncio.wait_for(task, 1)] == [1.0]
