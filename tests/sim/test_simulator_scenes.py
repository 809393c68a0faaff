"""Scene scripts and the renderer: deterministic frames, boxes and ground truth that agree
with the script, the contract's scene geometry, and camera → scene mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from shapely.geometry import Point, Polygon

from camera_hub.config import Camera
from camera_hub.sim.scenes import (
    SQUARE_SCENES,
    STREET_SCENES,
    ZONES,
    SceneRenderer,
    builtin_scenes,
    load_script,
    scene_for_camera,
)

CONTRACT_SCENES = {"street_vending", "street_quiet", "square_crowd", "square_quiet", "street_tamper",
                   "street_moved", "street_night", "lookout"}
W, H = 320, 180


def feet_in(zone: str, box: tuple[float, float, float, float], w: int, h: int) -> bool:
    x = (box[0] + box[2]) / 2 / w
    return Polygon(ZONES[zone]).contains(Point(x, box[3] / h - 0.005))


def people_in(zone: str, boxes: list, w: int = W, h: int = H) -> int:
    return sum(1 for label, b in boxes if label == "person" and feet_in(zone, b, w, h))


def test_contract_scenes_exist_and_loop_180s() -> None:
    assert CONTRACT_SCENES <= set(builtin_scenes())
    for name in CONTRACT_SCENES:
        script = load_script(name)
        assert script.loop_s == 180 and script.name == name


def test_renderer_is_deterministic() -> None:
    for name in ("street_vending", "square_crowd", "lookout"):
        a, b = SceneRenderer(name, W, H), SceneRenderer(name, W, H)
        for i in (0, 455, 1234):
            (fa, ba), (fb, bb) = a.frame(i), b.frame(i)
            assert np.array_equal(fa, fb) and ba == bb
    other = SceneRenderer("street_vending", W, H, seed=7)
    assert not np.array_equal(other.frame(455)[0], SceneRenderer("street_vending", W, H).frame(455)[0])


def test_frames_have_the_size_and_labels_asked() -> None:
    labels: set[str] = set()
    for name in builtin_scenes():
        r = SceneRenderer(name, W, H)
        for i in range(0, r.frame_count, max(1, r.frame_count // 12)):
            img, boxes = r.frame(i)
            assert img.shape == (H, W, 3) and img.dtype == np.uint8
            for label, (x0, y0, x1, y1) in boxes:
                assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
                labels.add(label)
    assert labels == {"person", "goods", "stall", "vehicle"}


def test_vending_goods_are_there_exactly_in_the_episode() -> None:
    r = SceneRenderer("street_vending", W, H)
    (ep,) = r.episodes()
    assert (ep.type, ep.zone_id, ep.start, ep.end) == ("vending", "frontage", 20, 120)
    assert {lb for lb, _ in ep.boxes} == {"stall", "goods"}
    for lb, (x0, y0, x1, y1) in ep.boxes:  # standing in the frontage zone
        assert feet_in("frontage", (x0 * W, y0 * H, x1 * W, y1 * H), W, H), lb
    for t, present in ((10, False), (19.5, False), (30, True), (110, True), (125, False)):
        _, boxes = r.frame(int(t * 10))
        assert any(lb in ("goods", "stall") for lb, _ in boxes) == present, t


def test_quiet_street_has_a_stander_but_no_episode() -> None:
    r = SceneRenderer("street_quiet", W, H)
    assert r.episodes() == []
    a, b = r.frame(500)[1], r.frame(800)[1]  # 50 s and 80 s: the stander barely moves
    still = [pa for pa in a if pa[0] == "person" and any(abs(pa[1][0] - pb[1][0]) <= 2 and pa[1][3] == pb[1][3]
                                                         for pb in b if pb[0] == "person")]
    assert still and all(lb not in ("goods", "stall") for lb, _ in a + b)


def test_crowd_is_at_least_ten_people_in_the_square_during_the_episode() -> None:
    r = SceneRenderer("square_crowd", W, H)
    (ep,) = r.episodes()
    assert (ep.type, ep.zone_id, ep.start, ep.end) == ("crowding", "square", 30, 100)
    assert len(ep.boxes) >= 10
    for t in range(31, 100, 7):
        assert people_in("square", r.frame(t * 10)[1]) >= 10, t
    assert people_in("square", r.frame(150 * 10)[1]) < 8


def test_quiet_square_never_has_more_than_four_people() -> None:
    r = SceneRenderer("square_quiet", W, H)
    assert r.episodes() == []
    assert max(people_in("square", r.frame(i)[1]) for i in range(0, r.frame_count, 10)) <= 4


def test_lookout_people_are_15_to_30_px_high_at_1080p() -> None:
    r = SceneRenderer("lookout", 1920, 1080)
    (ep,) = r.episodes()
    assert (ep.type, ep.zone_id, ep.start, ep.end) == ("crowding", "square", 40, 120)
    _, boxes = r.frame(800)
    heights = [b[3] - b[1] for lb, b in boxes if lb == "person" and b[1] > 0 and b[3] < 1080]
    assert len(heights) >= 20 and min(heights) >= 14 and max(heights) <= 31
    assert people_in("square", boxes, 1920, 1080) >= 20


def test_tamper_scenes() -> None:
    covered = SceneRenderer("street_tamper", W, H)
    assert [(e.type, e.reason, e.start, e.end) for e in covered.episodes()] == [("tamper", "covered", 60, 100)]
    img, boxes = covered.frame(800)
    assert img.mean() < 40 and img.std() < 10 and boxes == []
    assert covered.frame(500)[0].std() > 30

    moved = SceneRenderer("street_moved", W, H)
    assert [(e.type, e.reason, e.start, e.end) for e in moved.episodes()] == [("tamper", "moved", 90, 180)]
    before, after = moved.background, moved.frame(1200)[0]
    # the static street no longer lines up with where it was
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 25
    assert np.abs(moved.frame(300)[0].astype(int) - before.astype(int)).mean() < 10


def test_night_is_dark_and_still_vending() -> None:
    night = SceneRenderer("street_night", W, H)
    kinds = {e.type: e for e in night.episodes()}
    assert set(kinds) == {"night", "vending"} and (kinds["night"].start, kinds["night"].end) == (0, 180)
    day = SceneRenderer("street_vending", W, H)
    assert night.frame(400)[0].mean() < 0.6 * day.frame(400)[0].mean()


def test_scene_for_camera_follows_rules_and_is_stable() -> None:
    def cam(cid: str, kind: str = "community", rule: str | None = None) -> Camera:
        zones = [{"id": "z", "polygon": [[0, 0], [1, 0], [1, 1]], "rules": [{"type": rule}]}] if rule else []
        return Camera.model_validate({"id": cid, "name": cid, "kind": kind, "main_url": "rtsp://h/x",
                                      "location": {"lat": 0, "lon": 0}, "grids": ["g"], "zones": zones})

    assert scene_for_camera(cam("a", "lookout", "crowding")) == "lookout"
    picks = {scene_for_camera(cam(f"cam-{i:04d}", rule="vending")) for i in range(60)}
    assert picks == set(STREET_SCENES)
    assert {scene_for_camera(cam(f"cam-{i:04d}", rule="crowding")) for i in range(60)} == set(SQUARE_SCENES)
    assert scene_for_camera(cam("cam-0042", rule="vending")) == scene_for_camera(cam("cam-0042", rule="vending"))


def test_bad_scripts_are_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    goods = "goods:\n  - {kind: crate, x: 0.5, y: 0.7, start: 2, end: 12}\n"
    bad.write_text("name: bad\nlayout: street\nloop_s: 10\n" + goods)
    with pytest.raises(ValidationError, match="after the loop"):
        load_script(bad)
    bad.write_text("name: bad\nlayout: street\nloop_s: 10\nsurprise: 1\n")
    with pytest.raises(ValidationError, match="surprise"):
        load_script(bad)
    for name in ("../etc/passwd", "no_such_scene", "a/b"):
        with pytest.raises(ValueError):
            load_script(name)


def test_cameras_are_commissioned_aimed_right() -> None:
    """No camera starts inside a tamper effect or just before one (its reference is learned from
    its first views); the offsets still spread over the rest of the loop."""
    from camera_hub.sim.scenes import COMMISSION_S, camera_offset_s, scene_effects

    for scene in ("street_moved", "street_tamper"):
        effects = scene_effects(scene)
        offsets = [camera_offset_s(f"cam-{i:04d}", effects=effects) for i in range(1000)]
        assert all(not (s - COMMISSION_S <= o < e) for o in offsets for s, e in effects)
        assert len(set(offsets)) >= 30
    assert camera_offset_s("cam-0001") == camera_offset_s("cam-0001", effects=())
