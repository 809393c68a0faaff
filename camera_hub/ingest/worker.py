"""Worker: one asyncio process holding a shard of cameras.

Each camera's :class:`Source` reads in its own thread (blocking reads never touch the event
loop); samples cross into the loop through a bounded :class:`SampleQueue` and go to a pluggable
:class:`SampleConsumer` in batches. The loop also writes each camera's status to Redis and
Prometheus and, with Redis, runs the :class:`Shard` that decides which cameras this process
may read. The analysis consumer (detector, rules, alerts) is wired in by its owner, with an
:class:`~camera_hub.analytics.planner.AnalysisPlanner` that decides which cameras' keyframes are
decoded at all (the analysis budget); the default consumer only counts, one sample per interval.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from camera_hub import metrics
from camera_hub.analytics.motion import MotionGate
from camera_hub.analytics.planner import AnalysisPlanner
from camera_hub.config import Camera, CityConfig
from camera_hub.events import Sample
from camera_hub.evidence import EvidenceRecorder
from camera_hub.ingest.backoff import Backoff, OpenGate
from camera_hub.ingest.queue import SampleQueue
from camera_hub.ingest.ring import PacketRing
from camera_hub.ingest.sampler import Sampler
from camera_hub.ingest.shard import Shard
from camera_hub.ingest.source import Source, SourceOptions
from camera_hub.ingest.status import COVERING, CameraStatus, write_states
from camera_hub.registry import district_of_grid

log = logging.getLogger(__name__)


class SampleConsumer(Protocol):
    """Takes batches of samples. One that sets ``pipeline = n`` is handed up to n batches at once
    and must finish them in order (the worker's planner measures it that way)."""

    async def handle(self, samples: list[Sample]) -> None: ...


class PlannedConsumer(SampleConsumer, Protocol):
    """A consumer the planner can steer: which cameras need the detector, which are hot."""

    def detects(self, camera_id: str) -> bool: ...

    def hot(self, camera_id: str) -> bool: ...


class CountingConsumer:
    """The default consumer: counts samples per camera and keeps their recent lag."""

    def __init__(self, keep: int = 100_000) -> None:
        self.total = 0
        self.per_camera: collections.Counter[str] = collections.Counter()
        self.lags: collections.deque[tuple[float, float]] = collections.deque(maxlen=keep)  # (t, lag)

    async def handle(self, samples: list[Sample]) -> None:
        now = time.time()
        for s in samples:
            self.total += 1
            self.per_camera[s.camera_id] += 1
            self.lags.append((s.t, now - s.t))


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _to_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: object) -> None:
    """Hand a call from a source thread to the event loop (dropped once the loop is closed)."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        pass


class _Reported:
    """What was last published for one camera (to compute rates and counter deltas)."""

    __slots__ = ("t", "packets", "bytes", "decoded", "fps", "bitrate", "labels", "rtp", "transport")

    def __init__(self) -> None:
        self.t = time.monotonic()
        self.packets = self.bytes = self.decoded = 0
        self.fps = self.bitrate = 0.0
        self.labels: tuple[str, str] | None = None
        self.rtp: dict[str, int] = {}  # Source.rtp_stats() as last counted
        self.transport = ""


class Worker:
    def __init__(self, cfg: CityConfig, *, worker_id: str, redis: Any | None = None, prefix: str | None = None,
                 consumer: SampleConsumer | None = None, cameras: Sequence[Camera] | None = None,
                 batch_size: int | None = None, planner: AnalysisPlanner | None = None,
                 evidence: EvidenceRecorder | None = None) -> None:
        self.cfg = cfg
        self.settings = cfg.settings.ingest
        self.worker_id = worker_id
        self.redis = redis
        self.prefix = cfg.settings.redis.prefix if prefix is None else prefix
        self.consumer: SampleConsumer = consumer or CountingConsumer()
        self.planner = planner
        self.evidence = evidence  # keeps hot cameras' keyframes on disk for clips
        needs_hot = planner is not None or evidence is not None
        if needs_hot and not (hasattr(self.consumer, "detects") and hasattr(self.consumer, "hot")):
            raise TypeError("a planned or recording worker needs a consumer with detects() and hot()")
        self._now_tasks: set[asyncio.Task[None]] = set()  # analyses of detector-free cameras
        self._batch_end = 0.0  # perf_counter when the last analysed batch finished
        self.cameras = {c.id: c for c in (cameras if cameras is not None else cfg.cameras) if c.enabled}
        self.batch_size = batch_size or cfg.settings.detector.batch_size
        self.gate = OpenGate(self.settings.max_opens_in_flight)
        self.queue = SampleQueue(self.settings.queue_size)
        self.sources: dict[str, Source] = {}
        self._rings: dict[str, PacketRing] = {}
        self._gates: dict[str, MotionGate] = {}
        self._reported: dict[str, _Reported] = {}
        self._changes: list[tuple[str, str, str, float | None]] = []  # camera, state, reason, since
        self._done: dict[str, asyncio.Event] = {}
        self._district = district_of_grid(cfg)
        self._stopping = asyncio.Event()
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.shard: Shard | None = None
        self.final_stats: dict[str, Any] | None = None
        if redis is not None:
            self.shard = Shard(redis, self.prefix, worker_id, self.cameras, start=self._start_camera,
                               stop=self._stop_camera, heartbeat_s=self.settings.heartbeat_s,
                               lease_ms=self.settings.lease_ms)

    # ------------------------------------------------------------------ for consumers
    def ring(self, camera_id: str) -> PacketRing | None:
        """The camera's packet ring (pre-roll for clips), while this worker reads it."""
        return self._rings.get(camera_id)

    def motion_gate(self, camera_id: str) -> MotionGate | None:
        return self._gates.get(camera_id)

    def should_detect(self, sample: Sample) -> bool:
        gate = self._gates.get(sample.camera_id)
        return gate.should_detect(sample) if gate is not None else True

    def stats(self, with_lags: bool = False) -> dict[str, Any]:
        """Counters for benchmarks and ops; ``with_lags`` adds every kept (sample time, lag)."""
        timed = list(self.consumer.lags) if isinstance(self.consumer, CountingConsumer) else []
        lags = [lag for _, lag in timed]
        states = collections.Counter(s.state for s in self.sources.values())
        out = {"worker": self.worker_id, "cameras": len(self.sources), "states": dict(states),
               "samples": self.queue.put_count, "dropped": self.queue.dropped,
               "lag_p50": _quantile(lags, 0.5), "lag_p95": _quantile(lags, 0.95),
               "reconnects": sum(s.reconnects for s in self.sources.values()), "opens_peak": self.gate.peak}
        if with_lags:
            out["lags"] = timed
        waiting = sum(s.frame.nbytes for s in self.queue.waiting())
        state = getattr(self.consumer, "state_bytes", None)
        out["memory_bytes"] = {"rings": sum(r.nbytes for r in self._rings.values()), "samples_waiting": waiting,
                               "analysis_state": state() if state else 0}
        if self.planner is not None:
            p = self.planner
            out["analysis"] = {"rate": round(p.rate, 1), "batch": round(p.batch, 1), "armed": p.armed_total,
                               "wait_s": round(p.wait_s, 2),
                               "cycle_s": round(p.cycle_s, 2), "budget": p.budget(),
                               "starved": p.starvation(time.time()).starved,
                               "intervals_hot": [round(x, 2) for x in p.intervals(hot=True)],
                               "intervals_idle": [round(x, 2) for x in p.intervals(hot=False)],
                               "intervals_hot_received": [round(x, 2) for x in p.intervals(hot=True, received=True)],
                               "intervals_idle_received": [round(x, 2) for x in p.intervals(hot=False, received=True)]}
        if self.evidence is not None:
            out["evidence"] = self.evidence.stats()
        return out

    # ------------------------------------------------------------------ cameras
    def _source_for(self, cam: Camera, done: asyncio.Event) -> Source:
        s, det = self.settings, self.cfg.settings.detector
        fps = s.fps_cameras.get(cam.id)
        interval = 1.0 / fps if fps else (cam.sample_interval_s or s.sample_interval_s)
        ring = self._rings.setdefault(cam.id, PacketRing(s.ring_seconds, s.ring_max_bytes, lapse_s=s.ring_lapse_s,
                                                         lapse_every_s=s.ring_lapse_every_s))
        metrics.SAMPLES_DROPPED.labels(camera=cam.id)  # a 0 series from the start: dashboards show "none dropped"
        gate = self._gates.setdefault(cam.id, MotionGate(det.motion_threshold, det.force_interval_s))
        loop = self._loop
        assert loop is not None
        sampler = Sampler(cam.id, interval, keyframes_only=s.keyframes_only and not fps,
                          skip_loop_filter=s.skip_loop_filter)
        if self.planner is not None and sampler.keyframes_only:  # fps cameras sample on their own
            sampler.armed = False
            self.planner.add(cam.id, detects=self.consumer.detects(cam.id), want_s=interval)  # type: ignore[attr-defined]
        return Source(
            cam.id, cam.ingest_url,
            sampler=sampler,
            ring=ring, gate=self.gate, backoff=Backoff(s.backoff_base_s, s.backoff_cap_s, random.Random()),
            options=SourceOptions(transport=cam.transport, receiver=s.receiver, connect_timeout_s=s.connect_timeout_s,
                                  read_timeout_s=s.read_timeout_s, no_keyframe_after_s=s.no_keyframe_after_s,
                                  allow_basic_auth=cam.allow_basic_auth, udp_ports=s.rtp_udp_ports,
                                  bye_timeout_s=s.bye_timeout_s),
            on_sample=lambda sample: _to_loop(loop, self._sample_in, sample),
            on_state=lambda _src: _to_loop(loop, self._dirty.set),
            motion=gate.update,
            on_done=lambda: _to_loop(loop, done.set),
        )

    async def _start_camera(self, camera_id: str) -> None:
        if camera_id in self.sources or self._stopping.is_set():
            return
        done = self._done[camera_id] = asyncio.Event()
        src = self._source_for(self.cameras[camera_id], done)
        self.sources[camera_id] = src
        self._reported[camera_id] = _Reported()
        src.start()
        self._dirty.set()

    async def _stop_camera(self, camera_id: str) -> None:
        """Stop reading a camera and return once its thread has ended (at the next packet, or
        at the read timeout for a stalled stream)."""
        src = self.sources.get(camera_id)
        if src is None:
            return
        src.stop()
        await self._done[camera_id].wait()
        self._done.pop(camera_id, None)
        self.sources.pop(camera_id, None)
        self._rings.pop(camera_id, None)
        self._gates.pop(camera_id, None)
        if self.planner is not None:
            self.planner.remove(camera_id)
        self._forget_metrics(camera_id, self._reported.pop(camera_id, None))

    # ------------------------------------------------------------------ status
    def _camera_labels(self, cam: Camera) -> dict[str, str]:
        grid = cam.grids[0]
        return {"camera": cam.id, "district": self._district.get(grid, ""), "grid": grid, "kind": cam.kind}

    def _forget_metrics(self, camera_id: str, rep: _Reported | None) -> None:
        cam = self.cameras.get(camera_id)
        for gauge, labels in ((metrics.CAMERA_UP, self._camera_labels(cam) if cam else None),
                              (metrics.CAMERA_STATE, {"camera": camera_id, "state": rep.labels[0],
                                                      "reason": rep.labels[1]} if rep and rep.labels else None)):
            if labels:
                try:
                    gauge.remove(*labels.values())
                except KeyError:
                    pass
        for gauge, values in ((metrics.CAMERA_TRANSPORT, (camera_id, rep.transport) if rep and rep.transport else None),
                              (metrics.CAMERA_B_FRAMES, (camera_id,))):
            if values:
                try:
                    gauge.remove(*values)
                except KeyError:
                    pass

    def _snapshot(self, cid: str, src: Source, rep: _Reported, force: bool) -> CameraStatus | None:
        mono = time.monotonic()
        dt = mono - rep.t
        state, reason, since = src.state, src.reason, src.since
        if state != "down" and src.last_frame_at is not None \
                and time.time() - src.last_frame_at > self.settings.stall_after_s:
            # the connection looks alive but no frame came for too long (its reader is still
            # blocked in FFmpeg and will say why once its socket times out)
            state, reason, since = "down", "stalled", src.last_frame_at
        if not force and (state, reason) == rep.labels and dt < self.settings.status_interval_s:
            return None
        packets, nbytes, decoded = src.packets, src.bytes, src.sampler.decoded
        if dt > 0.5:  # rates over at least half a second; a forced write in between reuses them
            metrics.PACKETS.labels(camera=cid).inc(packets - rep.packets)
            metrics.BYTES.labels(camera=cid).inc(nbytes - rep.bytes)
            metrics.FRAMES_DECODED.labels(camera=cid).inc(decoded - rep.decoded)
            rep.fps = (packets - rep.packets) / dt
            rep.bitrate = (nbytes - rep.bytes) * 8 / dt
            rep.t, rep.packets, rep.bytes, rep.decoded = mono, packets, nbytes, decoded
        rtp = src.rtp_stats()
        if rtp != rep.rtp:
            for key, counter in (("lost", metrics.RTP_LOST), ("reordered", metrics.RTP_REORDERED),
                                 ("late", metrics.RTP_LATE)):
                if (delta := rtp.get(key, 0) - rep.rtp.get(key, 0)) > 0:
                    counter.labels(camera=cid).inc(delta)
            for key, cause in (("ssrc_changes", "ssrc_change"), ("byes", "bye")):
                if (delta := rtp.get(key, 0) - rep.rtp.get(key, 0)) > 0:
                    metrics.RTP_RESYNCS.labels(camera=cid, cause=cause).inc(delta)
            rep.rtp = rtp
        if src.transport != rep.transport:
            if rep.transport:
                metrics.CAMERA_TRANSPORT.labels(camera=cid, transport=rep.transport).set(0)
            metrics.CAMERA_TRANSPORT.labels(camera=cid, transport=src.transport).set(1)
            rep.transport = src.transport
        metrics.CAMERA_B_FRAMES.labels(camera=cid).set(1 if src.b_frames else 0)
        fps, bitrate = rep.fps, rep.bitrate
        if rep.labels != (state, reason):
            self._changes.append((cid, state, reason, since))
            if self.planner is not None:
                self.planner.set_live(cid, state in COVERING, time.time())
            cam = self.cameras[cid]
            metrics.CAMERA_UP.labels(**self._camera_labels(cam)).set(1 if state in COVERING else 0)
            if rep.labels and rep.labels != (state, reason):
                metrics.CAMERA_STATE.labels(camera=cid, state=rep.labels[0], reason=rep.labels[1]).set(0)
            metrics.CAMERA_STATE.labels(camera=cid, state=state, reason=reason).set(1)
            rep.labels = (state, reason)
        return CameraStatus(camera_id=cid, state=state, reason=reason, since=since,
                            last_frame_at=src.last_frame_at, fps=round(fps, 2), bitrate=round(bitrate),
                            width=src.width, height=src.height, codec=src.codec, reconnects=src.reconnects,
                            worker=self.worker_id, updated_at=time.time(), transport=src.transport,
                            transport_note=src.transport_note, b_frames=src.b_frames, rtp_lost=rtp.get("lost", 0),
                            rtp_reordered=rtp.get("reordered", 0), ssrc_changes=rtp.get("ssrc_changes", 0),
                            byes=rtp.get("byes", 0))

    async def publish_status(self, force: bool = False) -> list[CameraStatus]:
        out = []
        for cid, src in list(self.sources.items()):
            rep = self._reported.get(cid)
            if rep is not None and (st := self._snapshot(cid, src, rep, force)) is not None:
                out.append(st)
        metrics.WORKER_CAMERAS.labels(worker=self.worker_id).set(len(self.sources))
        if out and self.redis is not None:
            await write_states(self.redis, self.prefix, out)
        # the analysis consumer's offline rule counts its grace period from each change
        changes, self._changes = self._changes, []
        notify = getattr(self.consumer, "camera_state", None)
        for cid, state, reason, since in changes if notify is not None else ():
            await notify(cid, state, reason, since)
        return out

    async def _status_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._dirty.wait(), min(1.0, self.settings.status_interval_s))
            except TimeoutError:
                pass
            self._dirty.clear()
            try:
                await self.publish_status()
            except Exception as exc:  # noqa: BLE001 - Redis away: statuses are refreshed later
                log.warning("status publish failed: %s", type(exc).__name__)
            await asyncio.sleep(0.1)  # coalesce bursts of state changes

    # ------------------------------------------------------------------ samples
    def _sample_in(self, sample: Sample) -> None:
        """A decoded sample reaches the loop: detector-free cameras are analysed now, the rest queue."""
        if self.planner is None:
            self.queue.put(sample)
            return
        src = self.sources.get(sample.camera_id)
        self.planner.arrived(sample.camera_id, sample.t, time.time(), src.keyframe_interval_s if src else None)
        if self.consumer.detects(sample.camera_id):  # type: ignore[attr-defined]
            self.queue.put(sample)
        else:
            task = asyncio.create_task(self._analyse([sample], detector_lane=False))
            self._now_tasks.add(task)
            task.add_done_callback(self._now_tasks.discard)

    async def _analyse(self, batch: list[Sample], detector_lane: bool = True) -> None:
        """One batch through the consumer; ``detector_lane``: a batch from the queue (the planner's
        budget), not a detector-free camera's sample analysed at once beside it."""
        metrics.DETECTOR_BACKLOG.set(len(self.queue))
        now = time.time()
        for s in batch:
            metrics.FRAME_LAG.observe(now - s.t)
        t0 = time.perf_counter()
        try:
            await self.consumer.handle(batch)
        except Exception:  # a consumer bug must not stop ingest
            log.exception("sample consumer failed")
        # the time this batch added to the analysis being busy: batches overlap (one in the
        # detector, one in the rules) and finish in order, so the planner's rate is samples per
        # busy second of the whole pipeline, not of one batch
        t1 = time.perf_counter()
        busy = t1 - max(t0, self._batch_end)
        if detector_lane:
            self._batch_end = max(self._batch_end, t1)
        if self.planner is not None or self.evidence is not None:
            hot_of = self.consumer.hot  # type: ignore[attr-defined]
            done = time.time()
            for s in batch:
                hot = hot_of(s.camera_id)
                if self.planner is not None:
                    self.planner.analysed(s.camera_id, s.t, hot, done, s.stream_t)
                if self.evidence is not None:
                    self.evidence.update(s.camera_id, hot, now)
        if self.planner is not None and detector_lane:
            self.planner.batch_done(sum(1 for s in batch if self.consumer.detects(s.camera_id)),  # type: ignore[attr-defined]
                                    busy, full=len(batch) >= self.batch_size)

    async def _consume_loop(self) -> None:
        """Up to the consumer's ``pipeline`` batches at once (the analysis consumer's detector and
        rules overlap: 2); the next batch is taken only when a slot is free, so it gathers what
        arrived meanwhile."""
        slots = asyncio.Semaphore(getattr(self.consumer, "pipeline", 1))
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                await slots.acquire()
                task = asyncio.create_task(self._analyse(await self.queue.get_batch(self.batch_size)))
                running.add(task)
                task.add_done_callback(lambda t: (running.discard(t), slots.release()))
        finally:
            for t in running:
                t.cancel()

    async def _plan_loop(self) -> None:
        """Arm the cameras the planner picks, every tick; its report (metrics, log) once a second."""
        assert self.planner is not None
        reported, cpu_seen = 0.0, time.thread_time()
        while not self._stopping.is_set():
            now = time.time()
            cpu = time.thread_time()  # the event loop's thread (rules, publish, status, planner)
            metrics.LOOP_CPU.inc(cpu - cpu_seen)
            cpu_seen = cpu
            for cid in self.planner.plan(now):
                if (src := self.sources.get(cid)) is not None:
                    src.sampler.armed = True
            if now - reported >= 1.0:
                reported = now
                self.planner.report(now)
            await asyncio.sleep(self.planner.s.tick_s)

    async def _evidence_loop(self) -> None:
        """Hot cameras' new keyframes to disk, off the event loop, once every ``flush_s``."""
        assert self.evidence is not None
        while not self._stopping.is_set():
            await asyncio.sleep(self.evidence.s.flush_s)
            try:
                await asyncio.to_thread(self.evidence.flush)
            except Exception:  # noqa: BLE001 - evidence must never stop ingest
                log.exception("evidence flush failed")

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [asyncio.create_task(self._consume_loop()), asyncio.create_task(self._status_loop())]
        if self.planner is not None:
            self._tasks.append(asyncio.create_task(self._plan_loop()))
        if self.evidence is not None:
            self._tasks.append(asyncio.create_task(self._evidence_loop()))
        if self.shard is not None:
            self._tasks.append(asyncio.create_task(self.shard.run(self._stopping)))
        else:
            for cid in self.cameras:
                await self._start_camera(cid)

    async def stop(self) -> None:
        """Graceful: stop every reader, release leases at once, leave the member set."""
        self._stopping.set()
        if self.shard is not None:
            try:
                await self.shard.leave()
            except Exception as exc:  # noqa: BLE001
                log.warning("could not release leases: %s", type(exc).__name__)
        await asyncio.gather(*(self._stop_camera(cid) for cid in list(self.sources)))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.evidence is not None:
            self.evidence.close()

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            self.final_stats = self.stats(with_lags=True)  # as it stood: stop() lets every camera go
            await self.stop()
