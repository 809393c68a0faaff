import numpy as np
from rule_helpers import FRONTAGE, NOON, zone

from camera_hub.analytics.scheduler import DetectorScheduler
from camera_hub.events import Detection, Sample
from camera_hub.metrics import MOTION_SKIPPED


def sample(cam, t, motion):
    return Sample(cam, t, None, np.zeros((4, 4, 3), np.uint8), True, motion)


def test_static_scene_skipped_with_forced_minimum_rate():
    sch = DetectorScheduler(threshold=0.01, force_interval_s=10)
    before = MOTION_SKIPPED.labels(camera="camS")._value.get()
    ran = []
    for k in range(30):  # a sample every 2 s, static after the first
        run, skip = sch.split([sample("camS", 2.0 * k, 1.0 if k == 0 else 0.001)])
        for s in run:
            sch.remember(s.camera_id, [Detection("person", 0.9, (0, 0, 1, 1))])
            ran.append(s.t)
    assert ran == [0, 10, 20, 30, 40, 50]  # forced every 10 s
    assert MOTION_SKIPPED.labels(camera="camS")._value.get() - before == 24
    assert sch.last("camS")[0].label == "person"


def test_motion_or_unscored_sample_runs():
    sch = DetectorScheduler(threshold=0.01, force_interval_s=10)
    sch.split([sample("c", 0, 0.0)])
    sch.remember("c", [])
    run, skip = sch.split([sample("c", 2, 0.2), sample("c2", 2, 0.0)])
    assert [s.camera_id for s in run] == ["c", "c2"]
    run, skip = sch.split([sample("c", 4, None), sample("c", 5, 0.0)])
    assert [s.t for s in run] == [4] and [s.t for s in skip] == [5]


def test_zone_membership_uses_bottom_centre_and_hours():
    z = zone(FRONTAGE, hours="07:00-22:00")
    assert z.holds((290, 200, 310, 250), 640, 360)  # feet at y=250 (0.69): on the pavement
    assert not z.holds((290, 100, 310, 150), 640, 360)  # feet at 0.42: in the shop fronts
    assert not z.holds((0, 200, 20, 250), 640, 360)  # x centre 0.016: left of the zone
    assert z.open_at(NOON) and not z.open_at(NOON + 11 * 3600)  # 23:00 local
