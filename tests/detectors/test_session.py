"""Session wrapper: providers from settings, thread settings, dynamic batch verified."""

import numpy as np

from camera_hub.config import DetectorSettings
from detectors.detector import load_detector
from detectors.session import dynamic_batch_bytes, pick_providers


def test_providers_keep_order_skip_missing_cpu_last():
    got = pick_providers(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    assert got[-1] == "CPUExecutionProvider"
    assert all(p in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider") for p in got)
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert got == ["CPUExecutionProvider"]


def test_settings_reach_the_session(assets):
    det = load_detector("light-person", DetectorSettings(intra_op_threads=2, batch_size=4))
    assert det.session.max_batch == 4 and det.session.providers[-1] == "CPUExecutionProvider"
    # a batch larger than max_batch is run in chunks and still gives one result per frame
    out = det.session.run(np.zeros((10, 3, 192, 192), np.float32))
    assert out["output"].shape == (10, 756, 6)


def test_rewritten_graph_has_symbolic_batch(assets):
    import onnx

    data = dynamic_batch_bytes(assets / "models" / "yolox_nano_416x416.onnx")
    assert data is not None
    m = onnx.load_from_string(data)
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert m.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
