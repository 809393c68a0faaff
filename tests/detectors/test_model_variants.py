"""Model variants (benchmarks/model_variants.py). The INT8 demo model (models/sim-detector-int8.onnx,
made by models/quantize_sim.py) through load_detector, in a real ONNX Runtime session: it finds on
rendered simulator frames what the fp32 sim-detector finds. OpenVINO: the thread count reaches it;
where the onnxruntime-openvino wheel is installed, it runs the whole graph and finds the same."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from camera_hub.config import DetectorSettings
from camera_hub.sim.scenes import SceneRenderer
from detectors.detector import OnnxDetector, load_detector
from detectors.manifest import find_manifest, resolve_file
from detectors.session import provider_options

# (scene, frame): a vending street with people, goods and two stalls; the night street with its car
FRAMES = [("street_vending", 900), ("street_night", 900)]
CONFIDENT = 0.5  # boxes this sure must be found by both models; nearer the 0.35 threshold they may flip


OPENVINO = "OpenVINOExecutionProvider"


@functools.cache
def _load(name: str, provider: str = "CPUExecutionProvider") -> OnnxDetector:
    return load_detector(name, DetectorSettings(providers=[provider], intra_op_threads=1, batch_size=8))


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _unmatched(want, got) -> list:
    """Confident boxes of ``want`` with no box of the same class in ``got`` at IoU >= 0.5."""
    return [d for d in want if d.score >= CONFIDENT
            and not any(g.label == d.label and _iou(d.box, g.box) >= 0.5 for g in got)]


def test_int8_file_is_quantized_and_loads_like_the_fp32_model():
    m = find_manifest("sim-detector-int8")
    assert m is not None and m.file == "sim-detector-int8.onnx"
    ops = {n.op_type for n in onnx.load(str(resolve_file(m))).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # static QDQ, not a renamed fp32 copy
    int8, fp32 = _load("sim-detector-int8"), _load("sim-detector")
    assert int8.labels == fp32.labels == ["person", "goods", "stall", "vehicle"]
    assert int8.input_size == fp32.input_size == (384, 224)
    assert int8.session.batching == "native"
    assert int8.session.active_providers[-1] == "CPUExecutionProvider"


def test_int8_finds_what_fp32_finds_on_simulator_frames():
    frames = [SceneRenderer(scene, 640, 360, seed=0).frame(i)[0] for scene, i in FRAMES]
    fp32 = _load("sim-detector").detect(frames)
    int8 = _load("sim-detector-int8").detect(frames)  # one batch of 2: the dynamic batch axis works
    seen = set()
    for (scene, i), want, got in zip(FRAMES, fp32, int8, strict=True):
        assert not _unmatched(want, got), f"{scene}@{i}: int8 misses fp32 boxes {_unmatched(want, got)}"
        assert not _unmatched(got, want), f"{scene}@{i}: int8 finds boxes fp32 does not {_unmatched(got, want)}"
        assert abs(len(want) - len(got)) <= 1, (scene, want, got)
        seen |= {d.label for d in want if d.score >= CONFIDENT}
    assert seen == {"person", "goods", "stall", "vehicle"}  # every class was compared


def test_int8_batch_of_8_equals_8_single_runs():
    r = SceneRenderer("street_vending", 640, 360, seed=0)
    frames = [r.frame(i)[0] for i in range(300, 300 + 8 * 50, 50)]
    det = _load("sim-detector-int8")
    one_by_one = [det.detect([f])[0] for f in frames]
    batched = det.detect(frames)
    for a, b in zip(one_by_one, batched, strict=True):
        assert [d.label for d in a] == [d.label for d in b]
        assert np.allclose([d.box for d in a], [d.box for d in b], atol=0.5) if a else not b


def test_a_call_of_many_frames_runs_in_session_batches_through_one_batch_sized_buffer():
    # a lookout's tiles come ~50 crops a frame: the input buffer the detector keeps must stay one
    # session batch (1 MB a crop), not grow to every crop of the largest call, for the worker's life
    r = SceneRenderer("street_vending", 640, 360, seed=0)
    frames = [r.frame(i)[0] for i in range(300, 300 + 20 * 25, 25)]
    det = load_detector("sim-detector-int8", DetectorSettings(intra_op_threads=1, batch_size=4))
    many = det.detect(frames)
    assert det._local.batch.shape[0] == 4
    in_fours = [d for i in range(0, 20, 4) for d in det.detect(frames[i:i + 4])]
    assert [[(d.label, d.box) for d in x] for x in many] == [[(d.label, d.box) for d in x] for x in in_fours]
    assert sum(map(len, many)) > 20  # the frames had something to find

def test_openvino_gets_the_intra_op_thread_count():
    # left alone, OpenVINO sizes its own pool to every core: the setting must reach it
    assert provider_options([OPENVINO, "CPUExecutionProvider"], 1) == [{"num_of_threads": "1"}, {}]
    assert provider_options(["CPUExecutionProvider"], 2) == [{}]


@pytest.mark.skipif(OPENVINO not in ort.get_available_providers(),
                    reason="needs the onnxruntime-openvino wheel instead of onnxruntime")
@pytest.mark.parametrize("model", ["sim-detector", "sim-detector-int8"])
def test_openvino_finds_what_the_cpu_provider_finds(model):
    det = _load(model, OPENVINO)
    assert det.session.active_providers == [OPENVINO, "CPUExecutionProvider"]
    frames = [SceneRenderer(scene, 640, 360, seed=0).frame(i)[0] for scene, i in FRAMES]
    for want, got in zip(_load(model).detect(frames), det.detect(frames), strict=True):
        assert not _unmatched(want, got) and not _unmatched(got, want)
