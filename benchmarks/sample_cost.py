"""CPU per analysed sample, by stage, on one thread: the demo city's keyframes (640x360, the
simulator's scenes, 40 per camera at the 2 s GOP) through the worker's own code, keyframe decode
(shared decoder, BGR), the detector (batches of 8) and the rules (tracker, foreground model,
tamper, vending and crowding: ``Analyzer._rules``). No RTSP, no threads, no other process: what a
sample costs where nothing competes for the core (benchmarks/README.md, City scale).

    .venv/bin/python benchmarks/sample_cost.py [--cameras 64] [--profile decode|detect|rules]
"""

from __future__ import annotations

import argparse
import cProfile
import platform
import pstats
import sys
import time
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camera_hub.analytics.analyzer import LOW_SCORE, Analyzer  # noqa: E402
from camera_hub.config import load_config  # noqa: E402
from camera_hub.events import EncodedPacket, StreamInfo  # noqa: E402
from camera_hub.ingest.sampler import Sampler  # noqa: E402
from camera_hub.sim.encode import encode_scene  # noqa: E402
from camera_hub.sim.scenes import scene_for_camera  # noqa: E402
from detectors.detector import load_detector  # noqa: E402

START = b"\0\0\0\1"
TB = Fraction(1, 90000)
KEYFRAMES = 40


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", type=int, default=64, help="ordinary demo cameras (lookouts are left out)")
    ap.add_argument("--profile", choices=("decode", "detect", "rules"), help="cProfile one stage's second pass")
    args = ap.parse_args()
    cfg = load_config(REPO / "config" / "demo-city")
    cams = [c for c in cfg.cameras if c.enabled and c.kind != "lookout"][:args.cameras]
    detector = load_detector(cfg.settings.detector.model, cfg.settings.detector)
    scenes, samplers, items = {}, {}, []
    for c in cams:
        name = scene_for_camera(c)
        enc = scenes.get(name) or scenes.setdefault(name, encode_scene(name, 640, 360))
        samplers[c.id] = Sampler(c.id, 2.0)
        samplers[c.id].open(StreamInfo("h264", 640, 360, START + enc.sps + START + enc.pps, TB))
        keys = [i for i, k in enumerate(enc.keyframes) if k][:KEYFRAMES]
        for j, i in enumerate(keys):
            data = b"".join(START + n for n in enc.frames[i])
            items.append((c.id, 100.0 + 2.0 * j, EncodedPacket(data, i * 9000, i * 9000, True, TB, 0.0)))
    items.sort(key=lambda x: x[1])
    print(f"command: python benchmarks/sample_cost.py --cameras {args.cameras}")
    print(f"machine: {platform.machine()}, {platform.python_version()}; model {detector.name}; "
          f"{len(items)} keyframes of {len(cams)} cameras, scenes {sorted(scenes)}")

    def decode() -> list:
        out = []
        for cid, t, pkt in items:
            samplers[cid]._last_t = None  # every keyframe is due
            out.append(samplers[cid].decode(pkt, t))
        return out

    samples = decode()

    def detect() -> list:
        found = []
        for i in range(0, len(samples), 8):
            found += detector.detect([s.frame for s in samples[i:i + 8]], min_score=LOW_SCORE)
        return found

    dets = detect()

    def rules() -> None:
        analyzer = Analyzer(cfg, detector)  # fresh state: each pass sees the cameras from their start
        for s, d in zip(samples, dets, strict=True):
            analyzer._rules(s, d)

    stages = {"decode": decode, "detect": detect, "rules": rules}
    for name, fn in stages.items():
        best = min(_cpu(fn) for _ in range(2))
        print(f"{name:7s} {best / len(items) * 1e3:6.2f} CPU-ms a sample (best of 2 passes)")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        stages[args.profile]()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)


def _cpu(fn) -> float:
    c0 = time.process_time()
    fn()
    return time.process_time() - c0


if __name__ == "__main__":
    main()
