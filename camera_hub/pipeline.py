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

from camera_hub.alerts.publisher import AlertPublisher
from camera_hub.analytics.analyzer import Analyzer
from camera_hub.config import CityConfig
from camera_hub.events import Episode, Sample

log = logging.getLogger(__name__)


class AnalysisConsumer:
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
        """A camera changed state (the offline rule counts its grace period from here)."""
        if state == "starting":  # a camera this worker just took over: its tracks are stale
            self.analyzer.forget(camera_id)
        await self._publish(self.analyzer.camera_state(camera_id, state, time.time() if t is None else t, reason))

    async def _publish(self, episodes: list[Episode]) -> None:
        if episodes:
            self.episodes += len(episodes)
            await self.publisher.publish_many(episodes)

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
