"""Vectorised non-maximum suppression in numpy (class-aware by coordinate offset)."""

from __future__ import annotations

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` [N,4] with every box in ``b`` [M,4] (x1,y1,x2,y2)."""
    a = a[:, None, :]
    b = b[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, class_ids: np.ndarray | None = None,
        max_det: int = 300) -> np.ndarray:
    """Indices of the boxes kept, best first. With ``class_ids``, boxes of different classes never
    suppress each other: each class is shifted to its own region of the plane, so one pass does all."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    b = boxes.astype(np.float32)
    if class_ids is not None:
        span = float(b.max() - min(b.min(), 0.0)) + 1.0
        b = b + (class_ids.astype(np.float32) * span)[:, None]
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    keep: list[int] = []
    while order.size and len(keep) < max_det:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        ious = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[ious <= iou]
    return np.asarray(keep, dtype=np.int64)
