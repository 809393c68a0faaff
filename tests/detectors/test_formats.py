"""Decoders on hand-made outputs, format recognition, and an Ultralytics-style ONNX built here."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from camera_hub.config import DetectorSettings
from detectors.detector import load_detector
from detectors.formats import FORMATS, ModelIO, recognise
from detectors.formats.nanodet import NanodetFormat
from detectors.formats.ultralytics import UltralyticsFormat
from detectors.formats.yolox import YoloxFormat
from detectors.manifest import ModelError
from detectors.preprocess import fill_input


def test_yolox_decode_one_cell():
    out = np.zeros((1, 3549, 7), np.float32)
    row = 52 * 52 + 3 * 26 + 5  # stride 16, cell (x=5, y=3)
    out[0, row] = [0.5, 0.5, np.log(2.0), np.log(4.0), 0.9, 0.1, 0.8]
    raw = YoloxFormat.decode({"output": out}, (416, 416))[0]
    np.testing.assert_allclose(raw.boxes[row], [88 - 16, 56 - 32, 88 + 16, 56 + 32], atol=1e-4)
    np.testing.assert_allclose(raw.scores[row], [0.09, 0.72], atol=1e-6)


def test_nanodet_decode_distribution_expectation():
    n8, n16, n32 = 1600, 400, 100
    outs = {f"cls_pred_stride_{s}": np.zeros((1, n, 2), np.float32) for s, n in ((8, n8), (16, n16), (32, n32))}
    outs |= {f"dis_pred_stride_{s}": np.full((1, n, 32), -50, np.float32) for s, n in ((8, n8), (16, n16), (32, n32))}
    # stride 32, cell (x=2, y=1): all mass on bin 1 for left/top, bin 3 for right/bottom
    d = outs["dis_pred_stride_32"][0, 1 * 10 + 2].reshape(4, 8)
    d[0, 1] = d[1, 1] = d[2, 3] = d[3, 3] = 50
    outs["cls_pred_stride_32"][0, 12] = [0.0, 0.7]
    raw = NanodetFormat.decode(outs, (320, 320))[0]
    i = n8 + n16 + 12
    cx, cy = 2.5 * 32, 1.5 * 32
    np.testing.assert_allclose(raw.boxes[i], [cx - 32, cy - 32, cx + 96, cy + 96], atol=1e-3)
    assert raw.scores[i, 1] == pytest.approx(0.7)


def test_ultralytics_decode_and_names():
    out = np.zeros((1, 6, 8400), np.float32)
    out[0, :, 7] = [100, 50, 20, 40, 0.1, 0.95]
    raw = UltralyticsFormat.decode({"output0": out}, (640, 640))[0]
    np.testing.assert_allclose(raw.boxes[7], [90, 30, 110, 70])
    assert UltralyticsFormat.names({"names": "{0: 'person', 1: 'goods'}"}) == ["person", "goods"]
    assert UltralyticsFormat.names({}) is None


@pytest.mark.parametrize(
    ("outputs", "size", "want"),
    [
        ({"output": [1, 3549, 85]}, (416, 416), ["yolox"]),
        ({"output": [1, 756, 6]}, (192, 192), ["yolox"]),
        ({"output0": [1, 84, 8400]}, (640, 640), ["ultralytics"]),
        ({f"{k}_pred_stride_{s}": [1, n, c] for k, c in (("cls", 80), ("dis", 32))
          for s, n in ((8, 1600), (16, 400), (32, 100))}, (320, 320), ["nanodet"]),
        ({"output": [1, 1000, 85]}, (416, 416), []),
    ],
)
def test_recognise_from_shapes(outputs, size, want):
    assert recognise(ModelIO(size, outputs, {})) == want


def test_letterbox_round_trip():
    frame = np.zeros((1080, 1920, 3), np.uint8)
    img, tf = fill_input(frame, (416, 416), None, centre=True)
    assert img.shape == (3, 416, 416)
    box = np.array([[0, tf.pad_y, 416, 416 - tf.pad_y]], np.float32)
    np.testing.assert_allclose(tf.to_frame(box), [[0, 0, 1920, 1080]], atol=1.0)


def _ultralytics_onnx(path: Path, batchable: bool = True) -> None:
    """A stand-in YOLOv8 export: output [1, 4+2, 8400] = a fixed tensor (+ 0 x the input, so the
    graph depends on it), with the exporter's ``names`` metadata. Not ``batchable``: the output
    ignores the batch dim, as a graph with a hard-wired batch of 1 would."""
    const = np.zeros((1, 6, 8400), np.float32)
    const[0, :, 100] = [320, 320, 64, 128, 0.05, 0.9]  # a "goods" box in the centre
    nodes = [
        helper.make_node("ReduceSum", ["images", "axes"], ["s4"], keepdims=1),  # [B,1,1,1]
        helper.make_node("Squeeze", ["s4", "last"], ["s"]),  # [B,1,1]
        helper.make_node("Mul", ["s" if batchable else "zero", "zero"], ["z"]),
        helper.make_node("Add", ["const", "z"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes, "fake-yolov8",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 8400])],
        [numpy_helper.from_array(const, "const"), numpy_helper.from_array(np.zeros((), np.float32), "zero"),
         numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes"),
         numpy_helper.from_array(np.array([3], np.int64), "last")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    helper.set_model_props(model, {"names": "{0: 'person', 1: 'goods'}"})
    onnx.save(model, str(path))


def test_ultralytics_model_file_end_to_end(tmp_path):
    path = tmp_path / "fake-yolov8.onnx"
    _ultralytics_onnx(path)
    det = load_detector(str(path), DetectorSettings())
    assert det.format is FORMATS["ultralytics"]
    assert det.labels == ["person", "goods"]
    assert det.session.batching == "rewritten"
    frame = np.zeros((320, 640, 3), np.uint8)  # half height: letterboxed with 160 px bands
    (d,) = det.detect([frame])[0]
    assert d.label == "goods" and d.score == pytest.approx(0.9)
    np.testing.assert_allclose(d.box, [288, 96, 352, 224], atol=0.5)
    with pytest.raises(ModelError, match="not nanodet outputs"):
        load_detector(str(path), format="nanodet")
    with pytest.raises(ModelError, match="unknown format"):
        load_detector(str(path), format="ssd")


def test_unbatchable_graph_falls_back_to_item_by_item(tmp_path):
    path = tmp_path / "fixed-batch.onnx"
    _ultralytics_onnx(path, batchable=False)
    det = load_detector(str(path))
    assert det.session.batching == "per-item"
    results = det.detect([np.zeros((320, 640, 3), np.uint8)] * 3)
    assert [len(r) for r in results] == [1, 1, 1]
