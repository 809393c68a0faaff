"""Ultralytics YOLOv8 / YOLO11 ONNX export: [B, 4 + C, N] (cx, cy, w, h in input pixels, then
class scores already through a sigmoid); class names in the model metadata ``names``."""

from __future__ import annotations

import ast
from typing import ClassVar

import numpy as np

from detectors.formats.base import ModelIO, Raw, dims, grid_rows
from detectors.preprocess import Transform, fill_input

STRIDES = (8, 16, 32)


class UltralyticsFormat:
    name: ClassVar[str] = "ultralytics"

    @staticmethod
    def recognise(io: ModelIO) -> bool:
        if len(io.outputs) != 1:
            return False
        d = dims(next(iter(io.outputs.values())))
        return d is not None and len(d) == 2 and d[1] == grid_rows(io.input_size, STRIDES) and d[0] > 4

    @staticmethod
    def num_classes(io: ModelIO) -> int:
        return int(next(iter(io.outputs.values()))[1]) - 4

    @staticmethod
    def names(metadata: dict[str, str]) -> list[str] | None:
        """``{0: 'person', 1: 'bicycle', ...}`` as written by the exporter."""
        text = metadata.get("names")
        if not text:
            return None
        try:
            names = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        if isinstance(names, dict):
            return [str(names[k]) for k in sorted(names)]
        return [str(n) for n in names] if isinstance(names, list) else None

    @staticmethod
    def preprocess(frame: np.ndarray, size: tuple[int, int],
                   out: np.ndarray | None = None) -> tuple[np.ndarray, Transform]:
        return fill_input(frame, size, out, fill=114, centre=True, rgb=True, scale=1 / 255)

    @staticmethod
    def decode(outputs: dict[str, np.ndarray], size: tuple[int, int]) -> list[Raw]:
        res = []
        for pred in next(iter(outputs.values())):
            p = pred.T  # [N, 4 + C]
            cxcy, wh = p[:, :2], p[:, 2:4]
            res.append(Raw(np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1), p[:, 4:]))
        return res
