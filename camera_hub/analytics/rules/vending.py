"""店外经营/占道经营: goods or a stall (classes from config, or — class-agnostic — a persistent
foreground mass that is neither a person nor a vehicle) standing still in a frontage zone longer
than ``min_dwell_s``, inside the zone's hours. People never count: a person standing in the
frontage is a person, whatever they do; the foreground mass is computed with people masked out.

Dwell belongs to the place, not to the track: the rule keeps the spots where a counted object came
to rest, and an object seen at a spot (IoU at least ``REST_IOU`` with the box it settled with)
carries that spot's dwell, whatever its track id or label. A passer-by in front of a stall cuts
its box short or gets the tracker to swap ids for a sample or two; the stall standing there must
not start its dwell again (that made alerts late, and ended open ones early). Something carried
along lands on a new spot every sample and never builds up dwell; a spot not seen for
``end_after_s`` is forgotten. Class-agnostic masses come from
:class:`camera_hub.analytics.foreground.ForegroundModel` with their own onset (kept per pixel
there), already at least ``min_dwell_s`` old.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from camera_hub.analytics.labels import FOREGROUND, PERSON, VEHICLE
from camera_hub.analytics.rules.hysteresis import Hysteresis, or_now
from camera_hub.analytics.zones import ZoneArea, normalised
from camera_hub.config import VendingRule
from camera_hub.events import Box, Episode, Track
from detectors.nms import iou_matrix

REST_IOU = 0.5
# A class-agnostic mass this much taller than wide is more likely a standing person the detector
# missed than goods or a stall (which are wide, or square); it never counts on its own.
PERSON_ASPECT = 1.6


@dataclass(slots=True)
class _Rest:
    """A spot where a counted object came to rest."""

    box: Box  # as it settled
    since: float
    seen: float


Mass = tuple[Box, float]  # box in pixels, onset
Item = tuple[Box, str, float, float]  # box, label, score, resting since


def counted_labels(rule: VendingRule) -> frozenset[str]:
    """Detector classes that count: never people or vehicles, whatever the config lists."""
    return frozenset(set(rule.classes) - PERSON - VEHICLE)


class VendingState:
    def __init__(self, camera_id: str, zone: ZoneArea, rule: VendingRule, update_every_s: float = 30.0) -> None:
        self.camera_id, self.zone, self.rule = camera_id, zone, rule
        self.labels = counted_labels(rule)
        self.gate = Hysteresis(0.0, rule.end_after_s)
        self.update_every_s = update_every_s
        self._rests: list[_Rest] = []
        self._started_at: float | None = None
        self._last_count = 0
        self._last_update = 0.0

    @property
    def hot(self) -> bool:
        """Something counted rests in the zone, or an episode is open."""
        return self.gate.active or bool(self._rests)

    def _dwelling(self, tracks: Sequence[Track], t: float, width: int, height: int) -> list[Item]:
        """Objects of a counted class in the zone, big enough, with the time something came to rest
        where they stand."""
        min_px = self.rule.min_area * width * height
        out = []
        for tr in tracks:
            if tr.label not in self.labels or not self.zone.holds(tr.box, width, height):
                continue
            if (tr.box[2] - tr.box[0]) * (tr.box[3] - tr.box[1]) < min_px:
                continue
            rest = self._rest_at(tr.box)
            if rest is None:
                rest = _Rest(tr.box, t, t)
                self._rests.append(rest)
            rest.seen = t
            out.append((tr.box, tr.label, tr.score, rest.since))
        # a spot whose object is hidden for a moment (a passer-by in front of it) keeps its dwell
        self._rests = [r for r in self._rests if t - r.seen <= self.rule.end_after_s]
        return out

    def _rest_at(self, box: Box) -> _Rest | None:
        """The spot this box stands on (best IoU, at least ``REST_IOU``), if any."""
        if not self._rests:
            return None
        iou = iou_matrix(np.array([r.box for r in self._rests]), np.array([box]))
        k = int(iou[:, 0].argmax())
        return self._rests[k] if iou[k, 0] >= REST_IOU else None

    def step(self, tracks: Sequence[Track], t: float, width: int, height: int,
             masses: Sequence[Mass] = ()) -> list[Episode]:
        items = self._dwelling(tracks, t, width, height)
        if self.rule.class_agnostic:
            min_px = self.rule.min_area * width * height
            items += [(box, FOREGROUND, 1.0, since) for box, since in masses
                      if self.zone.holds(box, width, height) and (box[2] - box[0]) * (box[3] - box[1]) >= min_px
                      and (box[3] - box[1]) <= PERSON_ASPECT * (box[2] - box[0])]
        long = [it for it in items if t - it[3] >= self.rule.min_dwell_s]
        live = self.zone.open_at(t)
        edge = self.gate.step(bool(long) and live, t)
        if not live and self.gate.active:
            edge = self.gate.reset()  # the zone's hours are over: the episode ends now
        boxes = tuple(normalised(box, width, height, label, score) for box, label, score, _ in long)
        if edge == "start":
            self._started_at = min(since for *_, since in long)
            self._last_count, self._last_update = len(long), t
            return [self._episode("start", t, long, boxes)]
        if edge == "end":
            ep = self._episode("end", t, long, boxes)
            self._started_at = None
            return [ep]
        if edge == "hold" and long and len(long) != self._last_count and t - self._last_update >= self.update_every_s:
            self._last_count, self._last_update = len(long), t
            return [self._episode("update", t, long, boxes)]
        return []

    def _episode(self, kind, t: float, long: list[Item], boxes) -> Episode:
        score = max((it[2] for it in long), default=0.0)
        return Episode(kind, "vending", self.camera_id, self.zone.id, or_now(self._started_at, t), t,
                       score=round(score, 3), count=len(long), boxes=boxes)
