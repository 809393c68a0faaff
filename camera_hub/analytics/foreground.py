"""Class-agnostic occupancy: what has stood in the scene, unmoving, that the learned empty
background lacks — with people and vehicles masked out. It lets the vending rule work without a
model that knows "goods" or "stall": a table of fruit or a rack of clothes is a persistent mass.

- The empty background is the per-pixel median of the first ``warmup`` samples (people walking
  through vanish in a median), then a running average of a small colour image (colour: orange
  crates on grey paving can have the paving's brightness). Pixels that differ learn ``slow``
  times more slowly, so goods left out for an hour are not absorbed, while lighting drift is.
- Persistence is kept per pixel, not per blob: a passer-by in front of a stall splits its blob
  into pieces of every shape, but the pixels under the passer-by (masked) keep their age, for
  up to ``occlusion_s``.
- A pixel a person or vehicle covered in the last ``mover_memory_s`` does not start a mass: a
  person standing still whom the detector misses in one sample must not become "goods".
- A "ghost" — the background holds something that has since gone, e.g. goods that were out
  when the camera started — has its outline in the background, not in the frame; an object that
  arrived has it in the frame. A blob whose outline is weaker in the frame than in the
  background is learned into the background at once instead of being reported. Every blob is
  judged so on every sample, whatever its age: a ghost left standing (under a busy pavement its
  pixels start late, after ``mover_memory_s``) would lend its old onset to goods set out again
  in the same place — an alert dated before the goods were there.
- Only ``region`` (0..1 image coordinates: the vending zones and the room above them where a
  stall stands) is modelled, at the same pixel density as a ``width``-wide whole frame: a
  frontage band is a third of a street view, so a third of the cost and memory. Times are kept as
  float32 seconds since the model's first sample (0.01 s resolution after a day), half of float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from camera_hub.analytics.labels import PERSON, VEHICLE
from camera_hub.events import Box, Detection
from detectors.preprocess import downscale


def _edges(img: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
    return np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1))


CANDIDATE_AREA = 0.002  # share of the frame standing out that makes the camera worth a closer look
Region = tuple[float, float, float, float]  # x1, y1, x2, y2 in 0..1 of the frame
WHOLE: Region = (0.0, 0.0, 1.0, 1.0)


class ForegroundModel:
    def __init__(self, *, region: Region = WHOLE, width: int = 160, delta: float = 25.0, alpha: float = 0.05,
                 slow: float = 50.0, warmup: int = 5, gap_s: float = 10.0, occlusion_s: float = 30.0,
                 mover_memory_s: float = 20.0) -> None:
        self.region = region
        self.width, self.delta, self.alpha, self.slow = width, delta, alpha, slow
        self.warmup, self.gap_s, self.occlusion_s, self.mover_memory_s = warmup, gap_s, occlusion_s, mover_memory_s
        self._t0: float | None = None  # times are float32 seconds since this
        self._bg: np.ndarray | None = None
        self._early: list[np.ndarray] = []  # uint8 warm-up images
        self._since: np.ndarray | None = None  # when each pixel became foreground (nan: it is not)
        self._last: np.ndarray | None = None  # when it was last seen foreground or hidden by a mover
        self._seen: np.ndarray | None = None  # when it was last seen foreground
        self._mover: np.ndarray | None = None  # when a person or vehicle last covered it
        self._small: np.ndarray | None = None  # the last sample's crop, uint8 (a quarter of float32)
        self._scale = (1.0, 1.0)
        self.candidate = False  # something has stood out of the background lately (min_area or more)
        self._offset = (0, 0)  # the region's top left, frame pixels
        self._frame_px = 1.0  # the whole frame's area in model pixels (min_area is a share of it)

    @property
    def nbytes(self) -> int:
        arrays = (self._bg, self._since, self._last, self._seen, self._mover, self._small, *self._early)
        return sum(a.nbytes for a in arrays if a is not None)

    @property
    def ready(self) -> bool:
        return self._bg is not None

    def _crop(self, frame: np.ndarray) -> np.ndarray:
        """The region of the frame, scaled to the model's density; sets the mapping back."""
        h, w = frame.shape[:2]
        x1, y1, x2, y2 = self.region
        px1, py1 = int(x1 * w), int(y1 * h)
        px2, py2 = max(px1 + 1, int(np.ceil(x2 * w))), max(py1 + 1, int(np.ceil(y2 * h)))
        k = self.width / w
        sw, sh = max(1, round((px2 - px1) * k)), max(1, round((py2 - py1) * k))
        self._scale, self._offset = (sw / (px2 - px1), sh / (py2 - py1)), (px1, py1)
        self._frame_px = w * h * self._scale[0] * self._scale[1]
        return cv2.GaussianBlur(downscale(frame[py1:py2, px1:px2], (sw, sh)), (3, 3), 0)

    def update(self, frame: np.ndarray, dets: Sequence[Detection], t: float) -> None:
        if self._t0 is None:
            self._t0 = t
        t = np.float32(t - self._t0)
        small8 = self._crop(frame)
        sh, sw = small8.shape[:2]
        if self._bg is not None and self._bg.shape != small8.shape:
            self._bg, self._early = None, []
        if self._bg is None:
            self._early.append(small8)
            if len(self._early) >= self.warmup:
                self._bg = np.median(np.stack(self._early), axis=0).astype(np.float32)
                self._since = np.full((sh, sw), np.nan, np.float32)
                self._last = np.full((sh, sw), -np.inf, np.float32)
                self._seen = np.full((sh, sw), -np.inf, np.float32)
                self._mover = np.full((sh, sw), -np.inf, np.float32)
                self._early = []
            return
        self._small = small8
        small = small8.astype(np.float32)
        movers = self._movers(dets, sw, sh)
        # the threshold scales down with the background's brightness: at night, goods on dark
        # paving differ from it by fewer grey levels than they do by day
        delta = np.clip(0.2 * self._bg.max(axis=2), self.delta / 2, self.delta)
        diff = np.abs(small - self._bg).max(axis=2) > delta
        fg = (diff & ~movers).astype(np.uint8)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)).astype(bool)
        since, last, seen, mover = self._since, self._last, self._seen, self._mover
        assert since is not None and last is not None and seen is not None and mover is not None
        mover[movers] = t
        since[fg & np.isnan(since) & (t - mover > self.mover_memory_s)] = t
        last[fg], seen[fg] = t, t
        # hidden behind someone: still there, as far as we know, for a while
        last[movers & ~np.isnan(since) & (t - seen <= self.occlusion_s)] = t
        since[~np.isnan(since) & (t - last > self.gap_s)] = np.nan
        rate = np.where(diff, self.alpha / self.slow, self.alpha).astype(np.float32)
        rate[movers] = 0.0
        self._bg += rate[:, :, None] * (small - self._bg)
        alive = ~np.isnan(since) & (last >= t - self.gap_s)
        self._absorb_ghosts(alive)
        self.candidate = int(np.count_nonzero(alive & ~np.isnan(since))) >= CANDIDATE_AREA * self._frame_px

    def _is_ghost(self, blob: np.ndarray, edges_now: np.ndarray, edges_bg: np.ndarray) -> bool:
        """Its outline is weaker in the frame than in the background: what the background shows
        there has left."""
        b8 = blob.astype(np.uint8)
        outline = (cv2.dilate(b8, np.ones((3, 3), np.uint8)) - cv2.erode(b8, np.ones((3, 3), np.uint8))) > 0
        return bool(edges_now[outline].sum() < edges_bg[outline].sum())

    def _forget(self, blob: np.ndarray) -> None:
        assert self._bg is not None and self._small is not None and self._since is not None
        self._bg[blob] = self._small[blob]
        self._since[blob] = np.nan

    def _absorb_ghosts(self, alive: np.ndarray) -> None:
        """Learn every ghost blob into the background now (young ones too)."""
        if not alive.any():
            return
        assert self._bg is not None and self._small is not None
        n, labels = cv2.connectedComponents(alive.astype(np.uint8), connectivity=8)
        edges_now, edges_bg = _edges(self._small), _edges(self._bg)
        for k in range(1, n):
            blob = labels == k
            if self._is_ghost(blob, edges_now, edges_bg):
                self._forget(blob)

    def _movers(self, dets: Sequence[Detection], sw: int, sh: int) -> np.ndarray:
        movers = np.zeros((sh, sw), bool)
        kx, ky = self._scale
        ox, oy = self._offset
        for d in dets:
            if d.label in PERSON or d.label in VEHICLE:
                x1, y1, x2, y2 = d.box
                px, py = 0.15 * (x2 - x1), 0.1 * (y2 - y1)  # shadows, loose clothing
                r1, r2 = int((y1 - py - oy) * ky), int((y2 + py - oy) * ky) + 1
                c1, c2 = int((x1 - px - ox) * kx), int((x2 + px - ox) * kx) + 1
                if r2 > 0 and c2 > 0:
                    movers[max(0, r1):r2, max(0, c1):c2] = True
        return movers

    def masses(self, t: float, min_age_s: float = 0.0, min_area: float = 0.002) -> list[tuple[Box, float]]:
        """(box in frame pixels, onset) of each blob of pixels foreground for ``min_age_s`` or more;
        onset is the median time its pixels became foreground; ``min_area`` is a share of the frame."""
        if self._since is None or self._last is None or self._bg is None or self._small is None or self._t0 is None:
            return []
        t = np.float32(t - self._t0)
        since = self._since
        alive = ~np.isnan(since) & (self._last >= t - self.gap_s)
        old = alive & (t - np.nan_to_num(since, nan=t) >= min_age_s)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(old.astype(np.uint8), connectivity=8)
        kx, ky = self._scale
        ox, oy = self._offset
        out: list[tuple[Box, float]] = []
        edges_now = edges_bg = None
        for k in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[k])
            if area / self._frame_px < min_area:
                continue
            blob = labels == k
            if edges_now is None:
                edges_now, edges_bg = _edges(self._small), _edges(self._bg)
            if self._is_ghost(blob, edges_now, edges_bg):
                self._forget(blob)
                continue
            box = (ox + x / kx, oy + y / ky, ox + (x + bw) / kx, oy + (y + bh) / ky)
            onset = self._t0 + float(np.median(since[blob]))
            out.append((tuple(round(float(v), 1) for v in box), round(onset, 2)))
        return out
