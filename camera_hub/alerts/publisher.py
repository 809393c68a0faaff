"""AlertPublisher: rule episodes → alerts in Redis, with snapshot, clip, cooldown and a spool.

One alert per episode: ``start`` creates it, ``update`` amends count/score/boxes, ``end`` closes
it. The alert id is derived from the episode key, so publishing an episode twice stores it once.
While Redis is unreachable every operation goes, in order, to a local fsync'd spool, which a
background task replays when Redis is back; the store's idempotent writes make a replay that
repeats part of the spool harmless, so nothing is lost and nothing doubled.

An episode outlives the process that saw it start: each one's record (alert, onset, last time seen
under way, ended or not) is kept in Redis (``AlertStore.episode_key``), refreshed while samples
still find it under way. When a camera starts afresh — on another worker after a crash or a
rebalance, or on this one after its leases were fenced — and its rules see the condition again,
the new start continues the open alert (same id) or, after an end, keeps the cooldown, instead of
raising the episode a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from camera_hub import metrics
from camera_hub.alerts.media import media_path, snapshot_jpeg, write_atomic
from camera_hub.alerts.model import Alert, AlertNotFound, HistoryEntry, alert_id
from camera_hub.alerts.spool import Spool
from camera_hub.alerts.store import AlertStore, EpisodeRecord
from camera_hub.clips import ClipSource, NoClip, keyframe_image, write_clip
from camera_hub.config import CityConfig
from camera_hub.events import EncodedPacket, Episode, StreamInfo
from camera_hub.registry import district_of_grid

log = logging.getLogger(__name__)

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)
# An open episode whose camera started afresh is continued when its condition is seen again within
# this long of the last time it was seen under way: a dead worker's leases expire in ~6 s, then
# the stream reopens and the first samples come (with hundreds of cameras moving at once, tens of s).
CONTINUE_S = 60.0
RECORD_EVERY_S = 5.0  # open episodes still seen under way are written to Redis this often

Ck = tuple[str, str, str]  # camera, zone, type
Verdict = Literal["new", "continue", "suppress"]


@dataclasses.dataclass(frozen=True, slots=True)
class Previous:
    """The last episode of a camera, zone and type, as far as this publisher knows."""

    started_at: float
    t: float  # its last event, or the last time it was seen under way
    ended: bool


def verdict(onset: float, prev: Previous | None, cooldown_s: float) -> Verdict:
    """What a rule's new start is: an open episode seen again (``continue``), a start within the
    cooldown of the last end (``suppress``), or a new alert."""
    if prev is None:
        return "new"
    gap = onset - prev.t
    if not prev.ended and gap < max(cooldown_s, CONTINUE_S):
        return "continue"
    if prev.ended and gap < cooldown_s:
        return "suppress"
    return "new"


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
        self.prefix = prefix if prefix is not None else cfg.settings.redis.prefix
        self.store = AlertStore(redis, self.prefix, maxlen=s.stream_maxlen, max_age_s=s.stream_max_age_h * 3600)
        self.data_dir = Path(data_dir if data_dir is not None else s.data_dir)
        self.clip_source_for = clip_source_for
        self.clock = clock
        self.retry_s = retry_s
        self._places = camera_places(cfg)
        self._zones = {(c.id, z.id): z.polygon for c in cfg.cameras for z in c.zones}  # drawn on snapshots
        self._last_t: dict[Ck, float] = {}  # → last published event, or last sample with the episode open
        self._active: dict[Ck, str] = {}  # → key of the episode being published
        self._onset: dict[Ck, float] = {}  # → its onset
        self._suppressed: set[str] = set()
        self._rebase: dict[str, float] = {}  # a rule's episode key → onset of the alert it continues
        self._records: dict[Ck, EpisodeRecord] = {}  # not yet written to Redis
        self._recorded_t: dict[Ck, float] = {}  # last sighting written, per open episode
        self._recorder: asyncio.Task[None] | None = None
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
        """Replay what a previous run left in the spool; keep open episodes' records fresh."""
        if self._spooling:
            self._ensure_replayer()
        self._recorder = asyncio.create_task(self._record_loop(), name="alert-episode-records")

    def observed(self, seen: Mapping[str, float]) -> None:
        """Samples of these cameras (camera → sample time) went through the rules: the episodes
        open on them are still under way at that time."""
        for ck in self._active:
            if (t := seen.get(ck[0])) is not None and t > self._last_t.get(ck, 0.0):
                self._last_t[ck] = t

    def forget_camera(self, camera_id: str) -> None:
        """The camera's analysis starts afresh (this worker took it over): what this process knew
        of its episodes is stale; Redis keeps the record the next start is judged by."""
        # offline episodes are carried over by their own record (AlertStore.offline_key)
        for ck in [ck for ck in self._last_t if ck[0] == camera_id and ck[2] != "camera_offline"]:
            for table in (self._last_t, self._active, self._onset, self._recorded_t):
                table.pop(ck, None)

    async def publish(self, ep: Episode) -> str | None:
        """Publish one episode event; returns the alert id, or None when a cooldown suppressed it."""
        return (await self.publish_many([ep]))[0]

    async def publish_many(self, eps: list[Episode]) -> list[str | None]:
        """Publish several episode events in order; new alerts go to Redis in one round trip
        (a detector batch over many cameras yields many episodes at once)."""
        known = await self._stored_episodes(eps)
        prepared = [self._prepare(ep, known) for ep in eps]
        ops = [p[0] for p in prepared if p is not None]
        snaps = [(p[0]["alert"], ep.frame) for p, ep in zip(prepared, eps, strict=True)
                 if p is not None and ep.frame is not None]
        if snaps:
            await asyncio.to_thread(self._write_snapshots, snaps)
        if ops:
            await self._submit(ops)
            await self._write_records()
        for p, ep in zip(prepared, eps, strict=True):
            if p is not None and p[1]:
                self._schedule_clip(ep, p[0]["alert"].id)
        return [p[0]["alert"].id if p is not None else None for p in prepared]

    async def _stored_episodes(self, eps: list[Episode]) -> dict[Ck, EpisodeRecord]:
        """Redis's records for the starts that are not this process's open episode (another worker,
        or this one before its camera started afresh, may have left one open). Redis away: none."""
        need = sorted({(e.camera_id, e.zone_id, e.type) for e in eps if e.kind == "start" and e.type != "camera_offline"
                       and e.key not in self._rebase and e.key not in self._suppressed
                       and self._active.get((e.camera_id, e.zone_id, e.type)) != e.key})
        if not need or self._spooling:
            return {}
        try:
            found = {ck: r for ck, r in zip(need, await self.store.episodes(need), strict=True) if r is not None}
            open_ = [r for r in found.values() if not r.ended]
            # an end that reached the alert (a spool replayed later) but not its record: the alert says
            ended = {a.id: a for a in await self.store.get_many([r.alert_id for r in open_]) if a.ended_at is not None}
        except REDIS_DOWN:
            return {}
        return {ck: dataclasses.replace(r, t=ended[r.alert_id].ended_at, ended=True) if r.alert_id in ended else r
                for ck, r in found.items()}

    def _previous(self, ck: Ck, stored: EpisodeRecord | None) -> Previous | None:
        """The later of what this process and Redis know of the camera/zone/type's last episode."""
        mine = None
        if ck in self._active:
            mine = Previous(self._onset[ck], self._last_t[ck], ended=False)
        elif ck in self._last_t:
            mine = Previous(0.0, self._last_t[ck], ended=True)
        theirs = Previous(stored.started_at, stored.t, stored.ended) if stored is not None else None
        return max((p for p in (mine, theirs) if p is not None), key=lambda p: p.t, default=None)

    def _prepare(self, ep: Episode, stored: Mapping[Ck, EpisodeRecord]) -> tuple[dict[str, Any], bool] | None:
        """Cooldown and continuation bookkeeping and the store operation for one event: (op,
        needs a clip), or None when the episode is suppressed."""
        ck = (ep.camera_id, ep.zone_id, ep.type)
        if (onset := self._rebase.get(ep.key)) is not None:  # a later event of a continued episode
            if ep.kind == "end":
                del self._rebase[ep.key]
            ep = dataclasses.replace(ep, started_at=onset)
        if ep.key in self._suppressed:
            if ep.kind == "end":
                self._suppressed.discard(ep.key)
            return None
        new_episode = continued = False
        if ep.kind == "start" and self._active.get(ck) != ep.key:
            prev = self._previous(ck, stored.get(ck))
            v = verdict(ep.started_at, prev, self.settings.cooldown_s)
            if v == "suppress":
                self._suppressed.add(ep.key)
                return None
            if v == "continue":
                assert prev is not None
                log.info("%s %s on %s continues the alert open since %.3f", ep.type, ep.zone_id, ep.camera_id,
                         prev.started_at)
                self._rebase[ep.key] = prev.started_at
                ep = dataclasses.replace(ep, started_at=prev.started_at)
                continued = True
            self._active[ck], self._onset[ck] = ep.key, ep.started_at
            new_episode = not continued
        self._last_t[ck] = max(self._last_t.get(ck, ep.t), ep.t)
        if ep.kind == "end" and self._active.get(ck) == ep.key:
            del self._active[ck], self._onset[ck]
            self._recorded_t.pop(ck, None)
        alert = self._alert_from(ep)
        if ep.type != "camera_offline":  # the offline rule keeps its own record (AlertStore.offline_key)
            self._records[ck] = EpisodeRecord(*ck, alert.id, ep.started_at, self._last_t[ck], ep.kind == "end")
        if ep.kind == "start" and not continued:
            return {"op": "create", "alert": alert}, new_episode
        return {"op": "amend", "id": alert.id, "t": ep.t, "count": ep.count, "score": ep.score,
                "boxes": alert.boxes, "ended_at": ep.t if ep.kind == "end" else None, "alert": alert}, False

    # ------------------------------------------------------------------ episode records
    @property
    def _record_ttl_s(self) -> float:
        return max(self.settings.cooldown_s, CONTINUE_S) + 2 * RECORD_EVERY_S

    async def _write_records(self) -> None:
        """Best effort: records not written now (Redis away) go with the next batch or refresh."""
        if not self._records or self._spooling:
            return
        records, self._records = self._records, {}
        try:
            await self.store.put_episodes(list(records.values()), self._record_ttl_s)
        except REDIS_DOWN:
            self._records = records | self._records
            return
        for ck, r in records.items():
            if not r.ended and ck in self._active:
                self._recorded_t[ck] = max(self._recorded_t.get(ck, 0.0), r.t)

    async def refresh_records(self) -> None:
        """Write the records of open episodes seen under way since their record was last written
        (every ``RECORD_EVERY_S`` once started)."""
        for ck, key in self._active.items():
            t = self._last_t[ck]
            if ck[2] != "camera_offline" and t > self._recorded_t.get(ck, 0.0):
                onset = self._onset[ck]
                self._records[ck] = EpisodeRecord(*ck, alert_id(key, onset), onset, t, ended=False)
        await self._write_records()

    async def _record_loop(self) -> None:
        while True:
            await asyncio.sleep(RECORD_EVERY_S)
            try:
                await self.refresh_records()
            except Exception:  # a bug here must not stop the refreshes for good
                log.exception("episode records not written")

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
        if self._recorder is not None:
            self._recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recorder
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
        # another worker sharing the file may be replaying it: poll (a thread blocked in flock
        # could not be cancelled, and would take the lock after this task was gone)
        while True:
            if self._spool.lock(wait=False):
                break
            await asyncio.sleep(0.05)
        try:
            return await self._replay_spool()
        finally:
            self._spool.unlock()

    async def _replay_spool(self) -> bool:
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
