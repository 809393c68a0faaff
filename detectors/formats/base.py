"""The one interface every model format implements (a plugin per format, as Frigate does)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from detectors.preprocess import Transform

Shape = list[int | str | None]


@dataclass(frozen=True, slots=True)
class ModelIO:
    """What the session says about a model: input size and output names/shapes, in order."""

    input_size: tuple[int, int]  # w, h
    outputs: dict[str, Shape]
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class Raw:
    """Decoded candidates of one image: boxes on the model canvas and a score per class."""

    boxes: np.ndarray  # [N,4] x1,y1,x2,y2 canvas pixels
    scores: np.ndarray  # [N,C] final per-class scores 0..1


class ModelFormat(Protocol):
    name: ClassVar[str]

    @staticmethod
    def recognise(io: ModelIO) -> bool:
        """True when the output shapes are this format's for this input size."""
        ...

    @staticmethod
    def num_classes(io: ModelIO) -> int: ...

    @staticmethod
    def preprocess(frame: np.ndarray, size: tuple[int, int],
                   out: np.ndarray | None = None) -> tuple[np.ndarray, Transform]:
        """BGR frame → CHW float32 input (written into ``out`` when given, a [3, h, w] view of
        the detector's batch buffer) and the transform that maps boxes back."""
        ...

    @staticmethod
    def decode(outputs: dict[str, np.ndarray], size: tuple[int, int]) -> list[Raw]:
        """Batched raw outputs by name → one :class:`Raw` per image."""
        ...


def grid_cells(size: tuple[int, int], strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Cell (x, y) indices and the stride of every row of a stride-8/16/32 head, row-major."""
    w, h = size
    cells, st = [], []
    for s in strides:
        gy, gx = np.mgrid[0:h // s, 0:w // s]
        cells.append(np.stack([gx.ravel(), gy.ravel()], axis=1))
        st.append(np.full(gx.size, s))
    return np.concatenate(cells).astype(np.float32), np.concatenate(st).astype(np.float32)


def grid_rows(size: tuple[int, int], strides: tuple[int, ...] = (8, 16, 32)) -> int:
    w, h = size
    return sum((w // s) * (h // s) for s in strides)


def dims(shape: Shape) -> list[int] | None:
    """Shape with the batch dim dropped, or None when another dim is symbolic."""
    rest = shape[1:]
    return [int(d) for d in rest] if all(isinstance(d, int) for d in rest) else None
