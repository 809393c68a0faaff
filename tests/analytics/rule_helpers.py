"""Scripted tracks and zones for the rule tests (pure logic: no models, no I/O)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from camera_hub.analytics.zones import ZoneArea
from camera_hub.config import CityConfig, Zone
from camera_hub.events import Track

W, H = 640, 360
FRONTAGE = [(0.05, 0.52), (0.95, 0.52), (0.95, 0.80), (0.05, 0.80)]
SQUARE = [(0.10, 0.30), (0.90, 0.30), (0.90, 0.95), (0.10, 0.95)]
NOON = datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def zone(polygon=FRONTAGE, zone_id: str = "frontage", **kw) -> ZoneArea:
    return ZoneArea(Zone(id=zone_id, polygon=polygon, **kw))


def track(tid: int, label: str, cx: float, bottom: float, w: float = 40, h: float = 40, score: float = 0.8,
          t: float = NOON) -> Track:
    """A track whose box stands at (cx, bottom) in pixels of a 640x360 frame."""
    return Track(tid, label, (cx - w / 2, bottom - h, cx + w / 2, bottom), score, first_seen=t, last_seen=t)


def run(state, script, step_s: float = 2.0, t0: float = NOON):
    """Feed ``script(i, t) -> tracks`` every ``step_s``; return [(kind, t, episode)]."""
    out = []
    for i, t in enumerate(t0 + k * step_s for k in range(10_000)):
        tracks = script(i, t)
        if tracks is None:
            break
        for ep in state.step(tracks, t, W, H):
            out.append((ep.kind, t - t0, ep))
    return out


def city(cameras: list[dict], **detector) -> CityConfig:
    grid = {"id": "g1", "category": "commercial", "households": 300}
    return CityConfig.model_validate({
        "city": {"id": "c", "name": "C"},
        "districts": [{"id": "d", "name": "D", "streets": [{"id": "s", "name": "S", "communities": [
            {"id": "cm", "name": "CM", "grids": [grid]}]}]}],
        "cameras": [{"name": c["id"], "main_url": "rtsp://127.0.0.1:1/x", "location": {"lat": 30, "lon": 120},
                     "grids": ["g1"], **c} for c in cameras],
        "settings": {"detector": {"force_interval_s": 10, **detector}},
    })
