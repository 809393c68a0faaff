"""Coverage: the grid model × camera status → covered grids per community, street, district,
patrol zone, grid category and city, now and time-weighted over the last 24 h.

A grid is covered while at least one camera that watches it is ``up`` or ``degraded``; a camera
that is ``down`` (or never connected: no state at all) covers nothing, at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from camera_hub import metrics
from camera_hub.config import CityConfig
from camera_hub.ingest.status import COVERING, read_states

log = logging.getLogger(__name__)

Level = str  # "city" | "district" | "street" | "community" | "patrol_zone" | "category"
DAY_S = 24 * 3600.0


class CoverageUnit(BaseModel):
    level: Level
    unit: str  # id of the area, patrol zone or category ("city" id for the city)
    name: str = ""
    grids: int
    covered: int
    ratio: float  # covered / grids (0 for a unit without grids)
    target: float
    ratio_24h: float | None = None  # mean share of the last 24 h its grids were covered

    @property
    def meets_target(self) -> bool:
        return self.ratio >= self.target


class CoverageReport(BaseModel):
    at: float
    city: CoverageUnit
    districts: list[CoverageUnit]
    streets: list[CoverageUnit]
    communities: list[CoverageUnit]
    patrol_zones: list[CoverageUnit]
    categories: list[CoverageUnit]
    uncovered_grids: list[str]

    def units(self) -> Iterable[CoverageUnit]:
        yield self.city
        for group in (self.districts, self.streets, self.communities, self.patrol_zones, self.categories):
            yield from group


class CoverageTracker:
    """Integrates covered time per grid over a sliding window (24 h by default).

    Only changes are stored, so memory grows with flaps, not with calls. The share is taken
    over the part of the window the tracker has observed (a tracker started an hour ago
    reports the share of that hour)."""

    def __init__(self, window_s: float = DAY_S) -> None:
        self.window_s = window_s
        self._changes: dict[str, deque[tuple[float, bool]]] = {}
        self._first: float | None = None

    def observe(self, now: float, covered: Mapping[str, bool]) -> None:
        if self._first is None:
            self._first = now
        for grid, is_covered in covered.items():
            changes = self._changes.setdefault(grid, deque())
            if not changes or changes[-1][1] != is_covered:
                changes.append((now, is_covered))
            # keep the last change before the window start: it is the state at the start
            while len(changes) > 1 and changes[1][0] <= now - self.window_s:
                changes.popleft()

    def share(self, grid: str, now: float) -> float | None:
        changes = self._changes.get(grid)
        if not changes or self._first is None:
            return None
        start = max(now - self.window_s, self._first)
        if now <= start:
            return 1.0 if changes[-1][1] else 0.0
        covered_s = 0.0
        for i, (t, is_covered) in enumerate(changes):
            end = changes[i + 1][0] if i + 1 < len(changes) else now
            if is_covered:
                covered_s += max(0.0, min(end, now) - max(t, start))
        return covered_s / (now - start)


def covered_grids(cfg: CityConfig, states: Mapping[str, str]) -> dict[str, bool]:
    """Grid id → covered, from camera states (camera id → state; missing = never connected)."""
    out = {g.id: False for _, _, _, g in cfg.grids()}
    for cam in cfg.cameras:
        if cam.enabled and states.get(cam.id) in COVERING:
            for g in cam.grids:
                if g in out:
                    out[g] = True
    return out


def coverage_report(cfg: CityConfig, states: Mapping[str, str], *, tracker: CoverageTracker | None = None,
                    now: float | None = None) -> CoverageReport:
    """Coverage now (and over 24 h when a tracker is given; this call also feeds it)."""
    now = time.time() if now is None else now
    covered = covered_grids(cfg, states)
    if tracker is not None:
        tracker.observe(now, covered)
    targets = cfg.coverage_targets

    def unit(level: Level, uid: str, name: str, grids: list[str], target: float) -> CoverageUnit:
        n, c = len(grids), sum(covered[g] for g in grids)
        shares = [s for g in grids if (s := tracker.share(g, now) if tracker else None) is not None]
        return CoverageUnit(level=level, unit=uid, name=name, grids=n, covered=c, ratio=c / n if n else 0.0,
                            target=target, ratio_24h=sum(shares) / len(shares) if shares else None)

    districts, streets, communities = [], [], []
    by_category: dict[str, list[str]] = defaultdict(list)
    for d in cfg.districts:
        d_grids = []
        for s in d.streets:
            s_grids = []
            for c in s.communities:
                c_grids = [g.id for g in c.grids]
                for g in c.grids:
                    by_category[g.category].append(g.id)
                communities.append(unit("community", c.id, c.name, c_grids, targets.overall))
                s_grids += c_grids
            streets.append(unit("street", s.id, s.name, s_grids, targets.overall))
            d_grids += s_grids
        districts.append(unit("district", d.id, d.name, d_grids, targets.overall))
    return CoverageReport(
        at=now,
        city=unit("city", cfg.city.id, cfg.city.name, list(covered), targets.overall),
        districts=districts,
        streets=streets,
        communities=communities,
        patrol_zones=[unit("patrol_zone", p.id, p.name, [g for g in p.grids if g in covered], targets.overall)
                      for p in cfg.patrol_zones],
        categories=[unit("category", cat, cat, grids, targets.categories.get(cat, targets.overall))  # type: ignore[call-overload]
                    for cat, grids in sorted(by_category.items())],
        uncovered_grids=sorted(g for g, ok in covered.items() if not ok),
    )


def export_coverage_metrics(report: CoverageReport, cfg: CityConfig) -> None:
    """Publish a report as Prometheus gauges (``camera_hub_coverage_ratio{level,unit,category}``)."""
    for u in report.units():
        category = u.unit if u.level == "category" else "all"
        metrics.COVERAGE_RATIO.labels(level=u.level, unit=u.unit, category=category).set(u.ratio)
        metrics.GRIDS_COVERED.labels(level=u.level, unit=u.unit).set(u.covered)
    metrics.COVERAGE_TARGET.labels(category="all").set(cfg.coverage_targets.overall)
    for cat, target in cfg.coverage_targets.categories.items():
        metrics.COVERAGE_TARGET.labels(category=cat).set(target)


async def current_coverage(cfg: CityConfig, redis: Any, prefix: str, *, tracker: CoverageTracker | None = None,
                           now: float | None = None) -> CoverageReport:
    """Coverage from the camera statuses the ingest workers keep in Redis (one pipeline)."""
    statuses = await read_states(redis, prefix, [c.id for c in cfg.cameras], now=now)
    return coverage_report(cfg, {cid: st.state for cid, st in statuses.items()}, tracker=tracker, now=now)


async def export_coverage_forever(cfg: CityConfig, redis: Any, prefix: str, stop: asyncio.Event, *,
                                  interval_s: float = 10.0, tracker: CoverageTracker | None = None) -> None:
    """Refresh the coverage gauges every ``interval_s`` until ``stop`` (run it in one process,
    e.g. the API): it also feeds the 24 h tracker."""
    tracker = tracker or CoverageTracker()
    while not stop.is_set():
        try:
            export_coverage_metrics(await current_coverage(cfg, redis, prefix, tracker=tracker), cfg)
        except Exception as exc:  # noqa: BLE001 - Redis away: keep the last gauges, try again
            log.warning("coverage refresh failed: %s", type(exc).__name__)
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            pass
