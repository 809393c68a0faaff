"""Per-camera multi-object tracker, ByteTrack-style: high-score detections are matched to tracks
first, then the tracks left over get a second chance with the low-score detections (an occluded
or blurred person scores low but is still the same person), so ids survive a weak frame.

Samples arrive seconds apart, so boxes of a walking person barely overlap from one to the next:
each track is predicted forward with its own smoothed velocity (a constant-velocity model, the
part of ByteTrack's Kalman filter that matters at this rate), and the cost mixes IoU with the
centre distance in units of the box size. Matching is a global optimum (``lap.lapjv``, the
Jonker-Volgenant solver ByteTrack itself uses): greedy matching swaps ids between people who
stand close together, which then restarts their dwell clocks. Not scipy's
``linear_sum_assignment``, the same optimum: importing ``scipy.optimize`` for it cost each worker
process 28 MB of private memory (and 22 MB of library pages), ``lap`` nothing measurable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lap
import numpy as np

from camera_hub.events import Detection, Track
from detectors.nms import iou_matrix

INFEASIBLE = 1e6
Pairs = list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class TrackerParams:
    high_score: float = 0.45  # detections at or above start tracks and match first
    low_score: float = 0.1  # second pass only
    new_track_score: float = 0.5
    match_cost: float = 0.8  # 1 - similarity above this never matches
    max_age_s: float = 15.0  # a track unseen this long is dropped
    distance_scale: float = 1.5  # centre shift, in box diagonals, at which the distance similarity is 0


def similarity(tracks: np.ndarray, dets: np.ndarray, distance_scale: float) -> np.ndarray:
    """max(IoU, 1 - centre distance / (scale × mean box diagonal)) for every pair."""
    iou = iou_matrix(tracks, dets)
    ct = (tracks[:, None, :2] + tracks[:, None, 2:]) / 2
    cd = (dets[None, :, :2] + dets[None, :, 2:]) / 2
    dist = np.linalg.norm(ct - cd, axis=-1)
    diag_t = np.linalg.norm(tracks[:, 2:] - tracks[:, :2], axis=-1)[:, None]
    diag_d = np.linalg.norm(dets[:, 2:] - dets[:, :2], axis=-1)[None, :]
    near = 1 - dist / (distance_scale * np.maximum((diag_t + diag_d) / 2, 1e-6))
    # boxes of very different size are not the same object, however close
    ratio = np.minimum(diag_t, diag_d) / np.maximum(np.maximum(diag_t, diag_d), 1e-6)
    return np.maximum(iou, np.where(ratio > 0.5, near, 0.0))


class Tracker:
    """Tracks of one camera. :meth:`update` with each analysed sample's detections."""

    def __init__(self, params: TrackerParams | None = None) -> None:
        self.params = params or TrackerParams()
        self.tracks: list[Track] = []
        self._velocity: dict[int, np.ndarray] = {}  # px per second, x1 y1 x2 y2
        self._next_id = 1

    def _predicted(self, tr: Track, t: float) -> np.ndarray:
        v = self._velocity.get(tr.track_id)
        box = np.asarray(tr.box, dtype=np.float32)
        return box if v is None else box + v * (t - tr.last_seen)

    def _match(self, tracks: list[Track], dets: list[Detection], t: float) -> tuple[Pairs, list[int], list[int]]:
        if not tracks or not dets:
            return [], list(range(len(tracks))), list(range(len(dets)))
        tb = np.array([self._predicted(tr, t) for tr in tracks], dtype=np.float32)
        db = np.array([d.box for d in dets], dtype=np.float32)
        cost = 1 - similarity(tb, db, self.params.distance_scale)
        same = np.array([[t.label == d.label for d in dets] for t in tracks])
        cost = np.where(same & (cost <= self.params.match_cost), cost, INFEASIBLE)
        # cost_limit: leaving a track and a detection both unmatched costs this, so every feasible
        # pair (cost <= 1) is worth taking and none of INFEASIBLE is: the most feasible pairs,
        # then the least cost, as scipy's linear_sum_assignment gives. Without it lapjv's padded
        # problem came out suboptimal in 6 of 2,000 random ones with INFEASIBLE entries.
        _, cols, _ = lap.lapjv(cost.astype(np.float64), extend_cost=True, cost_limit=INFEASIBLE / 10)
        pairs = [(r, int(c)) for r, c in enumerate(cols) if c >= 0 and cost[r, c] < INFEASIBLE]
        mt, md = {r for r, _ in pairs}, {c for _, c in pairs}
        return pairs, [i for i in range(len(tracks)) if i not in mt], [j for j in range(len(dets)) if j not in md]

    def update(self, dets: Sequence[Detection], t: float,
               is_high: Callable[[Detection], bool] | None = None) -> list[Track]:
        """Associate this sample's detections; returns the tracks seen in it. ``is_high`` replaces
        the ``high_score`` cut (e.g. the model's per-class thresholds)."""
        p = self.params
        new_score = 0.0 if is_high else p.new_track_score  # per-class thresholds already judged them
        is_high = is_high or (lambda d: d.score >= p.high_score)
        high = [d for d in dets if is_high(d)]
        low = [d for d in dets if p.low_score <= d.score and not is_high(d)]
        seen: list[Track] = []
        pairs, left, new = self._match(self.tracks, high, t)
        for ti, di in pairs:
            seen.append(self._refresh(self.tracks[ti], high[di], t))
        rest = [self.tracks[i] for i in left]
        pairs2, _, _ = self._match(rest, low, t)
        for ti, di in pairs2:
            seen.append(self._refresh(rest[ti], low[di], t))
        for di in new:
            d = high[di]
            if d.score >= new_score:
                tr = Track(self._next_id, d.label, d.box, d.score, first_seen=t, last_seen=t)
                self._next_id += 1
                self.tracks.append(tr)
                seen.append(tr)
        self.tracks = [tr for tr in self.tracks if t - tr.last_seen <= p.max_age_s]
        live = {tr.track_id for tr in self.tracks}
        self._velocity = {k: v for k, v in self._velocity.items() if k in live}
        return seen

    def _refresh(self, tr: Track, d: Detection, t: float) -> Track:
        dt = t - tr.last_seen
        if dt > 0:
            v = (np.asarray(d.box, dtype=np.float32) - np.asarray(tr.box, dtype=np.float32)) / dt
            old = self._velocity.get(tr.track_id)
            self._velocity[tr.track_id] = v if old is None else 0.5 * old + 0.5 * v
        tr.box, tr.score, tr.last_seen, tr.hits = d.box, d.score, t, tr.hits + 1
        return tr
