"""Detectors on the shared models, loaded once per test session (skipped where assets are absent)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from detectors.detector import OnnxDetector, load_detector


@functools.cache
def _load(name: str) -> OnnxDetector:
    return load_detector(name)


@pytest.fixture
def yolox(assets: Path) -> OnnxDetector:
    return _load("yolox-nano")


@pytest.fixture
def nanodet(assets: Path) -> OnnxDetector:
    return _load("nanodet-m")


@pytest.fixture(params=["yolox-nano", "nanodet-m"])
def coco_model(request: pytest.FixtureRequest, assets: Path) -> OnnxDetector:
    return _load(request.param)
