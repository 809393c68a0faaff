"""The analysis consumer's outbox (camera_hub.pipeline): analysed batches wait there for the one
sender task that publishes them in order. It holds ``outbox_batches``; past that, ``handle`` waits
(backpressure on the analysis) instead of growing, and nothing is lost or reordered. Pure asyncio
logic: the rules and the publisher are stand-ins here (their own tests use Redis)."""

from __future__ import annotations

import asyncio

from camera_hub.events import Episode, Sample
from camera_hub.pipeline import AnalysisConsumer


class _Rules:
    def __init__(self) -> None:
        self.n = 0

    async def handle(self, samples: list[Sample]) -> list[Episode]:
        self.n += 1
        return [Episode("start", "tamper", s.camera_id, "view", float(self.n), float(self.n)) for s in samples]

    def tamper_references(self, camera_id: str) -> dict:
        return {}


class _Publisher:
    def observed(self, seen: dict[str, float]) -> None:
        pass


class _Stalled(AnalysisConsumer):
    """Redis stalled: publishing waits for ``go``; what got through, in order."""

    def __init__(self) -> None:
        super().__init__(_Rules(), _Publisher())  # type: ignore[arg-type]
        self.go = asyncio.Event()
        self.out: list[float] = []

    async def _publish(self, episodes: list[Episode]) -> None:
        await self.go.wait()
        self.out += [e.t for e in episodes]


async def test_a_stalled_publisher_holds_the_analysis_at_the_outbox_bound_and_loses_nothing() -> None:
    import numpy as np

    consumer = _Stalled()
    consumer._sender = asyncio.create_task(consumer._send_loop())
    sample = Sample(camera_id="cam0", t=0.0, pts=0, frame=np.zeros((2, 2, 3), np.uint8), keyframe=True)
    bound = AnalysisConsumer.outbox_batches
    handled = 0

    async def analyse(n: int) -> None:
        nonlocal handled
        for _ in range(n):
            await consumer.handle([sample])
            handled += 1

    task = asyncio.create_task(analyse(bound + 10))
    await asyncio.sleep(0.2)
    # the sender holds one batch (stalled in _publish), the outbox the bound; the next handle waits
    assert handled == bound + 1 and consumer._outbox.qsize() == bound and not task.done()
    consumer.go.set()
    await asyncio.wait_for(task, 5)
    await asyncio.wait_for(consumer.published(), 5)
    assert consumer.out == [float(i) for i in range(1, bound + 11)]  # every batch, in order
    consumer._sender.cancel()
