"""Camera tamper: lens covered, defocused, moved (knocked off aim), or too dark, each judged
against the camera's own reference (learned from its first normal samples, then drifting slowly
with the scene), and alerted once the condition has lasted ``min_duration_s``."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from camera_hub.analytics.rules.hysteresis import Hysteresis, or_now
from camera_hub.config import TamperRule
from camera_hub.events import Episode
from detectors.preprocess import downscale

SIZE = (160, 90)
COVERED_STD = 8.0  # grey-level spread of a lens covered by a hand, tape or a bag


@dataclass(frozen=True, slots=True)
class FrameStats:
    mean: float  # grey level 0..255
    std: float
    sharpness: float  # variance of the Laplacian
    grey: np.ndarray  # small float32 grey image for the structural comparison


def frame_stats(frame: np.ndarray) -> FrameStats:
    grey = cv2.cvtColor(downscale(frame, SIZE), cv2.COLOR_BGR2GRAY)
    g = grey.astype(np.float32)
    return FrameStats(float(g.mean()), float(g.std()), float(cv2.Laplacian(grey, cv2.CV_32F).var()), g)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004) of two grey images, Gaussian window, averaged with
    the reference ``b``'s local contrast as weight: flat sky or wall matches anything and would
    hide a camera that now looks somewhere else."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda x: cv2.GaussianBlur(x, (7, 7), 1.5)  # noqa: E731
    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma * ma, blur(b * b) - mb * mb, blur(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    w = np.sqrt(np.maximum(vb, 0)) + 1.0
    return float((s * w).sum() / w.sum())


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two grey images: the same scene at any brightness scores near 1."""
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / max(np.sqrt((a * a).sum() * (b * b).sum()), 1e-6))


class TamperState:
    """One per camera. ``reference_n`` normal-looking samples make the reference."""

    def __init__(self, camera_id: str, rule: TamperRule, zone_id: str = "view", reference_n: int = 3,
                 drift: float = 0.02) -> None:
        self.camera_id, self.rule, self.zone_id = camera_id, rule, zone_id
        self.reference_n, self.drift = reference_n, drift
        self.gate = Hysteresis(rule.min_duration_s, rule.min_duration_s)
        self._ref_grey: np.ndarray | None = None
        self._ref_sharp = 0.0
        self._learning: list[FrameStats] = []
        self._reason = ""
        self._started_at: float | None = None
        self.current = ""  # this sample's verdict: '' or the reason it looks wrong

    def classify(self, s: FrameStats) -> str:
        """'' when normal, else covered | dark | defocused | moved."""
        if s.mean < self.rule.dark_threshold or s.std < COVERED_STD:
            # dim but still the same scene (contrast-free correlation with the reference) = dark;
            # nearly uniform and unlike the reference = something over the lens
            if self._ref_grey is not None and correlation(s.grey, self._ref_grey) > 0.5:
                return "dark"
            return "covered" if s.std < COVERED_STD else "dark"
        if self._ref_grey is None:
            return ""
        if s.sharpness < self.rule.blur_ratio * self._ref_sharp:
            return "defocused"
        if ssim(s.grey, self._ref_grey) < self.rule.moved_threshold:
            return "moved"
        return ""

    def reference(self) -> tuple[np.ndarray, float] | None:
        """The learned reference (grey, sharpness), once there is one: a worker that takes the
        camera over adopts it instead of learning its own from a view that may be tampered now."""
        return None if self._ref_grey is None else (self._ref_grey.copy(), self._ref_sharp)

    def adopt_reference(self, grey: np.ndarray, sharpness: float) -> None:
        self._ref_grey, self._ref_sharp = grey.astype(np.float32), float(sharpness)
        self._learning.clear()

    def _learn(self, s: FrameStats) -> None:
        if self._ref_grey is None:
            self._learning.append(s)
            if len(self._learning) >= self.reference_n:
                self._ref_grey = np.median([x.grey for x in self._learning], axis=0).astype(np.float32)
                self._ref_sharp = float(np.median([x.sharpness for x in self._learning]))
                self._learning.clear()
            return
        self._ref_grey += self.drift * (s.grey - self._ref_grey)
        self._ref_sharp += self.drift * (s.sharpness - self._ref_sharp)

    def step(self, frame: np.ndarray, t: float) -> list[Episode]:
        s = frame_stats(frame)
        reason = self.current = self.classify(s)
        if not reason:
            self._learn(s)
        edge = self.gate.step(bool(reason), t)
        if edge == "start":
            self._started_at, self._reason = or_now(self.gate.onset, t), reason
            return [self._episode("start", t, frame)]
        if edge == "end":
            ep = self._episode("end", t, frame)
            self._started_at, self._reason = None, ""
            return [ep]
        if edge == "hold" and reason and reason != self._reason:
            self._reason = reason
            return [self._episode("update", t, frame)]
        return []

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self._ref_grey, *(x.grey for x in self._learning)) if a is not None)

    @property
    def blinded(self) -> bool:
        """The view is not what the reference shows (now, or an episode is open)."""
        return self.gate.active or bool(self.current)

    def _episode(self, kind, t: float, frame: np.ndarray) -> Episode:
        return Episode(kind, "tamper", self.camera_id, self.zone_id, or_now(self._started_at, t), t, score=1.0,
                       detail=self._reason, frame=frame if kind == "start" else None)
