"""Soak: the whole system on the demo city for a long run while camera faults cycle, watching for growth.

It runs the real processes (private Redis, `camera-hub sim`, `camera-hub worker`, `camera-hub api`, as
`camera-hub demo` does) with ``--cameras`` live cameras, and every ``--fault-every`` seconds injects a
fault on a random camera through the simulator's control API, cycling through: drop (a flap: the
connection cut, reconnect at once), stall (the camera goes silent), garbage (bytes that are not RTP),
restart (connection cut, refused for a while), credentials (the password changed at the camera: 401
to everything), resize (the picture changes size) and no_keyframes. Every ``--sample-every`` seconds
it records, per process, resident memory (VmRSS), open file descriptors and threads (from /proc), plus
Redis's used memory, the cameras up and the alerts raised (from the worker's metrics).

At the end it fits a line (least squares) to each series after the warm-up and prints its slope per
hour, its change over the measured span, the residuals' spread, and a verdict: *flat* when the
change over the span is within max(2 × residual SD, 1 % of the mean) — growth that noise cannot
explain is reported as *grows*. A healthy pipeline also keeps raising alerts: the alerts raised per
sample interval are printed beside.

    .venv/bin/python benchmarks/soak.py --minutes 60             # the figure in benchmarks/README.md
    .venv/bin/python benchmarks/soak.py --minutes 6 --cameras 60 --warmup-min 2   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import redis.asyncio as aioredis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camera_hub.demo import DemoOptions, Supervisor, free_port, start_system  # noqa: E402

# (fault, seconds it lasts; None: a one-off event such as a dropped connection)
FAULT_CYCLE: tuple[tuple[str, float | None], ...] = (
    ("drop", None), ("stall", 20.0), ("garbage", 20.0), ("restart", 15.0),
    ("credentials", 30.0), ("resize", 30.0), ("no_keyframes", 20.0),
)
PROCESSES = ("worker1", "api", "sim", "redis")


def proc_figures(pid: int) -> dict[str, float]:
    """Resident MB, open file descriptors and threads of one process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = re.search(r"VmRSS:\s+(\d+) kB", status)
    threads = re.search(r"Threads:\s+(\d+)", status)
    return {"rss_mb": int(rss.group(1)) / 1024 if rss else 0.0,
            "fds": float(len(os.listdir(f"/proc/{pid}/fd"))),
            "threads": float(threads.group(1)) if threads else 0.0}


def metric_total(text: str, name: str) -> float:
    """Sum of one metric over all its label sets, from Prometheus text."""
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M))


async def inject_faults(control_port: int, cameras: list[str], every_s: float, log: list[dict], t0: float) -> None:
    """One fault every ``every_s`` on a random camera, cycling through FAULT_CYCLE."""
    rng = random.Random(20261129)
    async with httpx.AsyncClient(timeout=10) as client:
        k = 0
        while True:
            await asyncio.sleep(every_s)
            kind, duration = FAULT_CYCLE[k % len(FAULT_CYCLE)]
            camera = rng.choice(cameras)
            body: dict[str, object] = {"kind": kind}
            if duration is not None:
                body["duration_s"] = duration
            r = await client.post(f"http://127.0.0.1:{control_port}/cameras/{camera}/fault", json=body)
            log.append({"t": round(time.time() - t0, 1), "camera": camera, "fault": kind, "status": r.status_code})
            k += 1


async def sample(pids: dict[str, int], redis_url: str, metrics_url: str, t0: float) -> dict:
    row: dict[str, object] = {"t": round(time.time() - t0, 1)}
    for name, pid in pids.items():
        row[name] = proc_figures(pid)
    client = aioredis.from_url(redis_url)
    try:
        row["redis_used_mb"] = (await client.info("memory"))["used_memory"] / 2**20
    finally:
        await client.aclose()
    async with httpx.AsyncClient(timeout=30) as c:
        text = (await c.get(metrics_url)).text
    row["cameras_up"] = metric_total(text, "camera_hub_camera_up")
    row["alerts_total"] = metric_total(text, "camera_hub_alerts_total")
    row["reconnects_total"] = metric_total(text, "camera_hub_reconnects_total")
    return row


def trend(ts: list[float], ys: list[float]) -> dict[str, float | str]:
    """Least-squares slope per hour, change over the span, residual SD and the verdict."""
    slope = statistics.linear_regression(ts, ys).slope if len(set(ts)) > 1 else 0.0
    intercept = statistics.fmean(ys) - slope * statistics.fmean(ts)
    residual_sd = statistics.pstdev([y - (intercept + slope * t) for t, y in zip(ts, ys, strict=True)])
    change = slope * (ts[-1] - ts[0])
    allowance = max(2 * residual_sd, 0.01 * abs(statistics.fmean(ys)))
    return {"mean": statistics.fmean(ys), "slope_per_h": slope * 3600, "change": change,
            "residual_sd": residual_sd, "verdict": "flat" if abs(change) <= allowance else "grows"}


def series(rows: list[dict]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, dict):
                for k, v in value.items():
                    out.setdefault(f"{key}.{k}", []).append(v)
            elif key != "t":
                out.setdefault(key, []).append(float(value))
    return out


def report(rows: list[dict], warmup_s: float, faults: list[dict], cameras: int) -> tuple[str, dict]:
    after = [r for r in rows if r["t"] >= warmup_s]
    ts = [r["t"] for r in after]
    kinds = Counter(f["fault"] for f in faults)
    head = "".join(f"{h:>10}" for h in ("first", "last", "mean", "slope/h", "change", "resid SD"))
    lines = [f"{len(rows)} samples; {len(after)} after the {warmup_s / 60:.0f}-minute warm-up, spanning "
             f"{(ts[-1] - ts[0]) / 60:.1f} min; {len(faults)} faults injected on {cameras} live cameras "
             f"({', '.join(f'{k} {kinds[k]}' for k, _ in FAULT_CYCLE)})",
             f"{'series':<24}{head}  verdict"]
    trends: dict[str, dict] = {}
    for name, ys in series(after).items():
        if name in ("alerts_total", "reconnects_total"):
            continue
        t = trend(ts, ys)
        trends[name] = t
        lines.append(f"{name:<24}{ys[0]:>10.1f}{ys[-1]:>10.1f}{t['mean']:>10.1f}{t['slope_per_h']:>10.2f}"
                     f"{t['change']:>10.2f}{t['residual_sd']:>10.2f}  {t['verdict']}")
    alerts = [b["alerts_total"] - a["alerts_total"] for a, b in zip(after, after[1:], strict=False)]
    reconnects = [b["reconnects_total"] - a["reconnects_total"] for a, b in zip(after, after[1:], strict=False)]
    lines.append(f"alerts raised per sample interval: min {min(alerts, default=0):.0f}, mean "
                 f"{statistics.fmean(alerts) if alerts else 0:.1f}, last {alerts[-1] if alerts else 0:.0f}; "
                 f"{after[-1]['alerts_total']:.0f} in all")
    lines.append(f"reconnects per sample interval: mean {statistics.fmean(reconnects) if reconnects else 0:.1f}; "
                 f"cameras up at the end {after[-1]['cameras_up']:.0f} of {cameras}")
    stored = after[-1]["alerts_total"] - after[0]["alerts_total"]
    if stored > 0:
        per_alert = (after[-1]["redis_used_mb"] - after[0]["redis_used_mb"]) * 1024 / stored
        lines.append(f"Redis keeps every alert (up to settings.alerts.stream_maxlen, 100,000, and "
                     f"stream_max_age_h): {per_alert:.1f} KB of used memory per alert raised meanwhile")
    # Redis's memory grows with the alerts it is meant to keep: judged per alert above, not as a leak
    growing = sorted(k for k, t in trends.items() if t["verdict"] == "grows" and not k.startswith("redis"))
    lines.append("verdict: " + ("no process grows beyond warm-up (within noise)" if not growing
                                else f"growing: {', '.join(growing)}"))
    return "\n".join(lines), trends


async def soak(args: argparse.Namespace) -> dict:
    data = Path(tempfile.mkdtemp(prefix="soak-"))
    sup = Supervisor(quiet=("redis", "sim", "worker1", "api"))
    opts = DemoOptions(cameras=args.cameras, workers=1, api_port=free_port(), data_dir=data,
                       user="soak", password="soak-password", open_browser=False)
    rows: list[dict] = []
    faults: list[dict] = []
    try:
        system = await start_system(sup, opts, say=lambda line: print(line.replace("demo:", "soak:", 1), flush=True))
        pids = {c.name: c.proc.pid for c in sup.children if c.name in PROCESSES and c.proc is not None}
        t0 = time.time()
        community = sorted(c for c in system.live if c.startswith("cam-"))
        injector = asyncio.create_task(inject_faults(system.control_port, community, args.fault_every, faults, t0))
        end = t0 + args.minutes * 60
        while time.time() < end:
            dead = [c for c in sup.children if c.proc is not None and c.proc.returncode is not None]
            if dead:  # a soak that lost a process measures nothing: say which and how it ended
                raise RuntimeError(f"{dead[0].name} exited with {dead[0].proc.returncode}:\n" + "\n".join(dead[0].tail))
            rows.append(await sample(pids, system.cfg.settings.redis.url, system.metrics_urls[0], t0))
            r = rows[-1]
            print(f"soak: {r['t'] / 60:5.1f} min  worker {r['worker1']['rss_mb']:.0f} MB, "
                  f"{r['worker1']['fds']:.0f} fds, {r['worker1']['threads']:.0f} threads; api "
                  f"{r['api']['rss_mb']:.0f} MB; redis {r['redis_used_mb']:.1f} MB; {r['cameras_up']:.0f} up; "
                  f"{r['alerts_total']:.0f} alerts; {len(faults)} faults", flush=True)
            await asyncio.sleep(max(0.0, min(args.sample_every, end - time.time())))
        injector.cancel()
    finally:
        await sup.stop()
    text, trends = report(rows, args.warmup_min * 60, faults, len(system.live))
    return {"text": text, "trends": trends, "rows": rows, "faults": faults}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--cameras", type=int, default=300, help="live cameras, lookouts included")
    ap.add_argument("--warmup-min", type=float, default=10.0, help="minutes left out of the trend")
    ap.add_argument("--fault-every", type=float, default=10.0, help="seconds between injected faults")
    ap.add_argument("--sample-every", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--json", type=Path, help="write every sample, fault and trend here")
    args = ap.parse_args()
    if args.warmup_min >= args.minutes:
        ap.error("--warmup-min must be shorter than --minutes")
    print(f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; Python "
          f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f} at start")
    result = asyncio.run(soak(args))
    print(result["text"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
