"""The trainer's output layout is the one the project's YOLOX decoder reads: an (untrained) model
exported by models/train_sim.py, loaded through the detectors package, decodes to the same boxes
as the trainer's own decode. Needs the optional ``train`` extra (torch); skipped without it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ts():
    spec = importlib.util.spec_from_file_location("train_sim", REPO / "models" / "train_sim.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["train_sim"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_export_decodes_like_training(ts, tmp_path):
    from camera_hub.config import DetectorSettings
    from detectors.detector import from_file
    from detectors.formats.yolox import YoloxFormat

    torch.manual_seed(0)
    net = ts.SimDetector()
    for p in net.pred:  # spread the raw outputs so the comparison means something
        torch.nn.init.normal_(p.weight, std=0.05)
    out = tmp_path / "sim-detector.onnx"
    ts.finish(net, out)
    det = from_file(out, DetectorSettings())
    assert det.format is YoloxFormat and det.labels == ts.CLASSES
    assert det.input_size == (ts.INPUT_W, ts.INPUT_H)
    x = np.random.default_rng(1).uniform(0, 255, (2, 3, ts.INPUT_H, ts.INPUT_W)).astype(np.float32)
    raw = det.session.run(x)
    ours = det.format.decode(raw, det.input_size)
    with torch.no_grad():
        logits = net.eval()(torch.from_numpy(x))
    theirs = ts.decode(logits).numpy()
    probs = torch.sigmoid(logits[..., 4:5]) * torch.sigmoid(logits[..., 5:])
    for i in range(2):
        np.testing.assert_allclose(ours[i].boxes, theirs[i], rtol=1e-4, atol=1e-2)
        np.testing.assert_allclose(ours[i].scores, probs[i].numpy(), atol=1e-5)
    manifest = (tmp_path / "sim-detector.yaml").read_text()
    assert "format: yolox" in manifest and "output: [1, 1764, 9]" in manifest


def test_every_box_gets_a_positive_cell(ts):
    boxes = np.array([[10, 10, 16, 30], [100, 50, 200, 200], [300, 100, 380, 220], [50, 60, 52, 64]], np.float32)
    owner, _ = ts.assign(boxes, np.array([0, 2, 3, 1]))
    assert set(owner[owner >= 0]) == {0, 1, 2, 3}
    # the positives of the big box sit on the coarse strides, the tiny box's on stride 8
    assert set(ts.CELL_STRIDE[owner == 1]) <= {16.0, 32.0} and set(ts.CELL_STRIDE[owner == 0]) == {8.0}
