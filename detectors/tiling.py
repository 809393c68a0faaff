"""Tiled inference for lookout cameras: a wide 1080p frame shrunk to a 416 model input leaves a
person 20 px high at 4 px, below what any small detector sees. Overlapping tiles at the model's
input size keep native resolution; a full-frame pass still finds the large objects; boxes are
merged with class-aware NMS."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from camera_hub.events import Detection
from detectors.detector import Detector
from detectors.nms import nms

EDGE_PX = 2.0


def tile_grid(width: int, height: int, tile: tuple[int, int], overlap: float) -> list[tuple[int, int, int, int]]:
    """Tiles (x1, y1, x2, y2) of size ``tile`` covering the frame, neighbours overlapping by at
    least ``overlap`` of a tile; edge tiles are shifted inwards rather than padded."""
    tw, th = min(tile[0], width), min(tile[1], height)

    def starts(total: int, size: int) -> list[int]:
        if size >= total:
            return [0]
        n = math.ceil((total - size) / (size * (1 - overlap))) + 1
        return [round(i * (total - size) / (n - 1)) for i in range(n)]

    return [(x, y, x + tw, y + th) for y in starts(height, th) for x in starts(width, tw)]


def _inner_edge(box: tuple[float, ...], tile: tuple[int, int, int, int], w: int, h: int) -> bool:
    """True when the box touches a tile border that is not also the frame border: the object is
    cut there, and the overlapping neighbour (or the full-frame pass) sees it whole."""
    x1, y1, x2, y2 = box
    tx1, ty1, tx2, ty2 = tile
    return ((x1 <= tx1 + EDGE_PX and tx1 > 0) or (y1 <= ty1 + EDGE_PX and ty1 > 0)
            or (x2 >= tx2 - EDGE_PX and tx2 < w) or (y2 >= ty2 - EDGE_PX and ty2 < h))


Region = tuple[int, int, int, int]


def detect_tiled(detector: Detector, frames: Sequence[np.ndarray], *, overlap: float = 0.25, scale: float = 1.0,
                 full_frame: bool = True, iou: float = 0.45, min_score: float | None = None,
                 regions: Sequence[Region | None] | None = None) -> list[list[Detection]]:
    """Detections per frame from tiles of ``scale`` × the model input plus a full-frame pass, all
    in one batched detector call. ``regions`` (pixels, per frame) limits the tiles to the part
    of the view that any rule looks at."""
    tw, th = (round(s * scale) for s in detector.input_size)
    crops: list[np.ndarray] = []
    origin: list[tuple[int, tuple[int, int, int, int] | None]] = []
    for i, f in enumerate(frames):
        h, w = f.shape[:2]
        rx1, ry1, rx2, ry2 = (regions[i] if regions and regions[i] else None) or (0, 0, w, h)
        tiles = [(x1 + rx1, y1 + ry1, x2 + rx1, y2 + ry1)
                 for x1, y1, x2, y2 in tile_grid(rx2 - rx1, ry2 - ry1, (tw, th), overlap)]
        if len(tiles) == 1:
            crops.append(f)
            origin.append((i, None))
            continue
        for t in tiles:
            crops.append(f[t[1]:t[3], t[0]:t[2]])
            origin.append((i, t))
        if full_frame:
            crops.append(f)
            origin.append((i, None))
    found = detector.detect(crops, min_score=min_score)
    whole: list[list[Detection]] = [[] for _ in frames]
    parts: list[list[Detection]] = [[] for _ in frames]
    for (i, t), dets in zip(origin, found, strict=True):
        h, w = frames[i].shape[:2]
        for d in dets:
            if t is None:
                whole[i].append(d)
                continue
            box = (d.box[0] + t[0], d.box[1] + t[1], d.box[2] + t[0], d.box[3] + t[1])
            if not _inner_edge(box, t, w, h):
                parts[i].append(Detection(d.label, d.score, box))
    return [_merge(wh + _not_inside(pa, wh), iou) for wh, pa in zip(whole, parts, strict=True)]


def _not_inside(parts: list[Detection], whole: list[Detection], share: float = 0.5) -> list[Detection]:
    """Tile detections not mostly inside a full-frame one of the same label: a tile can see only
    the upper body of a large person, with a higher score than the whole-body box."""
    if not parts or not whole:
        return parts
    a = np.array([d.box for d in parts], dtype=np.float32)[:, None, :]
    b = np.array([d.box for d in whole], dtype=np.float32)[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    own = np.maximum((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]), 1e-9)
    same = np.array([[p.label == q.label for q in whole] for p in parts])
    inside = ((iw * ih / own >= share) & same).any(axis=1)
    return [p for p, gone in zip(parts, inside, strict=True) if not gone]


def _merge(dets: list[Detection], iou: float) -> list[Detection]:
    if not dets:
        return []
    boxes = np.array([d.box for d in dets], dtype=np.float32)
    scores = np.array([d.score for d in dets], dtype=np.float32)
    labels = sorted({d.label for d in dets})
    cls = np.array([labels.index(d.label) for d in dets])
    return [dets[i] for i in nms(boxes, scores, iou, cls)]
