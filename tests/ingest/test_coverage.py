"""Coverage: grids × camera states → ratios per level; time-weighted share; gauges."""

from __future__ import annotations

from ingest_helpers import city

from camera_hub import metrics
from camera_hub.coverage import CoverageTracker, coverage_report, export_coverage_metrics

URL = "rtsp://u:p@127.0.0.1:1/x"


def cfg():
    cams = [
        {"id": "camA", "main_url": URL, "grids": ["g0_0", "g0_1"]},
        {"id": "camB", "main_url": URL, "grids": ["g0_1"]},
        {"id": "camC", "main_url": URL, "grids": ["g1_0"]},
        {"id": "camD", "main_url": URL, "grids": ["g2_3"], "enabled": False},
    ]
    return city(cams, patrol_zones=[{"id": "pz1", "name": "Patrol 1", "grids": ["g0_0", "g1_0", "g2_0"]}],
                targets={"overall": 0.8, "categories": {"new_residential": 1.0}})


def test_up_and_degraded_cover_down_and_unknown_do_not() -> None:
    c = cfg()
    r = coverage_report(c, {"camA": "up", "camB": "down", "camC": "degraded", "camD": "up"}, now=100.0)
    assert (r.city.grids, r.city.covered) == (12, 3)  # g0_0, g0_1 (camA), g1_0 (camC); camD disabled
    comm = {u.unit: (u.covered, u.grids) for u in r.communities}
    assert comm == {"c0": (2, 4), "c1": (1, 4), "c2": (0, 4)}
    assert r.patrol_zones[0].covered == 2 and r.patrol_zones[0].ratio == 2 / 3
    cats = {u.unit: u for u in r.categories}
    assert (cats["new_residential"].covered, cats["new_residential"].target) == (2, 1.0)
    assert (cats["commercial"].covered, cats["commercial"].target) == (1, 0.8)
    assert r.districts[0].ratio == r.streets[0].ratio == 3 / 12
    assert "g2_0" in r.uncovered_grids and "g0_0" not in r.uncovered_grids

    # camA goes down: its grids stop counting at once, g0_1 is lost with it (camB is down too)
    r2 = coverage_report(c, {"camA": "down", "camB": "down", "camC": "degraded"}, now=101.0)
    assert r2.city.covered == 1
    # never connected (no state) = not covering
    assert coverage_report(c, {}, now=102.0).city.covered == 0


def test_time_weighted_share_over_the_window() -> None:
    t = CoverageTracker(window_s=100.0)
    t.observe(0.0, {"g": True, "h": False})
    t.observe(30.0, {"g": False, "h": False})
    t.observe(80.0, {"g": True, "h": False})
    assert t.share("g", 100.0) == (30 + 20) / 100
    assert t.share("h", 100.0) == 0.0
    # the window slides: at 150 it spans 50..150 and g was covered 80..150
    t.observe(150.0, {"g": True, "h": True})
    assert abs(t.share("g", 150.0) - 70 / 100) < 1e-9
    assert t.share("unknown", 150.0) is None
    # only changes are stored
    for i in range(1000):
        t.observe(150.0 + i, {"g": True, "h": True})
    assert len(t._changes["g"]) <= 3


def test_report_carries_the_24h_ratio_and_exports_gauges() -> None:
    c = cfg()
    tracker = CoverageTracker()
    coverage_report(c, {"camA": "up"}, tracker=tracker, now=0.0)
    r = coverage_report(c, {}, tracker=tracker, now=100.0)  # camA was up 0..100, then down
    comm0 = next(u for u in r.communities if u.unit == "c0")
    assert comm0.covered == 0 and comm0.ratio_24h == 2 / 4  # 2 of 4 grids covered the whole time
    export_coverage_metrics(r, c)
    assert metrics.COVERAGE_RATIO.labels(level="community", unit="c0", category="all")._value.get() == 0.0
    assert metrics.GRIDS_COVERED.labels(level="city", unit="testcity")._value.get() == 0
    assert metrics.COVERAGE_TARGET.labels(category="new_residential")._value.get() == 1.0
    r3 = coverage_report(c, {"camA": "up", "camC": "up"}, now=200.0)
    export_coverage_metrics(r3, c)
    assert metrics.COVERAGE_RATIO.labels(level="city", unit="testcity", category="all")._value.get() == 3 / 12
    assert not r3.city.meets_target


async def test_coverage_from_the_statuses_in_redis(redis_client, redis_prefix) -> None:
    import asyncio

    from camera_hub.coverage import current_coverage, export_coverage_forever
    from camera_hub.ingest.status import CameraStatus, write_states

    c = cfg()
    await write_states(redis_client, redis_prefix, [
        CameraStatus(camera_id="camA", state="up", since=1.0, updated_at=100.0),
        CameraStatus(camera_id="camC", state="down", reason="auth", since=1.0, updated_at=100.0)])
    r = await current_coverage(c, redis_client, redis_prefix, now=101.0)
    assert r.city.covered == 2 and "g1_0" in r.uncovered_grids
    # a status nobody refreshes any more (its worker died) stops covering
    assert (await current_coverage(c, redis_client, redis_prefix, now=1000.0)).city.covered == 0

    stop = asyncio.Event()
    task = asyncio.create_task(export_coverage_forever(c, redis_client, redis_prefix, stop, interval_s=0.05))
    await asyncio.sleep(0.2)
    stop.set()
    await task
    assert metrics.COVERAGE_TARGET.labels(category="all")._value.get() == 0.8
