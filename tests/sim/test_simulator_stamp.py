"""The frame number the simulator burns into its picture for end-to-end delay
(camera_hub/sim/stamp.py): it survives the simulator's own H.264 encoding, and the simulator says
when it sent the frame with a given number."""

from __future__ import annotations

import time
from fractions import Fraction

import av
import numpy as np
import pytest

from camera_hub.sim import stamp
from camera_hub.sim.rtsp_server import SimCameraSpec, SimServer


@pytest.mark.parametrize("size", [(640, 360), (1920, 1080)])
def test_the_stamp_survives_h264_at_the_simulators_settings(size: tuple[int, int]) -> None:
    w, h = size
    rng = np.random.default_rng(3)
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base = Fraction(1, 25)
    enc.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline", "crf": "26"}
    values = [0, 1, 149, 4095, 65535, 21845, 43690]
    packets = []
    for i, v in enumerate(values):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # noise: the hardest picture around it
        stamp.draw(img, v)
        frame = av.VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts = i
        packets += enc.encode(frame)
    packets += enc.encode(None)
    dec = av.CodecContext.create("h264", "r")
    decoded = [f for p in packets for f in dec.decode(p)] + list(dec.decode(None))
    assert [stamp.read(f.to_ndarray(format="gray")) for f in decoded] == values
    assert stamp.read(np.full((h, w), 128, np.uint8)) is None  # no stamp: no number
    with pytest.raises(ValueError):
        stamp.draw(np.zeros((h, w, 3), np.uint8), 1 << stamp.BITS)


async def test_captured_at_is_when_the_simulator_showed_that_frame(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sim = SimServer([SimCameraSpec("a", "smoke", offset_s=1.5)], control_port=None, fps=10, cache_dir=tmp_path,
                    stamp_frames=True)
    await sim.start()
    try:
        n = 60  # the smoke loop: 6 s at 10 fps
        t0 = sim.started_at
        now = t0 + 10.25  # global frame 102 on show; the camera started 15 frames in: index 57
        assert sim.captured_at("a", 57, now) == pytest.approx(t0 + 10.2)
        assert sim.captured_at("a", 50, now) == pytest.approx(t0 + 9.5)
        assert sim.captured_at("a", 58, now) == pytest.approx(t0 + 10.3 - n / 10)  # not yet: the loop before
        assert sim.captured_at("a", 14, t0 + 4.25) is None  # not shown since the server started
        assert abs(sim.captured_at("a", (15 + int((time.time() - t0) * 10)) % n) - time.time()) < 0.2
    finally:
        await sim.stop()
