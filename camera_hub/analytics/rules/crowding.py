"""人员聚集: at least ``min_people`` in the zone (or more people per m² than ``max_density_per_m2``
when the zone has an area) for ``min_duration_s``; ends once the count has stayed below
``end_ratio`` of the threshold for ``end_after_s``, so a crowd hovering at the threshold does
not open and close alerts."""

from __future__ import annotations

import math
from collections.abc import Sequence

from camera_hub.analytics.rules.hysteresis import Hysteresis, or_now
from camera_hub.analytics.zones import ZoneArea, normalised
from camera_hub.config import CrowdingRule
from camera_hub.events import Episode, Track

PERSON = "person"


def threshold(rule: CrowdingRule, area_m2: float | None) -> int:
    """People needed to call it a crowd in this zone."""
    if area_m2 and rule.max_density_per_m2:
        return max(2, math.ceil(rule.max_density_per_m2 * area_m2))
    return rule.min_people


class CrowdingState:
    def __init__(self, camera_id: str, zone: ZoneArea, rule: CrowdingRule, update_every_s: float = 10.0) -> None:
        self.camera_id, self.zone, self.rule = camera_id, zone, rule
        self.need = threshold(rule, zone.zone.area_m2)
        self.start_gate = Hysteresis(rule.min_duration_s, rule.end_after_s)
        self.end_gate = Hysteresis(0.0, rule.end_after_s)
        self.update_every_s = update_every_s
        self._started_at: float | None = None
        self._last_count = 0
        self._last_update = 0.0
        self.people = 0  # in the zone at the last sample

    @property
    def hot(self) -> bool:
        """A crowd is building (half the threshold or more) or an episode is open."""
        return self._started_at is not None or self.people * 2 >= self.need

    def step(self, tracks: Sequence[Track], t: float, width: int, height: int) -> list[Episode]:
        inside = [tr for tr in tracks if tr.label == PERSON and self.zone.holds(tr.box, width, height)]
        n = self.people = len(inside)
        boxes = tuple(normalised(tr.box, width, height, tr.label, tr.score) for tr in inside)
        if self._started_at is None:
            if self.start_gate.step(n >= self.need and self.zone.open_at(t), t) != "start":
                return []
            self._started_at = or_now(self.start_gate.onset, t)
            self.end_gate.reset()
            self.end_gate.step(True, t)
            self._last_count, self._last_update = n, t
            return [self._episode("start", t, n, boxes)]
        holding = n >= self.rule.end_ratio * self.need and self.zone.open_at(t)
        edge = self.end_gate.step(holding, t)
        if edge == "end":
            ep = self._episode("end", t, n, boxes)
            self._started_at = None
            self.start_gate.reset()
            return [ep]
        if holding and n != self._last_count and t - self._last_update >= self.update_every_s:
            self._last_count, self._last_update = n, t
            return [self._episode("update", t, n, boxes)]
        return []

    def _episode(self, kind, t: float, n: int, boxes) -> Episode:
        return Episode(kind, "crowding", self.camera_id, self.zone.id, or_now(self._started_at, t), t,
                       score=round(min(1.0, n / self.need), 3), count=n, boxes=boxes)
