"""NanoDet(-m): per stride ``cls_pred_stride_S`` [B, N, C] (scores 0..1) and ``dis_pred_stride_S``
[B, N, 4 * (reg_max + 1)]: each box side is the expectation of a softmax over the bins, times the
stride, measured from the cell centre (generalised focal loss "distribution" regression)."""

from __future__ import annotations

import re
from typing import ClassVar

import numpy as np

from detectors.formats.base import ModelIO, Raw, dims
from detectors.preprocess import Transform, fill_input

MEAN = (103.53, 116.28, 123.675)
STD = (57.375, 57.12, 58.395)


def _heads(io: ModelIO) -> list[tuple[int, str, str]] | None:
    """(stride, cls output, dis output) for each stride, or None when the outputs are not NanoDet's."""
    cls = {int(m[1]): n for n in io.outputs if (m := re.fullmatch(r"cls_pred_stride_(\d+)", n))}
    dis = {int(m[1]): n for n in io.outputs if (m := re.fullmatch(r"dis_pred_stride_(\d+)", n))}
    if not cls or set(cls) != set(dis) or len(io.outputs) != 2 * len(cls):
        return None
    w, h = io.input_size
    for s in cls:
        c, d = dims(io.outputs[cls[s]]), dims(io.outputs[dis[s]])
        n = -(-w // s) * -(-h // s)
        if c is None or d is None or c[0] != n or d[0] != n or d[1] % 4:
            return None
    return [(s, cls[s], dis[s]) for s in sorted(cls)]


class NanodetFormat:
    name: ClassVar[str] = "nanodet"

    @staticmethod
    def recognise(io: ModelIO) -> bool:
        return _heads(io) is not None

    @staticmethod
    def num_classes(io: ModelIO) -> int:
        return int(next(v for k, v in io.outputs.items() if k.startswith("cls_pred"))[-1])

    @staticmethod
    def preprocess(frame: np.ndarray, size: tuple[int, int],
                   out: np.ndarray | None = None) -> tuple[np.ndarray, Transform]:
        # keep the aspect ratio: on the test photos this scored people higher and boxed them
        # tighter (IoU with YOLOX-nano 0.88-0.94) than stretching the frame to the square input
        return fill_input(frame, size, out, fill=0, mean=MEAN, std=STD)

    @staticmethod
    def decode(outputs: dict[str, np.ndarray], size: tuple[int, int]) -> list[Raw]:
        w, h = size
        batch = next(iter(outputs.values())).shape[0]
        res_boxes: list[list[np.ndarray]] = [[] for _ in range(batch)]
        res_scores: list[list[np.ndarray]] = [[] for _ in range(batch)]
        strides = sorted(int(n.rsplit("_", 1)[1]) for n in outputs if n.startswith("cls_pred_stride_"))
        for s in strides:
            cls, dis = outputs[f"cls_pred_stride_{s}"], outputs[f"dis_pred_stride_{s}"]
            gw = -(-w // s)
            idx = np.arange(cls.shape[1])
            cx = ((idx % gw + 0.5) * s).astype(np.float32)
            cy = ((idx // gw + 0.5) * s).astype(np.float32)
            bins = dis.shape[2] // 4
            d = dis.reshape(batch, dis.shape[1], 4, bins)
            d = np.exp(d - d.max(axis=-1, keepdims=True))
            d /= d.sum(axis=-1, keepdims=True)
            dist = (d @ np.arange(bins, dtype=np.float32)) * s  # [B, N, 4]: left, top, right, bottom
            boxes = np.stack([cx - dist[..., 0], cy - dist[..., 1], cx + dist[..., 2], cy + dist[..., 3]], axis=-1)
            for b in range(batch):
                res_boxes[b].append(boxes[b])
                res_scores[b].append(cls[b])
        return [Raw(np.concatenate(bx), np.concatenate(sc)) for bx, sc in zip(res_boxes, res_scores, strict=True)]
