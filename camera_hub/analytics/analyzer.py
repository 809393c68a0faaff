"""The analysis stage the ingest worker calls: samples from many cameras in, episodes out.

Per batch: the scheduler drops samples of static scenes (their cameras reuse the last
detections), the rest go through the detector in one batched call off the event loop (lookout
cameras tiled), then per camera a tracker, the class-agnostic foreground model where a vending
rule wants it (over the vending zones only), and the rules of each zone. A camera whose rules
need no detections (tamper only) never goes near the detector or its lock. Camera up/down
changes come in through :meth:`Analyzer.camera_state` for the offline rule; :meth:`Analyzer.hot`
tells the planner which cameras have something going on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from camera_hub.analytics.foreground import ForegroundModel
from camera_hub.analytics.rules.crowding import CrowdingState
from camera_hub.analytics.rules.offline import OfflineState
from camera_hub.analytics.rules.tamper import SIZE, TamperState
from camera_hub.analytics.rules.vending import VendingState
from camera_hub.analytics.scheduler import DetectorScheduler
from camera_hub.analytics.tracker import Tracker
from camera_hub.analytics.zones import ZoneArea, zones_bbox
from camera_hub.config import Camera, CityConfig, CrowdingRule, TamperRule, VendingRule
from camera_hub.events import Detection, Episode, Sample, Track
from camera_hub.metrics import DETECTOR_CPU, INFERENCE_BATCH, INFERENCE_SECONDS, RULES_CPU
from detectors.detector import Detector
from detectors.tiling import detect_tiled

log = logging.getLogger(__name__)

LOW_SCORE = 0.1  # detections kept for the tracker's second pass
# A camera this worker reads again within this long of its last analysed sample keeps its analysis,
# as after a reconnect (a Redis outage past the lease fence stops and retakes every camera): the
# rules' hysteresis (end_after_s, 20 s by default) bridges such a gap. After a longer one another
# worker may have moved its episodes on, so it starts afresh.
RESUME_S = 20.0
# the foreground model covers the vending zones and this much of the frame above them (a stall's
# canopy, a clothes rack: what stands in a frontage rises above its ground line)
FOREGROUND_ABOVE, FOREGROUND_MARGIN = 0.15, 0.02


@dataclass
class CameraAnalytics:
    camera: Camera
    tracker: Tracker
    zone_rules: list[VendingState | CrowdingState] = field(default_factory=list)
    tamper: list[TamperState] = field(default_factory=list)
    foreground: ForegroundModel | None = None
    offline: OfflineState | None = None

    @property
    def detects(self) -> bool:
        """Do its rules need detections? (Tamper and offline do not.)"""
        return bool(self.zone_rules)

    @property
    def hot(self) -> bool:
        """A rule has a candidate or an open episode: the planner samples it more often."""
        return (any(tp.blinded for tp in self.tamper) or any(r.hot for r in self.zone_rules)
                or (self.foreground is not None and self.foreground.candidate))

    def new_foreground(self) -> ForegroundModel:
        zones = [z for z in self.camera.zones if any(isinstance(r, VendingRule) and r.class_agnostic for r in z.rules)]
        region = zones_bbox(zones, above=FOREGROUND_ABOVE, margin=FOREGROUND_MARGIN)
        return ForegroundModel(region=region) if region else ForegroundModel()


def _build(cam: Camera, tz: str, grace_s: float) -> CameraAnalytics:
    ca = CameraAnalytics(cam, Tracker(), offline=OfflineState(cam.id, grace_s))
    for z in cam.zones:
        area = ZoneArea(z, tz)
        for rule in z.rules:
            if isinstance(rule, VendingRule):
                ca.zone_rules.append(VendingState(cam.id, area, rule))
                if rule.class_agnostic and ca.foreground is None:
                    ca.foreground = ca.new_foreground()
            elif isinstance(rule, CrowdingRule):
                ca.zone_rules.append(CrowdingState(cam.id, area, rule))
            elif isinstance(rule, TamperRule):
                ca.tamper.append(TamperState(cam.id, rule, zone_id=z.id))
    return ca


class Analyzer:
    def __init__(self, cfg: CityConfig, detector: Detector) -> None:
        st = cfg.settings.detector
        self.detector = detector
        self.tile_lookout, self.tile_scale, self.tile_overlap = st.tile_lookout, st.tile_scale, st.tile_overlap
        self.scheduler = DetectorScheduler(st.motion_threshold, st.force_interval_s)
        self._tz, self._grace = cfg.city.timezone, cfg.settings.alerts.offline_grace_s
        self.cameras = {c.id: _build(c, self._tz, self._grace) for c in cfg.cameras if c.enabled}
        # Two batches overlap: one in the detector (a thread, the second core) while the one
        # before it goes through the rules on the event loop. The detector takes one batch at a
        # time; the rules take batches in the order they left the detector (each batch waits for
        # the previous one's), so trackers and rules see each camera's samples in order.
        self._detect_lock = asyncio.Lock()
        # the detector's own thread: in the event loop's shared pool it would queue behind clip,
        # snapshot and evidence writes, and a slow batch makes the planner arm fewer cameras
        self._detector_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detector")
        self._rules_turn: asyncio.Future[None] | None = None
        self._last_t: dict[str, float] = {}  # camera → time of its last analysed sample
        threshold = getattr(detector, "threshold", None)
        self._is_high = (lambda d: d.score >= threshold(d.label)) if callable(threshold) else None

    def detects(self, camera_id: str) -> bool:
        ca = self.cameras.get(camera_id)
        return ca is not None and ca.detects

    def hot(self, camera_id: str) -> bool:
        ca = self.cameras.get(camera_id)
        return ca is not None and ca.hot

    async def handle(self, samples: list[Sample]) -> list[Episode]:
        """Episodes raised by these samples (any cameras, any order)."""
        known = sorted((s for s in samples if s.camera_id in self.cameras), key=lambda x: x.t)
        if len(known) != len(samples):
            log.warning("dropped %d samples of cameras not in the config", len(samples) - len(known))
        # cameras without detection rules: analysed at once, without waiting for the detector
        out = [e for s in known if not self.cameras[s.camera_id].detects for e in self._analyse(s, [])]
        if rest := [s for s in known if self.cameras[s.camera_id].detects]:
            out += await self._handle(rest)
        return out

    async def _handle(self, known: list[Sample]) -> list[Episode]:
        async with self._detect_lock:
            run, _ = self.scheduler.split(known)
            loop = asyncio.get_running_loop()
            found = await loop.run_in_executor(self._detector_thread, self._detect, run) if run else []
            before, mine = self._rules_turn, asyncio.get_running_loop().create_future()
            self._rules_turn = mine
        try:
            if before is not None:
                await asyncio.shield(before)  # the previous batch's rules first
            own = {id(s): dets for s, dets in zip(run, found, strict=True)}
            out: list[Episode] = []
            for s in known:  # in time order; a skipped sample reuses its camera's latest detections
                if id(s) in own:
                    self.scheduler.remember(s.camera_id, own[id(s)])
                out += self._analyse(s, self.scheduler.last(s.camera_id))
            return out
        finally:
            mine.set_result(None)

    def _detect(self, samples: Sequence[Sample]) -> list[list[Detection]]:
        """One batched detector call for ordinary cameras, one tiled call for lookout cameras."""
        result: list[list[Detection]] = [[] for _ in samples]
        is_lookout = [self.tile_lookout and self.cameras[s.camera_id].camera.kind == "lookout" for s in samples]
        lookout = [i for i, x in enumerate(is_lookout) if x]
        plain = [i for i, x in enumerate(is_lookout) if not x]
        for idx, tiled in ((plain, False), (lookout, True)):
            if not idx:
                continue
            frames = [samples[i].frame for i in idx]
            t0, c0 = time.perf_counter(), time.thread_time()
            if tiled:
                regions = [self._region(samples[i]) for i in idx]
                found = detect_tiled(self.detector, frames, min_score=LOW_SCORE, scale=self.tile_scale,
                                     overlap=self.tile_overlap, regions=regions)
            else:
                found = self.detector.detect(frames, min_score=LOW_SCORE)
            DETECTOR_CPU.inc(time.thread_time() - c0)
            INFERENCE_SECONDS.labels(model=self.detector.name).observe(time.perf_counter() - t0)
            INFERENCE_BATCH.labels(model=self.detector.name).observe(len(frames))
            for i, dets in zip(idx, found, strict=True):
                result[i] = dets
        return result

    def _region(self, s: Sample) -> tuple[int, int, int, int] | None:
        """Bounding box (pixels) of the zones whose rules need detections: tiles go only there."""
        zones = [z for z in self.cameras[s.camera_id].camera.zones
                 if any(not isinstance(r, TamperRule) for r in z.rules)]
        if not zones:
            return None
        h, w = s.frame.shape[:2]
        xs = [x for z in zones for x, _ in z.polygon]
        ys = [y for z in zones for _, y in z.polygon]
        return int(min(xs) * w), int(min(ys) * h), max(1, int(np.ceil(max(xs) * w))), max(1, int(np.ceil(max(ys) * h)))

    def _analyse(self, s: Sample, dets: list[Detection]) -> list[Episode]:
        c0 = time.thread_time()
        try:
            return self._rules(s, dets)
        finally:
            RULES_CPU.inc(time.thread_time() - c0)

    def _rules(self, s: Sample, dets: list[Detection]) -> list[Episode]:
        ca = self.cameras[s.camera_id]
        self._last_t[s.camera_id] = s.t
        h, w = s.frame.shape[:2]
        out: list[Episode] = []
        for tamper in ca.tamper:
            out += tamper.step(s.frame, s.t)
        tracks: list[Track] = ca.tracker.update(dets, s.t, self._is_high)
        if ca.foreground is not None:
            if any(tp.blinded for tp in ca.tamper):
                # covered, moved, dark: the learned empty scene no longer applies; learn it again after
                ca.foreground = ca.new_foreground()
            else:
                ca.foreground.update(s.frame, dets, s.t)
        for rule in ca.zone_rules:
            if isinstance(rule, VendingState) and ca.foreground is not None and rule.rule.class_agnostic:
                masses = ca.foreground.masses(s.t, rule.rule.min_dwell_s, rule.rule.min_area)
                out += rule.step(tracks, s.t, w, h, masses)
            else:
                out += rule.step(tracks, s.t, w, h)
        return [dataclasses.replace(e, frame=s.frame) if e.kind != "end" and e.frame is None else e for e in out]

    def state_bytes(self) -> int:
        """Memory held by the cameras' analysis state (foreground models, tamper references)."""
        return sum((ca.foreground.nbytes if ca.foreground else 0) + sum(tp.nbytes for tp in ca.tamper)
                   for ca in self.cameras.values())

    def camera_state(self, camera_id: str, state: str, t: float, reason: str = "") -> list[Episode]:
        """Feed a camera state change (starting | up | degraded | down) to the offline rule."""
        ca = self.cameras.get(camera_id)
        return ca.offline.step(t, state, reason) if ca and ca.offline else []

    def adopt_offline(self, camera_id: str, started_at: float, reason: str = "") -> None:
        """Carry on an offline episode still open in the alert store (see OfflineState.adopt)."""
        ca = self.cameras.get(camera_id)
        if ca is not None and ca.offline is not None and not ca.offline.active:
            ca.offline.adopt(started_at, reason)

    def tick(self, t: float) -> list[Episode]:
        """Clock tick: raises offline alerts whose grace period ran out without a state change."""
        return [e for ca in self.cameras.values() if ca.offline for e in ca.offline.step(t)]

    def tamper_references(self, camera_id: str) -> dict[str, tuple[np.ndarray, float]]:
        """The camera's learned tamper references, by zone (see camera_hub.analytics.references)."""
        ca = self.cameras.get(camera_id)
        return {tp.zone_id: ref for tp in (ca.tamper if ca else []) if (ref := tp.reference()) is not None}

    def adopt_tamper_references(self, camera_id: str, refs: dict[str, tuple[np.ndarray, float]]) -> None:
        for tp in self.cameras[camera_id].tamper if camera_id in self.cameras else []:
            if (ref := refs.get(tp.zone_id)) is not None and ref[0].shape[::-1] == SIZE:
                tp.adopt_reference(*ref)

    def resumes(self, camera_id: str, now: float) -> bool:
        """Does a camera that starts again on this worker keep its analysis (see ``RESUME_S``)?"""
        last = self._last_t.get(camera_id)
        return last is not None and now - last <= RESUME_S

    def forget(self, camera_id: str) -> None:
        """Start a camera afresh (it moved to another worker and came back: its tracks are stale)."""
        self._last_t.pop(camera_id, None)
        self.scheduler.forget(camera_id)
        if camera_id in self.cameras:
            self.cameras[camera_id] = _build(self.cameras[camera_id].camera, self._tz, self._grace)
