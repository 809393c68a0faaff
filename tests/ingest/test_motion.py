"""MotionGate: static scenes score ~0, a moving object scores, forced runs keep coming."""

from __future__ import annotations

import numpy as np

from camera_hub.analytics.motion import MotionGate
from camera_hub.events import Sample


def frame(box: tuple[int, int] | None = None, noise: int = 0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((360, 640, 3), 90, np.uint8)
    img[:, :320] = 140  # some structure
    if noise:
        img = np.clip(img.astype(int) + rng.integers(-noise, noise + 1, img.shape), 0, 255).astype(np.uint8)
    if box:
        x, y = box
        img[y:y + 80, x:x + 60] = 250
    return img


def test_static_scene_scores_low_and_motion_scores_high() -> None:
    gate = MotionGate(threshold=0.01)
    assert gate.score(frame()) == 1.0  # first frame: nothing known yet
    for i in range(5):
        assert gate.score(frame(noise=4, seed=i)) < 0.005  # sensor noise is not motion
    assert gate.score(frame(box=(300, 150))) > 0.01


def test_should_detect_skips_static_scenes_but_forces_a_run() -> None:
    gate = MotionGate(threshold=0.01, force_interval_s=10.0)
    decisions = []
    for i in range(12):
        s = Sample("cam", t=float(i * 2), pts=None, frame=frame(noise=3, seed=i), keyframe=True)
        gate.update(s)
        decisions.append(gate.should_detect(s))
    # t=0 (first frame, forced), then static until the forced run at t=10 and t=20
    assert decisions == [True, False, False, False, False, True, False, False, False, False, True, False]
    moving = Sample("cam", t=23.0, pts=None, frame=frame(box=(100, 100)), keyframe=True)
    gate.update(moving)
    assert gate.should_detect(moving)


def test_a_new_resolution_resets_the_background() -> None:
    gate = MotionGate()
    gate.score(frame())
    assert gate.score(np.zeros((720, 1280, 3), np.uint8)) == 1.0
