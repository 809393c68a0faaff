"""mAP@0.5 per class of a detector on held-out simulator frames, through the project's own
inference path (manifest → ONNX Runtime session → YOLOX decode → NMS; lookout frames through
tiled inference). mAP is computed by ``supervision`` (``pip install -e '.[bench]'``).

Held out: renderer seeds 0..4 (training uses seeds >= 1000 and random scripts). Covered:
- sub-stream: street_vending, street_quiet, street_tamper, street_moved, street_night,
  square_crowd, square_quiet at 640x360, one frame every 7.5 s of the 180 s loop, whole frame;
- lookout: the 1920x1080 main stream, 40–120 s (the crowd) and a few other moments, tiled.

    .venv/bin/python benchmarks/map_sim.py [--model sim-detector] [--seeds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SUB_SCENES = ["street_vending", "street_quiet", "street_tamper", "street_moved", "street_night",
              "square_crowd", "square_quiet"]
CLASSES = ["person", "goods", "stall", "vehicle"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def sub_frames(seeds: int, step: int) -> list[tuple[str, int, int]]:
    return [(s, seed, i) for s in SUB_SCENES for seed in range(seeds) for i in range(step // 2, 1800, step)]


def lookout_frames(seeds: int) -> list[tuple[str, int, int]]:
    return [("lookout", seed, i) for seed in range(seeds) for i in (150, 450, 700, 950, 1150, 1500)]


def to_sv(dets, labels: list[str]):
    import supervision as sv

    if not dets:
        return sv.Detections(xyxy=np.zeros((0, 4), np.float32), confidence=np.zeros(0, np.float32),
                             class_id=np.zeros(0, int))
    return sv.Detections(xyxy=np.array([d.box for d in dets], np.float32),
                         confidence=np.array([d.score for d in dets], np.float32),
                         class_id=np.array([labels.index(d.label) for d in dets], int))


def truth_sv(boxes: list[tuple[str, tuple[int, int, int, int]]], labels: list[str]):
    import supervision as sv

    return sv.Detections(xyxy=np.array([b for _, b in boxes], np.float32).reshape(-1, 4),
                         class_id=np.array([labels.index(lb) for lb, _ in boxes], int))


def evaluate(detector, frames: list[tuple[str, int, int]], size: tuple[int, int], tiled: bool) -> dict:
    """Runs the detector on every rendered frame (batches of 8) and returns mAP@0.5 per class."""
    from supervision.metrics import MeanAveragePrecision

    from camera_hub.sim.scenes import SceneRenderer
    from detectors.tiling import detect_tiled

    renderers: dict[tuple[str, int], SceneRenderer] = {}
    preds, targets, n_truth = [], [], dict.fromkeys(CLASSES, 0)
    infer_s = 0.0
    for k in range(0, len(frames), 8):
        chunk = frames[k:k + 8]
        imgs = []
        for scene, seed, i in chunk:
            r = renderers.setdefault((scene, seed), SceneRenderer(scene, *size, seed=seed))
            img, boxes = r.frame(i)
            imgs.append(img)
            targets.append(truth_sv(boxes, CLASSES))
            for lb, _ in boxes:
                n_truth[lb] += 1
        t = time.process_time()
        found = detect_tiled(detector, imgs, min_score=0.01) if tiled else detector.detect(imgs, min_score=0.01)
        infer_s += time.process_time() - t
        preds += [to_sv(d, CLASSES) for d in found]
    res = MeanAveragePrecision().update(preds, targets).compute()
    col = int(np.argmin(np.abs(res.iou_thresholds - 0.5)))
    ap = {CLASSES[int(c)]: float(res.ap_per_class[j, col]) for j, c in enumerate(res.matched_classes)}
    return {"frames": len(frames), "truth": n_truth, "ap50": ap, "map50": float(res.mAP_scores[col]),
            "cpu_s_per_frame": infer_s / max(1, len(frames))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="sim-detector", help="manifest name or .onnx path")
    ap.add_argument("--seeds", type=int, default=5, help="held-out renderer seeds 0..N-1")
    ap.add_argument("--step", type=int, default=75, help="frames between samples (10 fps)")
    ap.add_argument("--no-lookout", action="store_true")
    args = ap.parse_args()

    import onnxruntime
    import supervision

    from camera_hub.config import DetectorSettings
    from detectors.detector import load_detector

    det = load_detector(args.model, DetectorSettings(intra_op_threads=1))
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: nproc {os.cpu_count()}, {cpu_model()}; python {platform.python_version()}, "
          f"onnxruntime {onnxruntime.__version__}, supervision {supervision.__version__}, numpy {np.__version__}; "
          f"1 ORT thread")
    print(f"model: {det.name}, input {det.input_size[0]}x{det.input_size[1]}, classes {det.labels}")
    runs = [("sub-stream 640x360, whole frame", sub_frames(args.seeds, args.step), (640, 360), False,
             ", ".join(SUB_SCENES))]
    if not args.no_lookout:
        runs.append(("lookout 1920x1080, tiled", lookout_frames(args.seeds), (1920, 1080), True, "lookout"))
    for title, frames, size, tiled, scenes in runs:
        r = evaluate(det, frames, size, tiled)
        per = ", ".join(f"{c} {r['ap50'][c]:.3f}" for c in CLASSES if c in r["ap50"])
        print(f"\n[{title}] scenes: {scenes}; seeds 0..{args.seeds - 1}; {r['frames']} frames; "
              f"ground-truth boxes {r['truth']}")
        print(f"  mAP@0.5 per class: {per}")
        print(f"  mAP@0.5 (classes present): {r['map50']:.3f}; inference {r['cpu_s_per_frame'] * 1000:.1f} "
              f"CPU-ms/frame incl. pre/post-processing")


if __name__ == "__main__":
    main()
