"""Chaos, end to end, at scale (issue #12): the e2e run on the demo city with two workers and Redis
keeping an append-only file, while worker1 is SIGKILLed (and started again 5 s later), Redis is
SIGKILLed (and started again 5 s later on the same port and folder) and the simulator is
SIGKILLed and started again, at 20, 40 and 60 % of the period (`camera_hub.chaos`, shared with
tests/system/test_chaos.py). A real SSE client follows the live feed throughout.

Prints the schedule as played with each part's recovery time (the killed worker's cameras
delivering again and back on it; Redis answering with its alerts reloaded, the API answering,
the feed reconnected, every camera delivering; after the simulator's restart every camera
delivering and the API's coverage back), the live feed's record against the alert Stream, doubled
alerts, and the score table (precision, recall, onset latency per type; coverage).

    .venv/bin/python benchmarks/chaos.py --cameras 250 --seconds 300
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

from camera_hub.chaos import format_chaos, run_chaos  # noqa: E402
from camera_hub.e2e import format_report  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=250, help="live community cameras (plus the 4 lookouts)")
    ap.add_argument("--seconds", type=int, default=300, help="scored period (the scene loop is 180 s)")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    result = asyncio.run(run_chaos(args.cameras, args.seconds, say=lambda line: print(line, flush=True)))
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    print(f"\nmachine: {os.cpu_count()} CPUs, {cpu}; Python {platform.python_version()}; "
          f"load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at the end")
    print(format_chaos(result))
    print(format_report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
