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
from camera_hub.analytics.references import SAVE_EVERY_S, Reference, load_references, save_references
from camera_hub.config import CityConfig
from camera_hub.events import Episode, Sample
from camera_hub.ingest.status import COVERING

log = logging.getLogger(__name__)


class AnalysisConsumer:
    pipeline = 2  # batches the worker may hand over at once: one in the detector, one in the rules
    # batches of episodes waiting to be published; past that, analysis waits for Redis (backpressure)
    outbox_batches = 32

    def __init__(self, analyzer: Analyzer, publisher: AlertPublisher, *, tick_s: float = 1.0) -> None:
        self.analyzer = analyzer
        self.publisher = publisher
        self.tick_s = tick_s
        self.episodes = 0
        self._ticker: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[tuple[list[Episode], dict[str, float]]] = asyncio.Queue(self.outbox_batches)
        self._sender: asyncio.Task[None] | None = None
        self._refs_saved: dict[str, float] = {}  # camera → when its tamper references were last saved
        self._saving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.publisher.start()
        self._ticker = asyncio.create_task(self._tick_loop())
        self._sender = asyncio.create_task(self._send_loop())

    async def stop(self, drain_s: float = 10.0) -> None:
        """Stop the offline ticks, publish what the last batches raised (up to ``drain_s``), close."""
        if self._ticker is not None:
            self._ticker.cancel()
        if self._sender is not None:
            try:
                await asyncio.wait_for(self._outbox.join(), drain_s)
            except TimeoutError:
                log.warning("stopping with %d analysed batches unpublished (Redis too slow)", self._outbox.qsize())
            self._sender.cancel()
        if self._saving is not None:
            self._saving.cancel()
        await self.publisher.close()

    async def handle(self, samples: list[Sample]) -> None:
        """The rules now; their episodes go to Redis in order through one sender task, so a batch
        frees its pipeline slot without waiting for Redis round trips and snapshot writes (which
        held the detector idle between batches at 1,000 cameras)."""
        episodes = await self.analyzer.handle(samples)
        await self._outbox.put((episodes, {s.camera_id: s.t for s in samples}))
        self._save_references({s.camera_id for s in samples})

    def _save_references(self, cameras: set[str]) -> None:
        """In the background, one batch at a time (Redis away must not hold up the analysis):
        tamper references learned and not saved yet, or saved more than SAVE_EVERY_S ago."""
        if self._saving is not None and not self._saving.done():
            return
        now = time.time()
        due = {c: refs for c in cameras if now - self._refs_saved.get(c, -SAVE_EVERY_S) >= SAVE_EVERY_S
               and (refs := self.analyzer.tamper_references(c))}
        if due:
            self._saving = asyncio.create_task(self._save(due, now))

    async def _save(self, due: dict[str, dict[str, Reference]], now: float) -> None:
        try:
            for camera_id, refs in due.items():
                await save_references(self.publisher.store.redis, self.publisher.prefix, camera_id, refs)
                self._refs_saved[camera_id] = now
        except REDIS_DOWN:
            pass  # the next batch tries again

    async def _adopt_references(self, camera_id: str) -> None:
        """A camera taken over: its tamper references as the worker that learned them saved them."""
        try:
            refs = await load_references(self.publisher.store.redis, self.publisher.prefix, camera_id)
        except REDIS_DOWN:
            return  # learned afresh from what the camera shows
        if refs:
            self.analyzer.adopt_tamper_references(camera_id, refs)
            self._refs_saved[camera_id] = time.time()

    async def published(self) -> None:
        """Wait until every batch handled so far is published."""
        await self._outbox.join()

    async def _send_loop(self) -> None:
        while True:
            episodes, seen = await self._outbox.get()
            try:
                await self._publish(episodes)
                self.publisher.observed(seen)  # their open episodes are still under way
            except Exception:  # one failed batch must not stop every later alert
                log.exception("publishing a batch's episodes failed")
            finally:
                self._outbox.task_done()

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
        if state == "starting" and not self.analyzer.resumes(camera_id, now):
            # a camera this worker (re)took after a while: its tracks are stale, and its open
            # episodes are judged by their Redis record (another worker may have moved them on)
            self.analyzer.forget(camera_id)
            self.publisher.forget_camera(camera_id)
            await self._adopt_references(camera_id)  # tamper: judged against the view the camera should show
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
