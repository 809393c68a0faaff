"""YOLOX raw grid output: [B, cells(8,16,32), 5 + C], not decoded inside the graph."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from detectors.formats.base import ModelIO, Raw, dims, grid_cells, grid_rows
from detectors.preprocess import Transform, fill_input

STRIDES = (8, 16, 32)


class YoloxFormat:
    name: ClassVar[str] = "yolox"

    @staticmethod
    def recognise(io: ModelIO) -> bool:
        if len(io.outputs) != 1:
            return False
        d = dims(next(iter(io.outputs.values())))
        return d is not None and len(d) == 2 and d[0] == grid_rows(io.input_size, STRIDES) and d[1] > 5

    @staticmethod
    def num_classes(io: ModelIO) -> int:
        return int(next(iter(io.outputs.values()))[-1]) - 5

    @staticmethod
    def preprocess(frame: np.ndarray, size: tuple[int, int],
                   out: np.ndarray | None = None) -> tuple[np.ndarray, Transform]:
        # BGR, top-left paste on a 114 canvas, raw 0..255 (as YOLOX was trained)
        return fill_input(frame, size, out, fill=114)

    @staticmethod
    def decode(outputs: dict[str, np.ndarray], size: tuple[int, int]) -> list[Raw]:
        out = next(iter(outputs.values()))
        cells, strides = grid_cells(size, STRIDES)
        res = []
        for pred in out:
            xy = (pred[:, :2] + cells) * strides[:, None]
            wh = np.exp(np.minimum(pred[:, 2:4], 10.0)) * strides[:, None]
            boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
            res.append(Raw(boxes, pred[:, 5:] * pred[:, 4:5]))
        return res
