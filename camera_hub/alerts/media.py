"""Where an alert's snapshot and clip live, and how the snapshot is drawn.

Paths are built here from a validated alert id only; nothing a client sends becomes a path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from camera_hub.alerts.model import BoxOut, is_alert_id

_ZONE_COLOUR = (255, 255, 0)  # cyan: unlike any box colour
_COLOURS = [(0, 0, 255), (0, 200, 255), (255, 128, 0), (0, 255, 0), (255, 0, 255)]


def media_path(data_dir: Path, alert_id: str, kind: str) -> Path:
    """``data_dir/snapshots/<id>.jpg`` (at the alert), ``data_dir/onsets/<id>.jpg`` (at the onset) or
    ``data_dir/clips/<id>.mp4``; ValueError for anything else."""
    if not is_alert_id(alert_id):
        raise ValueError(f"not an alert id: {alert_id!r}")
    folder, ext = {"snapshot": ("snapshots", ".jpg"), "onset": ("onsets", ".jpg"), "clip": ("clips", ".mp4")}[kind]
    root = data_dir.resolve()
    path = (root / folder / f"{alert_id}{ext}").resolve()
    if root not in path.parents:  # cannot happen for a valid id; kept as a second lock
        raise ValueError("path escapes the data directory")
    return path


def snapshot_jpeg(frame: np.ndarray, boxes: list[BoxOut] | tuple[BoxOut, ...], quality: int = 85,
                  zone: Sequence[tuple[float, float]] | None = None) -> bytes:
    """The frame with the rule's zone outlined (0..1 polygon; skipped when it is the whole view)
    and each box (0..1 coordinates) drawn and labelled."""
    img = frame.copy()
    h, w = img.shape[:2]
    thick = max(1, round(min(h, w) / 240))
    if zone is not None and len(zone) >= 3 and not _whole_view(zone):
        pts = np.array([(round(x * w), round(y * h)) for x, y in zone], np.int32)
        cv2.polylines(img, [pts], True, _ZONE_COLOUR, thick, cv2.LINE_AA)
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


def _whole_view(zone: Sequence[tuple[float, float]]) -> bool:
    xs, ys = [x for x, _ in zone], [y for _, y in zone]
    return min(xs) <= 0.01 and min(ys) <= 0.01 and max(xs) >= 0.99 and max(ys) >= 0.99 and len(zone) == 4


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
