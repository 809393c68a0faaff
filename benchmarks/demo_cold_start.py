"""Time `bash scripts/demo.sh` from launch to the operator page and to the first alert of each type.

What a new user waits for: `scripts/demo.sh --no-browser --port PORT` (setup check, private Redis,
simulator, worker, API), then the API polled once a second (logged in as the demo user) until an
alert of every type (vending, crowding, tamper, camera_offline) has appeared; then Ctrl-C (SIGINT
to the demo's process group) and a check that no process of the run is left.

Cold by default: the simulator's scene cache (normally ~/.cache/camera-hub/sim) is pointed at an
empty folder through CAMERA_HUB_SIM_CACHE, so every scene is rendered and encoded as on a fresh
clone (the Python environment in .venv is not rebuilt). --warm uses the normal cache.

    .venv/bin/python benchmarks/demo_cold_start.py
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
TYPES = ("vending", "crowding", "tamper", "camera_offline")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=18090, help="API port for the demo")
    ap.add_argument("--warm", action="store_true", help="use the normal scene cache (not an empty one)")
    ap.add_argument("--limit", type=float, default=600, help="give up after this many seconds")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="demo-cold-"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if not args.warm:
        env["CAMERA_HUB_SIM_CACHE"] = str(work / "sim-cache")
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    proc = subprocess.Popen(["bash", "scripts/demo.sh", "--no-browser", "--port", str(args.port),
                             "--data-dir", str(work / "demo")], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    marks: dict[str, float] = {}
    up = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.monotonic() - t0
            if "[sim] serving" in line:
                marks.setdefault("simulator serving", now)
            if "Camera Hub demo is up" in line:
                marks["operator page up"] = now
                up.set()

    threading.Thread(target=pump, daemon=True).start()
    first: dict[str, float] = {}
    try:
        if not up.wait(args.limit):
            sys.exit(f"the demo did not come up within {args.limit:.0f} s")
        base = f"http://127.0.0.1:{args.port}"
        token = httpx.post(f"{base}/api/v1/auth/login", json={"username": "demo", "password": "demo-password"},
                           timeout=10).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        while time.monotonic() - t0 < args.limit and len(first) < len(TYPES):
            items = httpx.get(f"{base}/api/v1/alerts", params={"limit": 200}, headers=headers, timeout=10).json()
            for a in items["items"]:
                first.setdefault(a["type"], time.monotonic() - t0)
            time.sleep(1.0)
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does in a terminal
        code = proc.wait(60)
    time.sleep(1.0)
    left = subprocess.run(["pgrep", "-af", str(work)], capture_output=True, text=True).stdout.strip()
    print(f"{'cold' if not args.warm else 'warm'} start, {os.cpu_count()} CPUs, load average {load:.1f} at start")
    for what, t in sorted(marks.items(), key=lambda kv: kv[1]):
        print(f"  {what:<22} {t:6.1f} s")
    for kind in TYPES:
        print(f"  first {kind:<16} " + (f"{first[kind]:6.1f} s" if kind in first else "   not seen"))
    if first:
        print(f"  first alert            {min(first.values()):6.1f} s; every type by "
              + (f"{max(first.values()):.1f} s" if len(first) == len(TYPES) else "-"))
    print(f"  Ctrl-C: exit code {code}; processes left: {left or 'none'}")


if __name__ == "__main__":
    main()
