"""Which samples go to the detector: the motion score (``Sample.motion``, from the ingest side's
MotionGate) lets a static scene skip it, while a forced run at least every ``force_interval_s``
keeps slow changes visible. A skipped sample reuses the camera's last detections — the scene has
not changed — so trackers and dwell clocks keep running without inference."""

from __future__ import annotations

from collections.abc import Sequence

from camera_hub.events import Detection, Sample
from camera_hub.metrics import MOTION_SKIPPED


class DetectorScheduler:
    def __init__(self, threshold: float = 0.01, force_interval_s: float = 10.0) -> None:
        self.threshold = threshold
        self.force_interval_s = force_interval_s
        self._last_run: dict[str, float] = {}
        self._last_dets: dict[str, list[Detection]] = {}
        self.runs = 0
        self.skips = 0

    def wants(self, s: Sample) -> bool:
        """True when this sample must be analysed: moved, unscored, never seen, or forced."""
        last = self._last_run.get(s.camera_id)
        return (last is None or s.t - last >= self.force_interval_s or s.motion is None
                or s.motion >= self.threshold or s.camera_id not in self._last_dets)

    def split(self, samples: Sequence[Sample]) -> tuple[list[Sample], list[Sample]]:
        """(to detect, to skip); skips are counted in ``camera_hub_motion_skipped_total``."""
        run, skip = [], []
        for s in samples:
            if self.wants(s):
                self._last_run[s.camera_id] = s.t
                run.append(s)
            else:
                skip.append(s)
                MOTION_SKIPPED.labels(camera=s.camera_id).inc()
        self.runs += len(run)
        self.skips += len(skip)
        return run, skip

    def remember(self, camera_id: str, dets: list[Detection]) -> None:
        self._last_dets[camera_id] = dets

    def last(self, camera_id: str) -> list[Detection]:
        return self._last_dets.get(camera_id, [])

    def forget(self, camera_id: str) -> None:
        self._last_run.pop(camera_id, None)
        self._last_dets.pop(camera_id, None)
