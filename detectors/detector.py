"""The detector interface and its ONNX implementation: frames in, :class:`Detection` lists out.

``load_detector(MODEL)``: MODEL is a manifest name (``<name>.yaml`` on the manifest search path of
:mod:`camera_hub.paths`) or a path to an ``.onnx`` file. A manifest's sha256 and output shapes
are checked; a bare file whose hash matches a manifest gets that manifest; otherwise the format
is recognised from the output shapes and class names come from the model metadata (or COCO-80
when it has 80 classes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from camera_hub.config import DetectorSettings
from camera_hub.events import Detection
from detectors.formats import FORMATS, ModelFormat, ModelIO, recognise
from detectors.formats.ultralytics import UltralyticsFormat
from detectors.labels import COCO80
from detectors.manifest import (
    Manifest,
    ModelError,
    all_manifests,
    find_manifest,
    manifest_dirs,
    resolve_file,
    sha256_of,
    verify_file,
    verify_outputs,
)
from detectors.nms import nms
from detectors.preprocess import kept_buffer
from detectors.session import OnnxSession

log = logging.getLogger(__name__)


@runtime_checkable
class Detector(Protocol):
    """What the analyzer and the CLI use; any backend (ONNX, a remote server) can implement it."""

    name: str
    labels: list[str]
    input_size: tuple[int, int]

    def detect(self, frames: Sequence[np.ndarray], *, min_score: float | None = None) -> list[list[Detection]]:
        """One list of detections (boxes in pixels of that frame) per BGR frame."""
        ...


class OnnxDetector:
    def __init__(self, session: OnnxSession, fmt: type[ModelFormat], labels: list[str], *, name: str,
                 thresholds: np.ndarray, nms_iou: float = 0.45) -> None:
        self.session = session
        self.format = fmt
        self.labels = labels
        self.name = name
        self.input_size = session.input_size
        self.thresholds = thresholds  # per class
        self.nms_iou = nms_iou
        self._local = threading.local()  # per-thread input buffer: detect() may run on several

    def threshold(self, label: str) -> float:
        return float(self.thresholds[self.labels.index(label)]) if label in self.labels else 1.0

    def detect(self, frames: Sequence[np.ndarray], *, min_score: float | None = None) -> list[list[Detection]]:
        """``min_score`` lowers every class threshold to it (a tracker's second, low-score pass)."""
        thr = self.thresholds if min_score is None else np.minimum(self.thresholds, min_score)
        # a session batch at a time: a lookout's tiles (~50 crops a frame) through one input
        # buffer the size of the session's batch, not one grown to every crop of the call (1 MB a crop)
        step = self.session.max_batch
        return [dets for i in range(0, len(frames), step) for dets in self._detect(frames[i:i + step], thr)]

    def _detect(self, frames: Sequence[np.ndarray], thr: np.ndarray) -> list[list[Detection]]:
        size = self.input_size
        batch = self._batch(len(frames))
        tfs = [self.format.preprocess(f, size, batch[i])[1] for i, f in enumerate(frames)]
        raws = self.format.decode(self.session.run(batch), size)
        return [self._finish(raw.boxes, raw.scores, tf, thr) for raw, tf in zip(raws, tfs, strict=True)]

    def _batch(self, n: int) -> np.ndarray:
        """The input batch [n, 3, h, w], in a buffer kept per thread and grown to the largest
        batch seen (at most the session's): a detect allocates no model-sized arrays (see fit_into)."""
        w, h = self.input_size
        return kept_buffer(self._local, "batch", (n, 3, h, w), np.float32)

    def _finish(self, boxes: np.ndarray, scores: np.ndarray, tf, thr: np.ndarray) -> list[Detection]:
        cls = scores.argmax(axis=1)
        best = scores[np.arange(len(scores)), cls]
        ok = best >= thr[cls]
        boxes, best, cls = tf.to_frame(boxes[ok]), best[ok], cls[ok]
        big = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
        boxes, best, cls = boxes[big], best[big], cls[big]
        keep = nms(boxes, best, self.nms_iou, cls)
        return [Detection(self.labels[int(cls[i])], round(float(best[i]), 4),
                          tuple(round(float(v), 1) for v in boxes[i])) for i in keep]


def _io(session: OnnxSession) -> ModelIO:
    return ModelIO(session.input_size, session.output_shapes, session.metadata)


def _open(path: Path, settings: DetectorSettings) -> OnnxSession:
    try:
        return OnnxSession(path, providers=settings.providers, intra_threads=settings.intra_op_threads,
                           max_batch=settings.batch_size)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises several types for a bad file
        raise ModelError(f"{path.name} is not a loadable ONNX model: {exc}") from exc


def _pick_format(io: ModelIO, forced: str | None, what: str) -> type[ModelFormat]:
    if forced:
        if forced not in FORMATS:
            raise ModelError(f"unknown format {forced!r}; known: {', '.join(FORMATS)}")
        if not FORMATS[forced].recognise(io):
            raise ModelError(f"{what}: outputs {io.outputs} are not {forced} outputs for input {io.input_size}")
        return FORMATS[forced]
    found = recognise(io)
    if len(found) != 1:
        why = "ambiguous between " + ", ".join(found) if found else "no known format matches"
        raise ModelError(f"{what}: cannot tell the format from outputs {io.outputs} ({why}); pass --format")
    return FORMATS[found[0]]


def from_manifest(m: Manifest, settings: DetectorSettings, path: Path | None = None,
                  forced_format: str | None = None) -> OnnxDetector:
    path = path or resolve_file(m)
    verify_file(m, path)
    session = _open(path, settings)
    verify_outputs(m, session.output_shapes)
    io = _io(session)
    if tuple(m.input_size) != session.input_size:
        raise ModelError(f"model {m.name}: input {session.input_size} differs from the manifest's {m.input_size}")
    fmt = _pick_format(io, forced_format or m.format, f"model {m.name}")
    if (n := fmt.num_classes(io)) != len(m.classes):
        raise ModelError(f"model {m.name}: {n} classes in the outputs, {len(m.classes)} in the manifest")
    thr = np.array([m.threshold(c) for c in m.classes], dtype=np.float32)
    return OnnxDetector(session, fmt, list(m.classes), name=m.name, thresholds=thr, nms_iou=m.nms_iou)


def from_file(path: Path, settings: DetectorSettings, forced_format: str | None = None,
              score_threshold: float = 0.3) -> OnnxDetector:
    if not path.is_file() or path.suffix != ".onnx":
        raise ModelError(f"{path.name}: not an .onnx file")
    digest = sha256_of(path)
    for m in all_manifests():
        if m.sha256 == digest:
            return from_manifest(m, settings, path, forced_format)
    session = _open(path, settings)
    io = _io(session)
    fmt = _pick_format(io, forced_format, path.name)
    n = fmt.num_classes(io)
    labels = UltralyticsFormat.names(session.metadata) or (COCO80 if n == 80 else [f"class_{i}" for i in range(n)])
    if len(labels) != n:
        raise ModelError(f"{path.name}: metadata names {len(labels)} classes, the outputs have {n}")
    thr = np.full(n, score_threshold, dtype=np.float32)
    return OnnxDetector(session, fmt, labels, name=path.stem, thresholds=thr)


def load_detector(model: str, settings: DetectorSettings | None = None, *, format: str | None = None) -> OnnxDetector:
    """A detector for a manifest name or an ``.onnx`` path (see module doc)."""
    settings = settings or DetectorSettings()
    if model.endswith(".onnx"):
        return from_file(Path(model), settings, format)
    m = find_manifest(model)
    if m is None:
        where = ", ".join(str(d) for d in manifest_dirs())
        raise ModelError(f"no model manifest named {model!r} and not an .onnx path (searched {where} for "
                         f"{model}.yaml; pass --models DIR or set CAMERA_HUB_MANIFEST_PATH)")
    return from_manifest(m, settings, forced_format=format)
