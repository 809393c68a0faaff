"""INT8 variant of the demo model: ``models/sim-detector.onnx`` → ``models/sim-detector-int8.onnx``.

Static post-training quantization with ``onnxruntime.quantization`` (QDQ format, per-channel INT8
weights, UINT8 activations, MinMax calibration), calibrated on simulator frames fed exactly as the
detectors package feeds them (``YoloxFormat.preprocess``: top-left letterbox on a 114 canvas):

- every built-in street/square scene at 640x360, whole frame, 6 moments of the 180 s loop;
- the lookout scene at 1920x1080: 384x224 tiles (``detectors.tiling.tile_grid``, as tiled
  inference cuts them) and the whole frame letterboxed, 2 moments;

all rendered with renderer seeds 500–503 (``CALIB_SEEDS``): not the held-out evaluation seeds 0–4
(``benchmarks/map_sim.py``), not the training seeds 1000+ (``models/train_sim.py``).

The three 1x1 prediction convs (``/net/pred.*``) stay float: their one output tensor mixes box
offsets, log sizes and objectness/class logits, and an 8-bit scale over all of them would move
boxes by several pixels at stride 32. Everything before them (stem, backbone, FPN, smoothing
convs, SiLU, Add, Resize) is quantized.

    .venv/bin/python models/quantize_sim.py            # writes the model and its manifest
    .venv/bin/python models/quantize_sim.py --check    # rebuilds in a temp dir, compares sha256

Deterministic: the same onnxruntime, onnx and numpy versions give the same bytes (checked with
onnxruntime 1.32.0, onnx 1.23.2, numpy 2.4.6: two runs, one sha256). Another onnxruntime
release writes a slightly different file (onnxruntime-openvino 1.24.1 does): ``--check`` says so;
regenerate with the onnxruntime the project pins.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

MODELS = Path(__file__).resolve().parent
REPO = MODELS.parent
sys.path.insert(0, str(REPO))

SOURCE = MODELS / "sim-detector.onnx"
TARGET = MODELS / "sim-detector-int8.onnx"
MANIFEST = MODELS / "sim-detector-int8.yaml"
CALIB_SEEDS = (500, 501, 502, 503)  # neither held-out (0..4) nor training (>= 1000)
SUB_MOMENTS = range(150, 1800, 300)  # frame indices: 15 s, 45 s, ... 165 s of the 180 s loop
LOOKOUT_MOMENTS = (450, 1150)  # gathering crowd, dispersing crowd
LOOKOUT_TILE_EVERY = 3  # every 3rd tile of the 1080p grid (49 tiles)
INPUT_SIZE = (384, 224)
PRED_PREFIX = "/net/pred."


def calibration_inputs() -> list[np.ndarray]:
    """Pre-processed [3, 224, 384] float32 inputs, in a fixed order."""
    from camera_hub.sim.scenes import SceneRenderer, builtin_scenes
    from detectors.formats.yolox import YoloxFormat
    from detectors.tiling import tile_grid

    sub_scenes = sorted(s for s in builtin_scenes() if s not in ("smoke", "lookout"))
    out: list[np.ndarray] = []
    for seed in CALIB_SEEDS:
        for scene in sub_scenes:
            r = SceneRenderer(scene, 640, 360, seed=seed)
            out += [YoloxFormat.preprocess(r.frame(i)[0], INPUT_SIZE)[0] for i in SUB_MOMENTS]
        r = SceneRenderer("lookout", 1920, 1080, seed=seed)
        tiles = tile_grid(1920, 1080, INPUT_SIZE, 0.25)[seed % LOOKOUT_TILE_EVERY::LOOKOUT_TILE_EVERY]
        for i in LOOKOUT_MOMENTS:
            img = r.frame(i)[0]
            out += [YoloxFormat.preprocess(img[y1:y2, x1:x2], INPUT_SIZE)[0] for x1, y1, x2, y2 in tiles]
            out.append(YoloxFormat.preprocess(img, INPUT_SIZE)[0])
    return out


def head_nodes(graph: onnx.GraphProto) -> list[str]:
    """The prediction convs and every node downstream of them (reshape, concat, the sigmoid)."""
    pred = [n.name for n in graph.node if n.name.startswith(PRED_PREFIX) and n.op_type == "Conv"]
    if len(pred) != 3:
        raise RuntimeError(f"expected 3 prediction convs named {PRED_PREFIX}*, found {pred}")
    tainted = {o for n in graph.node if n.name in pred for o in n.output}
    names = set(pred)
    for n in graph.node:  # nodes are topologically sorted in a valid ONNX graph
        if any(i in tainted for i in n.input):
            names.add(n.name)
            tainted.update(n.output)
    return sorted(names)


class _Reader:
    """onnxruntime.quantization.CalibrationDataReader over fixed batches of 16."""

    def __init__(self, inputs: list[np.ndarray], name: str, batch: int = 16) -> None:
        self._batches = iter([np.stack(inputs[i:i + batch]) for i in range(0, len(inputs), batch)])
        self._name = name

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._batches, None)
        return None if x is None else {self._name: x}

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        x = self.get_next()
        if x is None:
            raise StopIteration
        return x


def quantize(source: Path, target: Path) -> str:
    """Writes ``target``; returns its sha256."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src = onnx.load(str(source))
    with tempfile.TemporaryDirectory() as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        # shape inference + basic (standard-ONNX) graph optimizations, as the quantizer recommends
        quant_pre_process(str(source), str(prepped), skip_symbolic_shape=True)  # onnx shapes suffice
        exclude = head_nodes(onnx.load(str(prepped)).graph)
        inputs = calibration_inputs()
        print(f"calibrating on {len(inputs)} inputs (seeds {CALIB_SEEDS[0]}..{CALIB_SEEDS[-1]}); "
              f"left float: {len(exclude)} head nodes ({', '.join(exclude[:3])}, ...)", flush=True)
        out = Path(tmp) / "int8.onnx"
        quantize_static(str(prepped), str(out), _Reader(inputs, src.graph.input[0].name),
                        quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        m = onnx.load(str(out))
    # keep what the loader reads from the fp32 export: metadata, the fixed row/channel output dims
    del m.metadata_props[:]
    for p in src.metadata_props:
        m.metadata_props.add(key=p.key, value=p.value.replace("sim-detector:", "sim-detector-int8:", 1))
    m.metadata_props.add(key="quantization", value="onnxruntime static QDQ, per-channel s8 weights, u8 activations, "
                         f"MinMax on simulator seeds {CALIB_SEEDS[0]}-{CALIB_SEEDS[-1]} (models/quantize_sim.py)")
    for d, want in zip(m.graph.output[0].type.tensor_type.shape.dim, src.graph.output[0].type.tensor_type.shape.dim,
                       strict=True):
        d.CopyFrom(want)
    m.producer_name = "camera-hub models/quantize_sim.py"
    onnx.checker.check_model(m)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(target))
    return hashlib.sha256(target.read_bytes()).hexdigest()


def write_manifest(path: Path, digest: str) -> None:
    path.write_text(
        "# sim-detector-int8: the demo model quantized to INT8 by models/quantize_sim.py (static QDQ,\n"
        "# per-channel weights, calibrated on simulator seeds 500-503). Same classes, input and output\n"
        "# as sim-detector; see models/sim-detector.md, \"INT8 variant\", and benchmarks/README.md.\n"
        "name: sim-detector-int8\n"
        "file: sim-detector-int8.onnx\n"
        "format: yolox\n"
        "input_size: [384, 224]\n"
        "classes: [person, goods, stall, vehicle]\n"
        "score_threshold: 0.35\n"
        "nms_iou: 0.45\n"
        "outputs:\n"
        "  output: [1, 1764, 9]\n"
        "licence: Apache-2.0\n"
        "source: Camera Hub models/quantize_sim.py (INT8 quantization of models/sim-detector.onnx)\n"
        f"sha256: {digest}\n", encoding="utf-8")


def compare(a: Path, b: Path, n: int = 32) -> float:
    """Largest score difference (objectness x class) between two models on calibration inputs."""
    import onnxruntime as ort

    x = np.stack(calibration_inputs()[:n])
    outs = []
    for p in (a, b):
        s = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        o = s.run(None, {s.get_inputs()[0].name: x})[0]
        outs.append(o[..., 5:] * o[..., 4:5])
    return float(np.abs(outs[0] - outs[1]).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare with the manifest's sha256")
    args = ap.parse_args()
    import onnxruntime

    print(f"onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}, numpy {np.__version__}")
    t = time.perf_counter()
    if args.check:
        import yaml

        want = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))["sha256"]
        with tempfile.TemporaryDirectory() as tmp:
            got = quantize(SOURCE, Path(tmp) / TARGET.name)
        print(f"rebuilt sha256 {got}\nmanifest       {want}\n{'identical' if got == want else 'DIFFERENT'}")
        sys.exit(0 if got == want else 1)
    digest = quantize(SOURCE, TARGET)
    write_manifest(MANIFEST, digest)
    print(f"wrote {TARGET} ({TARGET.stat().st_size / 1e6:.2f} MB, sha256 {digest}) and {MANIFEST.name} "
          f"in {time.perf_counter() - t:.0f} s; max score difference vs fp32 on 32 calibration inputs "
          f"{compare(SOURCE, TARGET):.3f}")


if __name__ == "__main__":
    main()
