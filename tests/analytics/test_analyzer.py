"""The analyzer with a real detector (YOLOX-nano) on real photos, as the worker drives it."""

from __future__ import annotations

import asyncio
import functools

import cv2
import numpy as np
import pytest
from rule_helpers import city

from camera_hub.analytics.analyzer import RESUME_S, Analyzer
from camera_hub.events import Sample
from camera_hub.metrics import INFERENCE_BATCH, MOTION_SKIPPED
from detectors.detector import load_detector

FULL = [[0, 0], [1, 0], [1, 1], [0, 1]]


@functools.cache
def _yolox():
    return load_detector("yolox-nano")


@pytest.fixture
def yolox(assets):
    return _yolox()


def crowd_camera(cam_id: str, kind: str = "community", min_people: int = 5) -> dict:
    return {"id": cam_id, "kind": kind, "zones": [{"id": "square", "polygon": FULL, "rules": [
        {"type": "crowding", "min_people": min_people, "min_duration_s": 10, "end_after_s": 10}]}]}


def img(assets, name):
    return cv2.imread(str(assets / "images" / name))


async def feed(an: Analyzer, frames: dict[str, np.ndarray], times, motion=None):
    out = []
    for t in times:
        out += await an.handle([Sample(cam, 1_780_000_000 + t, None, f, True, motion) for cam, f in frames.items()])
    return out


async def test_crowd_in_cctv_frame_raises_one_crowding_episode_batched_across_cameras(yolox, assets):
    an = Analyzer(city([crowd_camera("mall"), crowd_camera("street")]), yolox)
    batches = INFERENCE_BATCH.labels(model="yolox-nano")._sum.get()
    frames = {"mall": img(assets, "jetson_peds-007.png"), "street": img(assets, "jetson_peds_1.jpg")}
    eps = await feed(an, frames, range(0, 14, 2))
    assert [(e.kind, e.camera_id, e.t - 1_780_000_000) for e in eps] == [("start", "mall", 10)]
    start = eps[0]
    assert start.type == "crowding" and start.count >= 5 and start.frame is not None
    assert all(0 <= b[0] <= b[2] <= 1 and b[4] == "person" for b in start.boxes)
    assert INFERENCE_BATCH.labels(model="yolox-nano")._sum.get() - batches == 2 * 7  # both cameras per call


async def test_static_scene_skips_detector_but_keeps_counting(yolox, assets):
    an = Analyzer(city([crowd_camera("still")]), yolox)
    before = MOTION_SKIPPED.labels(camera="still")._value.get()
    eps = await feed(an, {"still": img(assets, "jetson_peds-008.png")}, range(0, 14, 2), motion=0.0)
    assert [e.kind for e in eps] == ["start"]  # tracks carried by the reused detections
    assert MOTION_SKIPPED.labels(camera="still")._value.get() - before == 5  # runs at 0 s and 10 s only
    assert an.scheduler.runs == 2


async def test_lookout_camera_needs_tiling_to_see_the_crowd(yolox, assets):
    small = cv2.resize(img(assets, "jetson_peds-007.png"), (384, 216), interpolation=cv2.INTER_AREA)
    wide = np.full((1080, 1920, 3), 90, np.uint8)
    wide[600:816, 800:1184] = small  # a far-away plaza: people 20-45 px high
    cam = crowd_camera("hill", kind="lookout")
    tiled = await feed(Analyzer(city([cam]), yolox), {"hill": wide}, range(0, 12, 2))
    untiled = await feed(Analyzer(city([cam], tile_lookout=False), yolox), {"hill": wide}, range(0, 12, 2))
    assert [e.kind for e in tiled] == ["start"] and tiled[0].count >= 5
    assert untiled == []


async def test_goods_on_pavement_is_vending_person_standing_there_is_not(yolox, assets):
    street = img(assets, "jetson_peds_1.jpg")  # a person standing beside a car, all afternoon
    with_goods = street.copy()
    with_goods[930:1060, 80:400] = (40, 140, 230)  # crates of oranges set out on the pavement
    cam = {"id": "shop", "zones": [{"id": "frontage", "polygon": [[0, 0.6], [1, 0.6], [1, 1], [0, 1]], "rules": [
        {"type": "vending", "min_dwell_s": 20, "end_after_s": 10, "classes": []}]}]}
    an = Analyzer(city([cam]), yolox)
    before = await feed(an, {"shop": street}, range(0, 60, 4))
    assert before == []  # the standing person never counts, however long
    during = await feed(an, {"shop": with_goods}, range(60, 120, 4))
    assert [(e.kind, e.type) for e in during] == [("start", "vending")]
    # onset when the crates appeared; alert within two sampling intervals of the dwell
    assert during[0].started_at - 1_780_000_000 in (60, 64)
    assert 80 <= during[0].t - 1_780_000_000 <= 80 + 2 * 4
    assert during[0].boxes[0][4] == "foreground"
    after = await feed(an, {"shop": street}, range(120, 160, 4))
    assert [e.kind for e in after] == ["end"]


async def test_offline_via_camera_state_and_tick(yolox):
    an = Analyzer(city([crowd_camera("c1")]), yolox)
    assert an.camera_state("c1", "down", 100.0, "timeout") == []
    assert an.tick(150.0) == []
    (ep,) = an.tick(221.0)  # default grace 120 s
    assert ep.type == "camera_offline" and ep.kind == "start" and ep.detail == "timeout"
    assert [e.kind for e in an.camera_state("c1", "up", 300.0)] == ["end"]


async def test_samples_of_one_camera_in_one_batch_keep_their_own_detections(yolox, assets):
    an = Analyzer(city([crowd_camera("mall")]), yolox)
    crowd = img(assets, "jetson_peds-007.png")
    empty = np.full_like(crowd, 128)
    t0 = 1_780_000_000.0
    await an.handle([Sample("mall", t0 + 2, None, crowd, True), Sample("mall", t0, None, empty, True)])
    tracks = an.cameras["mall"].tracker.tracks
    assert len(tracks) >= 5
    assert all(t.first_seen == t0 + 2 for t in tracks)  # nothing was seen in the empty frame at t0


async def test_overlapping_batches_reach_the_rules_in_order(yolox, assets):
    """The worker hands the analyzer a batch while the one before is still in the rules: the
    detector takes them one at a time and the rules in the order they came, so the outcome is
    the sequential one (a crowd that lasts 10 s raises its alert at the sample of +10 s)."""
    an = Analyzer(city([crowd_camera("mall")]), yolox)
    frame = img(assets, "jetson_peds-007.png")
    batches = [[Sample("mall", 1_780_000_000 + t, None, frame, True, None)] for t in range(0, 14, 2)]
    results = await asyncio.gather(*(an.handle(b) for b in batches))
    eps = [e for r in results for e in r]
    assert [(e.kind, e.t - 1_780_000_000) for e in eps] == [("start", 10)]
    assert [i for i, r in enumerate(results) if r] == [5]  # raised by the batch of +10 s itself


async def test_a_camera_back_within_the_hysteresis_keeps_its_analysis_later_it_starts_afresh(yolox, assets):
    """A Redis outage past the lease fence stops and retakes every camera on the same worker: back
    within RESUME_S its open episode goes on (as after a reconnect); after longer it starts again."""
    an = Analyzer(city([crowd_camera("mall")]), yolox)
    frames = {"mall": img(assets, "jetson_peds-007.png")}
    assert [e.kind for e in await feed(an, frames, range(0, 14, 2))] == ["start"]
    t_last = 1_780_000_000 + 12
    assert not an.resumes("other", t_last)  # never analysed here
    assert an.resumes("mall", t_last + RESUME_S)
    assert await feed(an, frames, range(14 + int(RESUME_S) - 2, 40, 2)) == []  # the crowd goes on: no new start
    assert not an.resumes("mall", 1_780_000_038 + RESUME_S + 1)
    an.forget("mall")
    assert [e.kind for e in await feed(an, frames, range(100, 114, 2))] == ["start"]  # afresh: a new episode
