"""Where an alert's snapshot and clip live, and how the snapshot is drawn.

Paths are built here from a validated alert id only; nothing a client sends becomes a path.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from camera_hub.alerts.model import BoxOut, is_alert_id

_COLOURS = [(0, 0, 255), (0, 200, 255), (255, 128, 0), (0, 255, 0), (255, 0, 255)]


def media_path(data_dir: Path, alert_id: str, kind: str) -> Path:
    """``data_dir/snapshots/<id>.jpg`` or ``data_dir/clips/<id>.mp4``; ValueError for anything else."""
    if not is_alert_id(alert_id):
        raise ValueError(f"not an alert id: {alert_id!r}")
    folder, ext = {"snapshot": ("snapshots", ".jpg"), "clip": ("clips", ".mp4")}[kind]
    root = data_dir.resolve()
    path = (root / folder / f"{alert_id}{ext}").resolve()
    if root not in path.parents:  # cannot happen for a valid id; kept as a second lock
        raise ValueError("path escapes the data directory")
    return path


def snapshot_jpeg(frame: np.ndarray, boxes: list[BoxOut] | tuple[BoxOut, ...], quality: int = 85) -> bytes:
    """The frame with each box (0..1 coordinates) drawn and labelled."""
    img = frame.copy()
    h, w = img.shape[:2]
    thick = max(1, round(min(h, w) / 240))
    for i, (x1, y1, x2, y2, label, score) in enumerate(boxes):
        colour = _COLOURS[i % len(_COLOURS)]
        p1 = (int(x1 * w), int(y1 * h))
        p2 = (int(x2 * w), int(y2 * h))
        cv2.rectangle(img, p1, p2, colour, thick)
        text = f"{label} {score:.2f}"
        cv2.putText(img, text, (p1[0], max(p1[1] - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, colour,
                    thick, cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
