"""AlertPublisher: rule episodes → alerts in Redis, with snapshot, clip, cooldown and a spool.

One alert per episode: ``start`` creates it, ``update`` amends count/score/boxes, ``end`` closes
it. The alert id is derived from the episode key, so publishing an episode twice stores it once.
While Redis is unreachable every operation goes, in order, to a local fsync'd spool, which a
background task replays when Redis is back; the store's idempotent writes make a replay that
repeats part of the spool harmless, so nothing is lost and nothing doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from camera_hub import metrics
from camera_hub.alerts.media import media_path, snapshot_jpeg, write_atomic
from camera_hub.alerts.model import Alert, AlertNotFound, HistoryEntry, alert_id
from camera_hub.alerts.spool import Spool
from camera_hub.alerts.store import AlertStore
from camera_hub.clips import ClipSource, NoClip, keyframe_image, write_clip
from camera_hub.config import CityConfig
from camera_hub.events import EncodedPacket, Episode, StreamInfo
from camera_hub.registry import district_of_grid

log = logging.getLogger(__name__)

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)


def camera_places(cfg: CityConfig) -> dict[str, tuple[str, str]]:
    """camera id → (its first grid, that grid's district id)."""
    district_of = district_of_grid(cfg)
    return {c.id: (c.grids[0], district_of.get(c.grids[0], "")) for c in cfg.cameras}


def media_url(alert_id: str, kind: str) -> str:
    return f"/api/v1/alerts/{alert_id}/{kind}"


def _alert(value: Alert | dict[str, Any]) -> Alert:
    """Ops carry the Alert itself in memory and its JSON form in the spool."""
    return value if isinstance(value, Alert) else Alert.model_validate(value)


def _jsonable(op: dict[str, Any]) -> dict[str, Any]:
    return {k: v.model_dump(mode="json") if isinstance(v, Alert) else v for k, v in op.items()}


class AlertPublisher:
    def __init__(
        self,
        cfg: CityConfig,
        redis: Redis,
        *,
        prefix: str | None = None,
        data_dir: Path | None = None,
        clip_source_for: Callable[[str], ClipSource | None] | None = None,
        clock: Callable[[], float] = time.time,
        retry_s: float = 1.0,
    ) -> None:
        s = cfg.settings.alerts
        self.settings = s
        self.store = AlertStore(redis, prefix if prefix is not None else cfg.settings.redis.prefix,
                                maxlen=s.stream_maxlen, max_age_s=s.stream_max_age_h * 3600)
        self.data_dir = Path(data_dir if data_dir is not None else s.data_dir)
        self.clip_source_for = clip_source_for
        self.clock = clock
        self.retry_s = retry_s
        self._places = camera_places(cfg)
        self._zones = {(c.id, z.id): z.polygon for c in cfg.cameras for z in c.zones}  # drawn on snapshots
        self._last_t: dict[tuple[str, str, str], float] = {}  # camera, zone, type → last published event
        self._active: dict[tuple[str, str, str], str] = {}  # → key of the episode being published
        self._suppressed: set[str] = set()
        self._spool = Spool(self.data_dir / "spool" / "alerts.jsonl")
        self._spooling = len(self._spool) > 0
        self.spooled_total = 0  # operations that went through the spool since start
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._replayer: asyncio.Task[None] | None = None
        metrics.SPOOLED.set(len(self._spool))

    # ------------------------------------------------------------------ public
    @property
    def spooled(self) -> int:
        return len(self._spool)

    async def start(self) -> None:
        """Replay what a previous run left in the spool."""
        if self._spooling:
            self._ensure_replayer()

    async def publish(self, ep: Episode) -> str | None:
        """Publish one episode event; returns the alert id, or None when a cooldown suppressed it."""
        return (await self.publish_many([ep]))[0]

    async def publish_many(self, eps: list[Episode]) -> list[str | None]:
        """Publish several episode events in order; new alerts go to Redis in one round trip
        (a detector batch over many cameras yields many episodes at once)."""
        prepared = [self._prepare(ep) for ep in eps]
        ops = [p[0] for p in prepared if p is not None]
        snaps = [(p[0]["alert"], ep.frame) for p, ep in zip(prepared, eps, strict=True)
                 if p is not None and ep.frame is not None]
        if snaps:
            await asyncio.to_thread(self._write_snapshots, snaps)
        if ops:
            await self._submit(ops)
        for p, ep in zip(prepared, eps, strict=True):
            if p is not None and p[1]:
                self._schedule_clip(ep, p[0]["alert"].id)
        return [p[0]["alert"].id if p is not None else None for p in prepared]

    def _prepare(self, ep: Episode) -> tuple[dict[str, Any], bool] | None:
        """Cooldown bookkeeping and the store operation for one event: (op, needs a clip), or
        None when the episode is suppressed."""
        ck = (ep.camera_id, ep.zone_id, ep.type)
        if ep.key in self._suppressed:
            if ep.kind == "end":
                self._suppressed.discard(ep.key)
            return None
        new_episode = False
        if ep.kind == "start" and self._active.get(ck) != ep.key:
            last = self._last_t.get(ck)
            if last is not None and ep.started_at - last < self.settings.cooldown_s:
                self._suppressed.add(ep.key)
                return None
            self._active[ck] = ep.key
            new_episode = True
        self._last_t[ck] = max(self._last_t.get(ck, ep.t), ep.t)
        if ep.kind == "end" and self._active.get(ck) == ep.key:
            del self._active[ck]
        alert = self._alert_from(ep)
        if ep.kind == "start":
            return {"op": "create", "alert": alert}, new_episode
        return {"op": "amend", "id": alert.id, "t": ep.t, "count": ep.count, "score": ep.score,
                "boxes": alert.boxes, "ended_at": ep.t if ep.kind == "end" else None, "alert": alert}, False

    def _write_snapshots(self, snaps: list[tuple[Alert, Any]]) -> None:
        for alert, frame in snaps:
            path = media_path(self.data_dir, alert.id, "snapshot")
            if not path.exists():
                zone = self._zones.get((alert.camera_id, alert.zone_id))
                write_atomic(path, snapshot_jpeg(frame, alert.boxes, zone=zone))

    async def flush(self) -> bool:
        """Try to replay the spool now; True when it is empty afterwards."""
        async with self._lock:
            return await self._replay_locked()

    async def wait_clips(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, *, wait_clips: bool = True) -> None:
        if wait_clips:
            await self.wait_clips()
        for t in list(self._tasks):
            t.cancel()
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer

    # ------------------------------------------------------------------ building the alert
    def _alert_from(self, ep: Episode) -> Alert:
        aid = alert_id(ep.key, ep.started_at)
        grid, district = self._places.get(ep.camera_id, (None, None))
        sla = self.settings.sla_hours
        due = ep.started_at + sla.get(ep.type, sla.get("default", 30.0)) * 3600
        return Alert(
            id=aid, type=ep.type, camera_id=ep.camera_id, grid_id=grid, district=district or None,
            zone_id=ep.zone_id, started_at=ep.started_at, updated_at=ep.t,
            ended_at=ep.t if ep.kind == "end" else None, score=ep.score, count=ep.count,
            boxes=[tuple(b) for b in ep.boxes], detail=ep.detail,
            snapshot_url=media_url(aid, "snapshot") if ep.frame is not None else None,
            due_at=due, history=[HistoryEntry(at=ep.t, actor="system", action="created")],
        )

    # ------------------------------------------------------------------ Redis or spool
    async def _apply(self, op: dict[str, Any]) -> None:
        if op["op"] == "amend":
            try:
                await self.store.apply(op)
            except AlertNotFound:  # its start was never stored (publisher restarted mid-episode)
                await self._create(_alert(op["alert"]))
            return
        if op["op"] == "create":
            await self._create(_alert(op["alert"]))
            return
        await self.store.apply(op)

    async def _create(self, alert: Alert) -> None:
        self._count_created([alert], [await self.store.create(alert)])

    def _count_created(self, alerts: list[Alert], results: list[str | None]) -> None:
        now = self.clock()
        for alert, sid in zip(alerts, results, strict=True):
            if sid is not None:
                metrics.ALERTS.labels(alert.type).inc()
                metrics.ALERT_LATENCY.labels(alert.type).observe(max(0.0, now - alert.started_at))

    async def _apply_all(self, ops: list[dict[str, Any]]) -> None:
        """In order; each run of consecutive creates goes in one pipeline."""
        i = 0
        while i < len(ops):
            j = i
            while j < len(ops) and ops[j]["op"] == "create":
                j += 1
            if j > i:
                alerts = [_alert(op["alert"]) for op in ops[i:j]]
                self._count_created(alerts, await self.store.create_many(alerts))
                i = j
            else:
                await self._apply(ops[i])
                i += 1

    async def _submit(self, ops: list[dict[str, Any]]) -> None:
        """To Redis, or (while it is away, and until the spool is replayed) to the spool. A batch
        that failed half way is spooled whole: replaying what did arrive is a no-op."""
        if not self._spooling:
            try:
                await self._apply_all(ops)
                return
            except REDIS_DOWN as exc:
                log.warning("Redis unreachable (%s); spooling alerts locally", type(exc).__name__)
                self._spooling = True
        async with self._lock:
            if not self._spooling:  # a replay finished while we waited
                try:
                    await self._apply_all(ops)
                    return
                except REDIS_DOWN:
                    self._spooling = True
            await asyncio.to_thread(self._spool.extend, [_jsonable(op) for op in ops])
            self.spooled_total += len(ops)
            metrics.SPOOLED.set(len(self._spool))
        self._ensure_replayer()

    def _ensure_replayer(self) -> None:
        if self._replayer is None or self._replayer.done():
            self._replayer = asyncio.create_task(self._replay_loop(), name="alert-spool-replay")

    async def _replay_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retry_s)
            async with self._lock:
                if await self._replay_locked():
                    return

    async def _replay_locked(self) -> bool:
        ops = await asyncio.to_thread(self._spool.read)
        done = 0
        try:
            await self.store.redis.ping()
            for op in ops:
                await self._apply(op)
                done += 1
        except REDIS_DOWN:
            if done:
                await asyncio.to_thread(self._spool.replace, ops[done:])
                metrics.SPOOLED.set(len(self._spool))
            return False
        await asyncio.to_thread(self._spool.replace, [])
        metrics.SPOOLED.set(0)
        self._spooling = False
        if ops:
            log.info("replayed %d spooled alert operations", len(ops))
        return True

    # ------------------------------------------------------------------ clips
    def _schedule_clip(self, ep: Episode, aid: str) -> None:
        if self.clip_source_for is None or ep.type == "camera_offline":  # an offline camera has no video
            return
        source = self.clip_source_for(ep.camera_id)
        if source is None:
            self._no_clip(aid, ep.camera_id, "no_video")
            return
        task = asyncio.create_task(self._clip_job(source, ep, aid), name=f"clip-{aid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _no_clip(self, aid: str, camera_id: str, reason: str) -> None:
        log.warning("alert %s (camera %s) has no clip: %s", aid, camera_id, reason)
        metrics.CLIPS.labels(outcome=reason).inc()

    async def _clip_job(self, source: ClipSource, ep: Episode, aid: str) -> None:
        """From ``pre_roll_s`` before the onset to ``post_roll_s`` after the alert, cut once the
        post-roll has arrived; then the picture at the onset, with the zone drawn."""
        s = self.settings
        t0, t1 = ep.started_at - s.pre_roll_s, ep.t + s.post_roll_s
        await asyncio.sleep(max(0.0, t1 + 0.5 - self.clock()))
        path = media_path(self.data_dir, aid, "clip")
        try:
            info, packets = await asyncio.to_thread(write_clip, source, t0, t1, path)
            start, end = packets[0].received_at, packets[-1].received_at
            onset = await asyncio.to_thread(self._write_onset, info, packets, ep, aid)
        except NoClip as exc:
            self._no_clip(aid, ep.camera_id, exc.reason)
            return
        except Exception:  # a broken clip must not take the publisher down
            log.exception("clip for alert %s failed", aid)
            metrics.CLIPS.labels(outcome="error").inc()
            return
        covers = start <= ep.started_at
        metrics.CLIPS.labels(outcome="written" if covers else "after_onset").inc()
        if not covers:
            log.info("clip of alert %s starts %.1f s after the onset (kept from then on)", aid, start - ep.started_at)
        await self._submit([{"op": "clip", "id": aid, "clip_url": media_url(aid, "clip"), "clip_start": start,
                             "clip_end": end, "onset_url": media_url(aid, "onset") if onset else None}])

    def _write_onset(self, info: StreamInfo, packets: list[EncodedPacket], ep: Episode, aid: str) -> bool:
        image = keyframe_image(info, packets, ep.started_at)
        if image is None:
            return False
        write_atomic(media_path(self.data_dir, aid, "onset"),
                     snapshot_jpeg(image, (), zone=self._zones.get((ep.camera_id, ep.zone_id))))
        return True
