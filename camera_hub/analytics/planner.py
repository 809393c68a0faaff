"""AnalysisPlanner: which cameras' next keyframe is decoded and analysed, under the budget the
worker's analysis can actually do.

A worker of 1,000 cameras cannot analyse a keyframe of each every 2 s (decode, rules and detector
cost ~5 CPU-ms a sample: 2.5 cores). Dropping what does not fit gives each camera whatever the
queue order leaves it; instead the planner decides, each tick, which cameras to *arm* (their
sampler decodes the next keyframe, nothing else is decoded at all):

- Each camera wants a sample every sample interval (``settings.ingest``) and must get one at least every
  ``hot_interval_s`` while it is *hot* (a rule has a candidate or an open episode: goods resting
  in a frontage, a crowd building, a tamper verdict) and every ``floor_interval_s`` otherwise.
- Due cameras are armed most-urgent first, urgency = time since the last sample / that limit: when
  the budget is short every camera stretches by the same factor, so hot ones stay about
  ``floor / hot`` times as frequent as idle ones, and a camera past its limit is *starved*.
  Samples are keyframes, so a camera's intervals are whole GOPs: with 2 s GOPs the last keyframe
  within a 15 s floor is the one at 14 s, and a camera armed for 15 s misses it and waits until
  16 s. Urgency is therefore measured against the *deadline*, the limit rounded down to the
  camera's GOP (``gop_s``, reported with each sample; 14 s there), not the limit itself.
- The budget is measured, not configured: the consumer reports each batch (samples, seconds), the
  planner keeps a moving average of samples per busy second (the detector's and rules' real
  speed on this machine, model and batch size) and of the wait from arming to the sample
  arriving (about half a GOP). Only full batches measure it: a batch costs a fixed part (thread
  hand-offs, the event loop's turn) besides its samples, so batches of one or two, measured as
  the speed, would size the budget for batches of one or two. A batch short of samples while
  due cameras wait for budget raises the rate a little instead, until batches fill. Cameras in
  flight (armed or waiting to be analysed) are bounded by ``rate × wait``, at most
  ``max_in_flight``: the analysis queue cannot grow, and decoding follows analysis instead of
  running ahead of it.
- Cameras whose rules need no detector (tamper only) are armed whenever due, outside the budget:
  their analysis is cheap and never waits for the detector.

Everything here is plain bookkeeping on the event loop (no locks, no I/O); the worker applies the
decisions (``Sampler.armed``) and reports back.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

from camera_hub import metrics
from camera_hub.config import AnalysisSettings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Camera:
    detects: bool
    want_s: float  # a sample this often when analysis has room (the camera's sample interval)
    live: bool = False  # delivering frames: only live cameras are planned (or can starve)
    hot: bool = False
    last: float | None = None  # time the last analysed sample was taken
    last_stream: float | None = None  # and its own timestamp (Sample.stream_t)
    since: float = 0.0  # when it became live (the age of a camera never analysed counts from here)
    armed_at: float | None = None
    armed_from: float | None = None  # when its current sample was asked for (to its analysis: the cycle)
    waiting: float | None = None  # the time of its sample decoded and queued for analysis
    gop_s: float | None = None  # its keyframe interval, as the source measures it
    # recent (interval, interval between receive times, was hot), bounded
    intervals: list[tuple[float, float, bool]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Starvation:
    """Cameras past their limit: how many, of how many live, and by how much (seconds)."""

    starved: int
    live: int
    worst_s: float
    p95_s: float


KEEP_INTERVALS = 32  # per camera, for the p50/p95 the benchmarks print
# a stream-time interval this far from the receive-time one is not trusted (a new RTSP session
# restarts the timestamps; a camera's clock may be wrong): the receive time counts instead
STREAM_TRUST_S = 1.0
GOP_SLACK = 0.05  # a limit within 5 % of a GOP past a whole number of GOPs still counts that keyframe
PROBE = 1.02  # the rate's rise per short batch while due cameras wait (x1.8 in 30 batches)
MAX_RATE = 10_000.0  # samples/s: a bound for the probing, far above any one worker's analysis


class AnalysisPlanner:
    def __init__(self, settings: AnalysisSettings, *, worker: str = "") -> None:
        self.s = settings
        self.worker = worker
        self.cameras: dict[str, _Camera] = {}
        self.rate = settings.initial_rate  # samples analysed per busy second (moving average)
        self.wait_s = 1.0  # arming → sample arrival (moving average)
        self.batch = 1.0  # detector samples per analysed batch (moving average)
        self.cycle_s = 0.0  # arming → analysed (moving average; for the benchmarks' reading of the budget)
        self.armed_total = 0
        self.short = False  # the last plan left due cameras unarmed for want of budget
        self._last_log = -math.inf

    # ------------------------------------------------------------------ cameras
    def add(self, camera_id: str, *, detects: bool, want_s: float) -> None:
        self.cameras.setdefault(camera_id, _Camera(detects=detects, want_s=want_s))

    def remove(self, camera_id: str) -> None:
        if self.cameras.pop(camera_id, None) is not None:
            try:
                metrics.ANALYSIS_INTERVAL.remove(camera_id)
            except KeyError:
                pass

    def set_live(self, camera_id: str, live: bool, now: float) -> None:
        cam = self.cameras.get(camera_id)
        if cam is None or cam.live == live:
            return
        cam.live, cam.since = live, now
        if not live:
            cam.armed_at = None  # its armed flag stays set: the first keyframe after it is back
            cam.last = None  # comes in; counting its age across the outage would call it starved

    # ------------------------------------------------------------------ the plan
    def limit(self, cam: _Camera) -> float:
        return self.s.hot_interval_s if cam.hot else self.s.floor_interval_s

    def deadline(self, cam: _Camera) -> float:
        """The limit rounded down to whole GOPs (a little slack for keyframe timing): the latest
        keyframe that still keeps it."""
        limit, gop = self.limit(cam), cam.gop_s
        if not gop or gop >= limit:
            return limit
        return max(gop, math.floor(limit / gop + GOP_SLACK) * gop)

    def age(self, cam: _Camera, now: float) -> float:
        """Since its newest sample (analysed or on its way), or since it came up."""
        newest = cam.waiting if cam.waiting is not None else cam.last
        return now - (newest if newest is not None else cam.since)

    def in_flight(self, now: float) -> int:
        """Detector cameras armed (recently: a camera that stopped sending frees its slot) or waiting."""
        stale = 3 * self.wait_s + 2 * self.s.tick_s + self.s.hot_interval_s
        return sum(1 for c in self.cameras.values() if c.detects and (
            c.waiting is not None or (c.armed_at is not None and now - c.armed_at < stale)))

    def budget(self) -> int:
        """How many detector cameras may be in flight (Little's law): enough to keep analysis
        busy through one arming wait and one tick, plus the batch being analysed and the next one
        queued; never more than ``max_in_flight``."""
        need = math.ceil(self.rate * (self.wait_s + self.s.tick_s) + 2 * self.batch)
        return max(1, min(self.s.max_in_flight, need))

    def plan(self, now: float) -> list[str]:
        """The cameras to arm now, most urgent first."""
        due: list[tuple[float, str]] = []
        arm: list[str] = []
        for cid, cam in self.cameras.items():
            if not cam.live or cam.waiting is not None or cam.armed_at is not None:
                continue
            if cam.last is not None and now - cam.last < cam.want_s - self.wait_s:
                # armed this early, the sampler still waits out the interval, then takes the next keyframe
                continue
            if cam.detects:
                # the sample comes a keyframe wait after arming: urgency as of then
                due.append(((self.age(cam, now) + self.wait_s) / self.deadline(cam), cid))
            else:
                arm.append(cid)
        free = self.budget() - self.in_flight(now)
        self.short = len(due) > max(free, 0)
        if free > 0 and due:
            due.sort(reverse=True)
            arm += [cid for _, cid in due[:free]]
        for cid in arm:
            cam = self.cameras[cid]
            # the wait is measured from when the sampler will take a keyframe, not from arming
            cam.armed_at = now if cam.last is None else max(now, cam.last + 0.9 * cam.want_s)
            cam.armed_from = cam.armed_at
        self.armed_total += len(arm)
        return arm

    # ------------------------------------------------------------------ feedback
    def arrived(self, camera_id: str, t: float, now: float, gop_s: float | None = None) -> None:
        """Its sample (taken at ``t``) reached the analysis queue; ``gop_s``: the camera's
        keyframe interval now."""
        cam = self.cameras.get(camera_id)
        if cam is None:
            return
        cam.gop_s = gop_s or cam.gop_s
        if cam.armed_at is not None:
            self.wait_s += 0.05 * (min(now - cam.armed_at, 10.0) - self.wait_s)
        cam.armed_at, cam.waiting = None, t

    def analysed(self, camera_id: str, t: float, hot: bool, now: float | None = None,
                 stream_t: float | None = None) -> None:
        """Its sample (taken at ``t``, its own timestamp ``stream_t``) went through the rules (at
        ``now``); ``hot``: a rule has something."""
        cam = self.cameras.get(camera_id)
        if cam is None:
            return
        if cam.armed_from is not None:
            done = time.time() if now is None else now
            self.cycle_s += 0.05 * (min(done - cam.armed_from, 60.0) - self.cycle_s)
            cam.armed_from = None
        if cam.last is not None and t > cam.last:
            received = t - cam.last
            interval = self._interval(received, stream_t, cam.last_stream)
            cam.intervals.append((interval, received, cam.hot))
            del cam.intervals[:-KEEP_INTERVALS]
            metrics.ANALYSIS_INTERVAL.labels(camera=camera_id).set(round(interval, 2))
        cam.last, cam.last_stream, cam.hot, cam.waiting = t, stream_t, hot, None

    @staticmethod
    def _interval(received: float, stream_t: float | None, last_stream: float | None) -> float:
        """How much of the camera's video went by between its two analysed frames: by their own
        timestamps, which the worker's receive delays do not stretch (two keyframes 4.0 s apart
        are 4.0 s apart, whenever their last packets were read); by receive time (``received``)
        where those cannot be compared."""
        if stream_t is not None and last_stream is not None:
            video = stream_t - last_stream
            if video > 0 and abs(video - received) <= STREAM_TRUST_S:
                return video
        return received

    def batch_done(self, samples: int, seconds: float, *, full: bool = True) -> None:
        """The consumer analysed ``samples`` detector samples in ``seconds`` of its time; ``full``:
        the batch was as large as the consumer takes (the queue held at least that many)."""
        if not samples or seconds <= 0:
            return
        self.batch += 0.2 * (samples - self.batch)
        if full:
            self.rate += 0.2 * (samples / seconds - self.rate)
        elif self.short:  # analysis waited for samples while cameras waited for budget: more
            self.rate = min(self.rate * PROBE, MAX_RATE)
        metrics.ANALYSIS_RATE.labels(worker=self.worker).set(round(self.rate, 1))

    # ------------------------------------------------------------------ reporting
    def starvation(self, now: float) -> Starvation:
        live = [c for c in self.cameras.values() if c.live]
        over = sorted(self.age(c, now) - self.limit(c) for c in live if self.age(c, now) > self.limit(c))
        return Starvation(starved=len(over), live=len(live), worst_s=round(over[-1], 1) if over else 0.0,
                          p95_s=round(over[min(len(over) - 1, int(0.95 * len(over)))], 1) if over else 0.0)

    def report(self, now: float) -> Starvation:
        """Metrics every call; a warning at most every ``log_every_s`` while cameras starve."""
        st = self.starvation(now)
        metrics.ANALYSIS_STARVED.labels(worker=self.worker).set(st.starved)
        metrics.ANALYSIS_IN_FLIGHT.labels(worker=self.worker).set(self.in_flight(now))
        if st.starved and now - self._last_log >= self.s.log_every_s:
            self._last_log = now
            log.warning("analysis starved: %d of %d live cameras past their interval (hot %.0f s, floor %.0f s), "
                        "by up to %.1f s (p95 %.1f s); analysis runs %.0f samples/s: add workers or a cheaper model",
                        st.starved, st.live, self.s.hot_interval_s, self.s.floor_interval_s, st.worst_s, st.p95_s,
                        self.rate)
        return st

    def intervals(self, hot: bool | None = None, *, received: bool = False) -> list[float]:
        """Recent effective intervals of every camera (``hot``: only those the camera waited out
        hot / idle; ``received``: between the samples' receive times instead)."""
        return [r if received else x for c in self.cameras.values() for x, r, was_hot in c.intervals
                if hot is None or was_hot == hot]
