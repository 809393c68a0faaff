"""Model variants of the demo detector on the same held-out simulator frames: fp32 and INT8
(``models/sim-detector-int8.onnx``, made by ``models/quantize_sim.py``), each on the CPU execution
provider and, where the running onnxruntime has it (the ``onnxruntime-openvino`` wheel), on
``OpenVINOExecutionProvider``.

Per variant: CPU-ms per frame at batch 1 and 8 with 1 intra-op thread, through the project's own
path (``OnnxDetector.detect``: letterbox, session, YOLOX decode, NMS) and for the session run
alone; mAP@0.5 per class on the held-out frames of ``benchmarks/map_sim.py`` (renderer seeds 0–4,
its ``evaluate``); the providers the session reports (``get_providers()``) and, from an
onnxruntime profile of one run, which provider ran the graph's nodes.

CPU-ms are the process's user+system time (every thread: onnxruntime's, OpenVINO's), the best of
``--repeat`` passes over the same ``--frames`` frames (a spread of the 840 held-out sub-stream frames).

    .venv/bin/python benchmarks/model_variants.py [--no-lookout] [--frames 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from map_sim import CLASSES, cpu_model, evaluate, lookout_frames, sub_frames  # noqa: E402

MODELS = [("fp32", "sim-detector"), ("int8", "sim-detector-int8")]
PROVIDERS = ["CPUExecutionProvider", "OpenVINOExecutionProvider"]
SHORT = {"CPUExecutionProvider": "CPU", "OpenVINOExecutionProvider": "OpenVINO"}


def render(frames: list[tuple[str, int, int]], size: tuple[int, int] = (640, 360)) -> list[np.ndarray]:
    from camera_hub.sim.scenes import SceneRenderer

    renderers: dict[tuple[str, int], SceneRenderer] = {}
    return [renderers.setdefault((s, seed), SceneRenderer(s, *size, seed=seed)).frame(i)[0] for s, seed, i in frames]


def cpu_ms(fn, items: list, batch: int, repeat: int) -> tuple[float, float]:
    """(CPU-ms, wall-ms) per item of ``fn`` over ``items`` in chunks of ``batch``; best of ``repeat``."""
    fn(items[:batch])  # warm-up: allocations, and a provider's compile for this batch shape
    best_cpu = best_wall = float("inf")
    for _ in range(repeat):
        c, w = time.process_time(), time.perf_counter()
        for i in range(0, len(items), batch):
            fn(items[i:i + batch])
        best_cpu = min(best_cpu, time.process_time() - c)
        best_wall = min(best_wall, time.perf_counter() - w)
    return 1000 * best_cpu / len(items), 1000 * best_wall / len(items)


def node_providers(path: Path, providers: list[str], x: np.ndarray) -> Counter:
    """Kernels per provider in an onnxruntime profile of one run (same options as OnnxSession)."""
    import onnxruntime as ort

    from detectors.session import _options, provider_options

    so = _options(1, 1)
    so.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        so.profile_file_prefix = str(Path(tmp) / "profile")
        s = ort.InferenceSession(str(path), so, providers=providers, provider_options=provider_options(providers, 1))
        s.run(None, {s.get_inputs()[0].name: x})
        events = json.loads(Path(s.end_profiling()).read_text())
    return Counter(e["args"].get("provider", "?") for e in events
                   if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="held-out renderer seeds 0..N-1 (as map_sim.py)")
    ap.add_argument("--step", type=int, default=75, help="frames between samples (as map_sim.py)")
    ap.add_argument("--frames", type=int, default=64, help="frames for the speed figures (a multiple of 8)")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes; the best counts")
    ap.add_argument("--no-lookout", action="store_true", help="skip the tiled 1080p lookout mAP")
    ap.add_argument("--no-map", action="store_true", help="speed only")
    args = ap.parse_args()

    import onnxruntime as ort

    from camera_hub.config import DetectorSettings
    from detectors.detector import load_detector
    from detectors.manifest import ModelError

    available = ort.get_available_providers()
    dist = "onnxruntime-openvino" if "OpenVINOExecutionProvider" in available else "onnxruntime"
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: nproc {os.cpu_count()}, {cpu_model()}; python {platform.python_version()}, "
          f"{dist} {ort.__version__} (providers available: {', '.join(available)}), numpy {np.__version__}; "
          f"1 intra-op thread; {time.strftime('%Y-%m-%d')}")
    sub = sub_frames(args.seeds, args.step)
    speed_frames = render(sub[::max(1, len(sub) // args.frames)][:args.frames])
    print(f"speed: {len(speed_frames)} held-out 640x360 frames (1 in {max(1, len(sub) // args.frames)} of the "
          f"{len(sub)} below), best of {args.repeat}; mAP: {len(sub)} sub-stream frames (seeds 0..{args.seeds - 1})"
          + ("" if args.no_lookout else f", {len(lookout_frames(args.seeds))} lookout 1080p frames tiled"))

    rows = []
    for provider in PROVIDERS:
        if provider not in available:
            print(f"\n{provider}: not in this onnxruntime build, skipped (it comes with the onnxruntime-openvino "
                  f"wheel, which replaces onnxruntime: see benchmarks/README.md, 'Model variants')")
            continue
        for kind, model in MODELS:
            try:
                det = load_detector(model, DetectorSettings(providers=[provider], intra_op_threads=1, batch_size=8))
            except ModelError as exc:
                print(f"\n{model} on {provider}: skipped: {exc}")
                continue
            sess = det.session
            x = np.stack([det.format.preprocess(f, det.input_size)[0] for f in speed_frames])
            kernels = node_providers(sess.path, sess.providers, x[:1])
            opts = {p: o for p, o in zip(sess.providers, sess.provider_options, strict=True) if o}
            row = {"variant": f"{kind} {SHORT[provider]}", "model": model, "ran": sess.active_providers,
                   "kernels": kernels, "batching": sess.batching}
            for b in (1, 8):
                row[f"detect{b}"] = cpu_ms(det.detect, speed_frames, b, args.repeat)
                row[f"run{b}"] = cpu_ms(sess.run, x, b, args.repeat)
            if not args.no_map:
                row["sub"] = evaluate(det, sub, (640, 360), False)
                if not args.no_lookout:
                    row["lookout"] = evaluate(det, lookout_frames(args.seeds), (1920, 1080), True)
            rows.append(row)
            kern = ", ".join(f"{SHORT.get(p, p)} {n}" for p, n in kernels.most_common())
            print(f"\n{row['variant']} ({model}): session providers {row['ran']}; kernels in a profiled run: {kern}; "
                  f"batching {row['batching']}" + (f"; provider options {opts}" if opts else ""), flush=True)

    print("\nCPU-ms per frame (wall-ms in brackets), 1 intra-op thread; detect = letterbox + session + decode + NMS")
    print("| variant | detect b1 | detect b8 | session b1 | session b8 |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        cells = [f"{r[k][0]:.2f} ({r[k][1]:.2f})" for k in ("detect1", "detect8", "run1", "run8")]
        print(f"| {r['variant']} | " + " | ".join(cells) + " |")
    if args.no_map:
        return
    print("\nmAP@0.5 per class, held-out sub-stream frames (whole frame)" + ("" if args.no_lookout else
                                                                          "; lookout: person, tiled 1080p"))
    head = "| variant | " + " | ".join(CLASSES) + " | mAP@0.5 |" + (
        "" if args.no_lookout else " lookout person | lookout CPU-ms/frame (tiled) |")
    print(head)
    print("|---|" + "---:|" * (head.count("|") - 2))
    for r in rows:
        ap50 = r["sub"]["ap50"]
        cells = [f"{ap50[c]:.3f}" if c in ap50 else "–" for c in CLASSES] + [f"{r['sub']['map50']:.3f}"]
        if "lookout" in r:
            cells += [f"{r['lookout']['ap50'].get('person', float('nan')):.3f}",
                      f"{1000 * r['lookout']['cpu_s_per_frame']:.0f}"]
        print(f"| {r['variant']} | " + " | ".join(cells) + " |")
    base = next((r for r in rows if r["variant"] == "fp32 CPU"), None)
    if base:
        print("\nagainst fp32 CPU (the default):")
        for r in rows:
            if r is base:
                continue
            d = {c: r["sub"]["ap50"].get(c, 0) - base["sub"]["ap50"].get(c, 0) for c in CLASSES}
            print(f"  {r['variant']}: detect b8 {base['detect8'][0] / r['detect8'][0]:.2f}x, session b8 "
                  f"{base['run8'][0] / r['run8'][0]:.2f}x, session b1 {base['run1'][0] / r['run1'][0]:.2f}x fewer "
                  f"CPU-ms; AP@0.5 change " + ", ".join(f"{c} {v:+.3f}" for c, v in d.items()))


if __name__ == "__main__":
    main()
