"""Helpers for the detector tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def image(assets: Path, name: str) -> np.ndarray:
    img = cv2.imread(str(assets / "images" / name))
    assert img is not None, name
    return img


def people(dets) -> list:
    return [d for d in dets if d.label == "person"]
