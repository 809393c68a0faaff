"""A frame number burnt into the simulator's picture, for measuring end-to-end delay: the camera
simulator stamps each frame of a scene loop with its index (``SimServer(stamp_frames=True)``),
and a viewer that decodes the picture reads it back and asks the simulator when that frame was
captured (:meth:`~camera_hub.sim.rtsp_server.SimServer.captured_at`), which is when it sends it:
the index stands for the timestamp a camera's on-screen clock would show, as the loop is encoded
once and sent on the wall clock.

The code is a row of 16-pixel squares at the top left, aligned to H.264's macroblocks so that
the encoder keeps them sharp: a white and a black marker, then ``BITS`` bits, most significant
first (white = 1). 18 squares: 288 pixels, within the narrowest stream (640x360).
"""

from __future__ import annotations

import numpy as np

BLOCK = 16
BITS = 16


def draw(img: np.ndarray, value: int) -> None:
    """Burn ``value`` (0 ≤ value < 2**BITS) into a BGR or grey picture, in place."""
    if not 0 <= value < 1 << BITS:
        raise ValueError(f"a stamp holds 0..{(1 << BITS) - 1}, not {value}")
    bits = [1, 0] + [(value >> (BITS - 1 - k)) & 1 for k in range(BITS)]
    for k, bit in enumerate(bits):
        img[:BLOCK, k * BLOCK:(k + 1) * BLOCK] = 255 if bit else 0


def read(luma: np.ndarray) -> int | None:
    """The value stamped in a picture's luma (Y plane, or grey), or None when there is no stamp."""
    if luma.shape[0] < BLOCK or luma.shape[1] < (BITS + 2) * BLOCK:
        return None
    q = BLOCK // 4  # the middle of each square: the encoder's ringing stays at the edges
    means = [float(luma[q:BLOCK - q, k * BLOCK + q:(k + 1) * BLOCK - q].mean()) for k in range(BITS + 2)]
    if means[0] < 160 or means[1] > 96:
        return None
    value = 0
    for m in means[2:]:
        value = (value << 1) | (m > 128)
    return value
