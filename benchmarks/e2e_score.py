"""End-to-end score of the whole system on the simulator's demo city.

Runs the real processes (private Redis, `camera-hub sim`, `camera-hub worker`, `camera-hub api`)
for a fixed period, then compares the alerts in the API with the simulator's ground truth:
per type precision, recall and onset latency (ground-truth episode start → the alert's creation,
stamped with the time of the sample that raised it), p50/p95; and the city coverage the API
reports against the grids of the cameras the simulator serves without a fault. The run and the
matching are `camera_hub.e2e` (shared with tests/system/test_e2e_score.py).

    .venv/bin/python benchmarks/e2e_score.py --cameras 40 --seconds 420
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camera_hub.e2e import format_report, run_e2e  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=40, help="live community cameras (plus the 4 lookouts)")
    ap.add_argument("--seconds", type=int, default=420, help="scored period (the scene loop is 180 s)")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    result = asyncio.run(run_e2e(args.cameras, args.seconds, say=lambda line: print(line, flush=True)))
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    print(f"\nmachine: {os.cpu_count()} CPUs, {cpu}; Python {platform.python_version()}; "
          f"load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at the end")
    print(format_report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
