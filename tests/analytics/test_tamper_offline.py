import cv2
import numpy as np

from camera_hub.analytics.rules.offline import OfflineState
from camera_hub.analytics.rules.tamper import TamperState
from camera_hub.config import TamperRule

RULE = TamperRule(type="tamper", min_duration_s=10)


def scene(shift: int = 0) -> np.ndarray:
    """A textured street: random blocks (shop signs, windows) that a moved camera sees elsewhere."""
    rng = np.random.default_rng(3)
    img = np.full((360, 640, 3), 110, np.uint8)
    for _ in range(60):
        x, y = rng.integers(0, 600), rng.integers(0, 330)
        img[y:y + rng.integers(10, 40), x:x + rng.integers(10, 60)] = rng.integers(0, 255, 3)
    return np.roll(img, (shift, shift * 2), axis=(0, 1)) if shift else img


def feed(state, frames, step=2.0):
    out = []
    for i, f in enumerate(frames):
        out += [(e.kind, i * step, e.detail) for e in state.step(f, i * step)]
    return out


def test_normal_scene_no_alert():
    assert feed(TamperState("c", RULE), [scene()] * 30) == []


def test_covered_lens_for_longer_than_min_duration():
    covered = np.full((360, 640, 3), 12, np.uint8)
    eps = feed(TamperState("c", RULE), [scene()] * 5 + [covered] * 10 + [scene()] * 10)
    assert eps == [("start", 20.0, "covered"), ("end", 48.0, "")] or eps[0] == ("start", 20.0, "covered")
    assert [e[0] for e in eps] == ["start", "end"]


def test_blip_shorter_than_min_duration_ignored():
    covered = np.full((360, 640, 3), 12, np.uint8)
    assert feed(TamperState("c", RULE), [scene()] * 5 + [covered] * 4 + [scene()] * 10) == []


def test_defocused_moved_and_dark():
    blurred = cv2.GaussianBlur(scene(), (0, 0), 6)
    eps = feed(TamperState("c", RULE), [scene()] * 5 + [blurred] * 8)
    assert eps and eps[0][0] == "start" and eps[0][2] == "defocused"
    eps = feed(TamperState("c", RULE), [scene()] * 5 + [scene(shift=70)] * 8)
    assert eps and eps[0][2] == "moved"
    dark = (scene().astype(np.float32) * 0.1).astype(np.uint8)
    eps = feed(TamperState("c", RULE), [scene()] * 5 + [dark] * 8)
    assert eps and eps[0][2] == "dark"


def test_people_walking_by_is_not_moved():
    frames = []
    for i in range(20):
        f = scene()
        f[150:330, 30 * i:30 * i + 50] = (30, 30, 30)  # a person crossing
        frames.append(f)
    assert feed(TamperState("c", RULE), frames) == []


def test_offline_after_grace_and_back_up():
    st = OfflineState("cam9", grace_s=120)
    assert st.step(0.0, "up") == []
    assert st.step(10.0, "down", "timeout") == []
    assert st.step(100.0) == []  # a tick inside the grace period
    (start,) = st.step(130.0)
    assert start.kind == "start" and start.type == "camera_offline" and start.started_at == 10.0
    assert start.detail == "timeout"
    assert st.step(200.0, "down") == []  # still down: no second alert
    (end,) = st.step(300.0, "up")
    assert end.kind == "end" and end.key == start.key


def test_offline_reconnect_within_grace_is_silent():
    st = OfflineState("cam9", grace_s=120)
    assert st.step(10.0, "down") == [] and st.step(60.0, "starting") == [] and st.step(70.0, "up") == []
    assert st.step(500.0) == []
