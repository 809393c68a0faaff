"""Frame → model input: resize (letterbox or stretch), colour order, normalisation, CHW."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class Transform:
    """How a frame was mapped onto the model canvas; :meth:`to_frame` maps boxes back."""

    sx: float  # canvas px per frame px, x
    sy: float
    pad_x: float
    pad_y: float
    frame_w: int
    frame_h: int

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        out = boxes.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.sx
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.sy
        np.clip(out[:, [0, 2]], 0, self.frame_w, out=out[:, [0, 2]])
        np.clip(out[:, [1, 3]], 0, self.frame_h, out=out[:, [1, 3]])
        return out


def letterbox(frame: np.ndarray, size: tuple[int, int], *, fill: int = 114,
              centre: bool = False) -> tuple[np.ndarray, Transform]:
    """Resize keeping aspect ratio so the frame fits ``size`` (w, h); pad the rest with ``fill``."""
    w, h = size
    fh, fw = frame.shape[:2]
    r = min(w / fw, h / fh)
    nw, nh = max(1, round(fw * r)), max(1, round(fh * r))
    canvas = np.full((h, w, 3), fill, dtype=np.uint8)
    px, py = ((w - nw) // 2, (h - nh) // 2) if centre else (0, 0)
    interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
    canvas[py:py + nh, px:px + nw] = cv2.resize(frame, (nw, nh), interpolation=interp)
    return canvas, Transform(r, r, px, py, fw, fh)


def stretch(frame: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Transform]:
    """Resize to ``size`` ignoring aspect ratio (how NanoDet is usually fed)."""
    w, h = size
    fh, fw = frame.shape[:2]
    interp = cv2.INTER_AREA if w < fw else cv2.INTER_LINEAR
    return cv2.resize(frame, (w, h), interpolation=interp), Transform(w / fw, h / fh, 0, 0, fw, fh)


def to_chw(img: np.ndarray, *, rgb: bool, mean: tuple[float, float, float] | None = None,
           std: tuple[float, float, float] | None = None, scale: float = 1.0) -> np.ndarray:
    """HWC uint8 BGR → CHW float32, optionally RGB, scaled, then (x - mean) / std per channel."""
    x = img[:, :, ::-1] if rgb else img
    x = x.astype(np.float32)
    if scale != 1.0:
        x *= scale
    if mean is not None:
        x -= np.asarray(mean, dtype=np.float32)
    if std is not None:
        x /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
