"""The analysis half of a worker: samples → Analyzer (detector, tracker, rules) → AlertPublisher.

The ingest worker hands samples to :class:`AnalysisConsumer` (its ``SampleConsumer``) and camera
state changes to :meth:`AnalysisConsumer.camera_state`; nothing here knows about RTSP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from camera_hub.alerts.publisher import REDIS_DOWN, AlertPublisher
from camera_hub.analytics.analyzer import Analyzer
from camera_hub.config import CityConfig
from camera_hub.events import Episode, Sample
from camera_hub.ingest.status import COVERING

log = logging.getLogger(__name__)


class AnalysisConsumer:
    pipeline = 2  # batches the worker may hand over at once: one in the detector, one in the rules

    def __init__(self, analyzer: Analyzer, publisher: AlertPublisher, *, tick_s: float = 1.0) -> None:
        self.analyzer = analyzer
        self.publisher = publisher
        self.tick_s = tick_s
        self.episodes = 0
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.publisher.start()
        self._ticker = asyncio.create_task(self._tick_loop())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        await self.publisher.close()

    async def handle(self, samples: list[Sample]) -> None:
        await self._publish(await self.analyzer.handle(samples))

    def detects(self, camera_id: str) -> bool:
        return self.analyzer.detects(camera_id)

    def hot(self, camera_id: str) -> bool:
        return self.analyzer.hot(camera_id)

    def state_bytes(self) -> int:
        return self.analyzer.state_bytes()

    async def camera_state(self, camera_id: str, state: str, reason: str = "", t: float | None = None) -> None:
        """A camera changed state (the offline rule counts its grace period from here). An offline
        episode left open in the store by another worker, or by this one before a restart, is
        carried on while the camera is down and ended once it delivers again."""
        now = time.time() if t is None else t
        if state == "starting":  # a camera this worker just took over: its tracks are stale
            self.analyzer.forget(camera_id)
        stored = await self._offline_open(camera_id) if state in ("down", *COVERING) else None
        if state == "down" and stored is not None:
            self.analyzer.adopt_offline(camera_id, stored, reason)
        eps = self.analyzer.camera_state(camera_id, state, now, reason)
        if state in COVERING and stored is not None and not any(e.type == "camera_offline" for e in eps):
            eps.append(Episode("end", "camera_offline", camera_id, camera_id, stored, now))
        await self._publish(eps)

    async def _offline_open(self, camera_id: str) -> float | None:
        try:
            return await self.publisher.store.offline_open(camera_id)
        except REDIS_DOWN:
            return None  # Redis away: this worker's own offline state is all there is

    async def _publish(self, episodes: list[Episode]) -> None:
        if not episodes:
            return
        self.episodes += len(episodes)
        await self.publisher.publish_many(episodes)
        for e in episodes:
            if e.type == "camera_offline" and e.kind in ("start", "end"):
                try:
                    await self.publisher.store.set_offline(e.camera_id, e.started_at if e.kind == "start" else None)
                except REDIS_DOWN:
                    log.warning("offline state of %s not recorded: Redis unreachable", e.camera_id)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self._publish(self.analyzer.tick(time.time()))
            except Exception:  # a failed tick must not stop offline alerts for good
                log.exception("offline tick failed")


def build_consumer(cfg: CityConfig, redis: Any, *, prefix: str | None, data_dir: Path | None,
                   clip_source_for: Callable[[str], Any]) -> AnalysisConsumer:
    """Load the configured detector and wire analytics to the alert publisher."""
    from detectors.detector import load_detector

    detector = load_detector(cfg.settings.detector.model, cfg.settings.detector)
    publisher = AlertPublisher(cfg, redis, prefix=prefix, data_dir=data_dir, clip_source_for=clip_source_for)
    return AnalysisConsumer(Analyzer(cfg, detector), publisher)
