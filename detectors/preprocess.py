"""Frame → model input: resize (letterbox or stretch), colour order, normalisation, CHW, written
into a batch buffer the detector keeps."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

_local = threading.local()


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


def kept_buffer(local: threading.local, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A view of ``shape`` into a buffer this thread keeps on ``local`` under ``name``, made
    anew only when its first dimension is too short (or the rest differs): a buffer that is
    reused allocates nothing (see :func:`fit_into`)."""
    buf = getattr(local, name, None)
    if buf is None or len(buf) < shape[0] or buf.shape[1:] != shape[1:] or buf.dtype != dtype:
        buf = np.empty(shape, dtype)
        setattr(local, name, buf)
    return buf[:shape[0]]


def downscale(img: np.ndarray, size: tuple[int, int], dst: np.ndarray | None = None) -> np.ndarray:
    """``img`` resized to ``size`` (w, h): halved with INTER_AREA while the target is at most half
    (OpenCV's integer-ratio area path, vectorised), then bilinear for the rest (at most 2×, where it reads
    every source pixel). Why not INTER_AREA in one step: at other ratios OpenCV takes a generic
    path, 1.39 ms for 640×360 → 384×216 against 0.17 ms bilinear, and 0.34 ms for → 160×90 against
    0.07 ms in two halvings (one thread). The detector sees the same: mAP@0.5 0.937 either way for
    sim-detector-int8 on the held-out frames (benchmarks/README.md, Model variants)."""
    w, h = size
    while True:  # each axis halved while it is at least twice the target (a stretch halves one only)
        ih, iw = img.shape[:2]
        fx, fy = 2 if iw >= 2 * w else 1, 2 if ih >= 2 * h else 1
        if fx == fy == 1:
            break
        img = cv2.resize(img[:ih - ih % fy, :iw - iw % fx], (iw // fx, ih // fy), interpolation=cv2.INTER_AREA)
    if img.shape[1] == w and img.shape[0] == h:
        if dst is None:
            return img
        dst[...] = img
        return dst
    return cv2.resize(img, (w, h), dst=dst, interpolation=cv2.INTER_LINEAR)


def fit_into(frame: np.ndarray, out: np.ndarray, *, keep_aspect: bool = True, fill: int = 114,
             centre: bool = False, rgb: bool = False, scale: float = 1.0,
             mean: tuple[float, float, float] | None = None,
             std: tuple[float, float, float] | None = None) -> Transform:
    """BGR HWC uint8 frame → ``out`` (CHW float32, the model's [3, h, w]): resized (letterboxed
    with ``fill`` when ``keep_aspect``, else stretched), optionally RGB, then ``x * scale``,
    ``(x - mean) / std`` per channel.

    Written in place, through one resize buffer per thread: the worker caps malloc's mmap
    threshold (camera_hub/runtime.py), so every temporary of a model input's size would be a fresh
    mapping and its page faults, ~30 % of the detector's time at batch 8 when each step allocated."""
    _, h, w = out.shape
    fh, fw = frame.shape[:2]
    if keep_aspect:
        sx = sy = min(w / fw, h / fh)
        nw, nh = max(1, round(fw * sx)), max(1, round(fh * sy))
        px, py = ((w - nw) // 2, (h - nh) // 2) if centre else (0, 0)
    else:
        sx, sy, nw, nh, px, py = w / fw, h / fh, w, h, 0, 0
    dst = kept_buffer(_local, "resized", (nh * nw * 3,), np.uint8).reshape(nh, nw, 3)
    small = downscale(frame, (nw, nh), dst)
    if nw < w or nh < h:
        out.fill(fill)
    out[:, py:py + nh, px:px + nw] = (small[:, :, ::-1] if rgb else small).transpose(2, 0, 1)
    if scale != 1.0:
        out *= scale
    if mean is not None:
        out -= np.asarray(mean, np.float32)[:, None, None]
    if std is not None:
        out /= np.asarray(std, np.float32)[:, None, None]
    return Transform(sx, sy, px, py, fw, fh)


def fill_input(frame: np.ndarray, size: tuple[int, int], out: np.ndarray | None,
               **how: Any) -> tuple[np.ndarray, Transform]:
    """:func:`fit_into` ``out``, or a new [3, h, w] array for ``size`` (w, h) when it is None."""
    if out is None:
        out = np.empty((3, size[1], size[0]), np.float32)
    return out, fit_into(frame, out, **how)
