"""Detector throughput: frames per CPU-second (and per wall-second) through the project's own
path — letterbox, ONNX Runtime, decode, NMS — at batch 1, 4, 8, 16 with 1 and 2 intra-op threads;
plus the share of detector runs the motion gate saves over a simulated hour of every scene.

CPU-seconds are the process's user+system time (all onnxruntime threads included; spinning is
off), so the figure is what a frame costs the machine, not how fast one core finishes it.

    .venv/bin/python benchmarks/detector_throughput.py [--models yolox-nano sim-detector] [--frames 64]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camera_hub.config import DetectorSettings  # noqa: E402
from detectors.detector import load_detector  # noqa: E402
from detectors.manifest import ModelError  # noqa: E402

ASSETS = Path(os.environ.get("CAMERA_HUB_ASSETS", REPO.parent / "shared" / "assets"))


def test_frames(n: int) -> list[np.ndarray]:
    """Real photos as 640x360 sub-stream frames (what community cameras send to the detector)."""
    names = ["jetson_peds_0.jpg", "jetson_peds_1.jpg", "jetson_peds-007.png", "jetson_peds-008.png"]
    imgs = [cv2.imread(str(ASSETS / "images" / x)) for x in names]
    imgs = [cv2.resize(i, (640, 360), interpolation=cv2.INTER_AREA) for i in imgs if i is not None]
    if not imgs:
        rng = np.random.default_rng(0)
        imgs = [rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)]
    return [imgs[i % len(imgs)] for i in range(n)]


def measure(model: str, threads: int, batch: int, frames: list[np.ndarray]) -> tuple[float, float, str]:
    det = load_detector(model, DetectorSettings(intra_op_threads=threads, batch_size=batch))
    det.detect(frames[:batch])  # warm-up: first-run allocations
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(0, len(frames), batch):
        det.detect(frames[i:i + batch])
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return len(frames) / cpu, len(frames) / wall, det.session.batching


def motion_share(interval_s: float = 2.0, hour_s: float = 3600.0) -> list[tuple[str, int, int]]:
    """(scene, detector runs, samples) for one simulated hour per built-in scene, sampled every
    ``interval_s``, through the MotionGate with the default settings (forced run every 10 s)."""
    from camera_hub.analytics.motion import MotionGate
    from camera_hub.config import DetectorSettings as DS
    from camera_hub.events import Sample
    from camera_hub.sim.scenes import builtin_scenes
    from camera_hub.sim.scenes.render import SceneRenderer

    st = DS()
    out = []
    for name in sorted(builtin_scenes()):
        if name == "smoke":
            continue
        r = SceneRenderer(name, 640, 360, seed=0)
        loop_frames = r.frame_count
        step = int(interval_s * r.fps)
        loop = [r.frame(i)[0] for i in range(0, loop_frames, step)]  # scenes loop every 180 s
        gate = MotionGate(st.motion_threshold, st.force_interval_s)
        runs = samples = 0
        for k in range(int(hour_s / interval_s)):
            s = Sample("bench", k * interval_s, None, loop[k % len(loop)], True)
            gate.update(s)
            runs += gate.should_detect(s)
            samples += 1
        out.append((name, runs, samples))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["yolox-nano", "sim-detector"])
    ap.add_argument("--frames", type=int, default=64, help="frames per measurement (a multiple of 16)")
    ap.add_argument("--no-motion", action="store_true", help="skip the motion-gate hour")
    args = ap.parse_args()
    import onnxruntime as ort

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or ''}"
          f" python {platform.python_version()}, onnxruntime {ort.__version__}")
    frames = test_frames(args.frames)
    print("model          threads batch  frames/CPU-s  frames/wall-s  batching")
    for model in args.models:
        for threads in (1, 2):
            for batch in (1, 4, 8, 16):
                try:
                    per_cpu, per_wall, how = measure(model, threads, batch, frames)
                except ModelError as exc:
                    print(f"{model:<14} skipped: {exc}")
                    break
                print(f"{model:<14} {threads:>7} {batch:>5} {per_cpu:>13.1f} {per_wall:>14.1f}  {how}", flush=True)
            else:
                continue
            break
    if not args.no_motion:
        rows = motion_share()
        total_runs = sum(r for _, r, _ in rows)
        total = sum(n for _, _, n in rows)
        print("motion gate, one simulated hour per scene, a sample every 2 s (threshold 0.01, forced every 10 s):")
        for name, runs, n in rows:
            print(f"  {name:<16} detector runs {runs:>5} of {n} samples: {100 * (1 - runs / n):5.1f} % saved")
        print(f"  all scenes       {100 * (1 - total_runs / total):5.1f} % of detector runs saved")


if __name__ == "__main__":
    main()
