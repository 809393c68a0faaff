"""Model format plugins behind one Protocol (:class:`ModelFormat`); add a format by adding a
module here and listing it in ``FORMATS``."""

from __future__ import annotations

from detectors.formats.base import ModelFormat, ModelIO, Raw
from detectors.formats.nanodet import NanodetFormat
from detectors.formats.ultralytics import UltralyticsFormat
from detectors.formats.yolox import YoloxFormat

FORMATS: dict[str, type[ModelFormat]] = {f.name: f for f in (YoloxFormat, UltralyticsFormat, NanodetFormat)}


def recognise(io: ModelIO) -> list[str]:
    """Names of every format whose output shapes fit ``io`` (one when unambiguous)."""
    return [name for name, f in FORMATS.items() if f.recognise(io)]


__all__ = ["FORMATS", "ModelFormat", "ModelIO", "Raw", "recognise"]
