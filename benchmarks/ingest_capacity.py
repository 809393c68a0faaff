"""Ingest capacity: how many cameras the ingest workers hold on this machine, and at what cost.

One command runs everything (the simulator in this process, `camera-hub worker` processes
sharing the cameras through Redis, like production):

    .venv/bin/python benchmarks/ingest_capacity.py            # 50 100 200 300 400 + baselines
    .venv/bin/python benchmarks/ingest_capacity.py --sizes 50 100 --measure-s 10   # quicker

For each size (360p, 10 fps, GOP 20, one analysed keyframe per 2 s per camera) it prints the
workers' CPU ms per stream-second, p50/p95 sample lag (frame received → sample handed to the
consumer) and dropped samples, with the default (native) RTSP receiver. Then the same streams
read through FFmpeg's RTSP demuxer (``receiver: pyav``), the full-decode baseline (every frame
decoded, what an NVR pays) on the same streams as a ratio, the same at 1080p 25 fps, PyAV's bare keyframe-only floor
measured now (the machine is shared: compare against it, not only against DESIGN §6), and a
reconnect storm: every camera of the largest size cut off at once (simulator "restart": drop,
refuse 2 s, serve again), time until all are up again, and the peak opens in flight per worker.
Needs Redis at --redis-url.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camera_hub.ingest.status import read_states  # noqa: E402
from camera_hub.sim.rtsp_server import SimCameraSpec, SimServer  # noqa: E402


@dataclass
class Run:
    label: str
    cameras: int
    cpu_ms_per_stream_s: float
    lag_p50: float | None
    lag_p95: float | None
    samples: int
    dropped: int
    sim_cpu_pct: float
    up: int
    kbps: float
    extra: str = ""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor())
    return f"{model}, {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.1f}, Python {platform.python_version()}"


def write_config(path: Path, sim: SimServer, n: int, prefix: str, keyframes_only: bool, receiver: str) -> None:
    grids = [{"id": f"g{i}", "category": "commercial", "households": 300} for i in range(20)]
    doc = {
        "city": {"id": "bench", "name": "Bench"},
        "districts": [{"id": "d", "name": "D", "streets": [{"id": "s", "name": "S", "communities": [
            {"id": "c", "name": "C", "grids": grids}]}]}],
        "cameras": [{"id": f"cam{i:03d}", "name": f"cam{i:03d}", "main_url": sim.url(f"cam{i:03d}"),
                     "location": {"lat": 30.0, "lon": 120.0}, "grids": [f"g{i % 20}"]} for i in range(n)],
        "settings": {"redis": {"prefix": prefix},
                     "ingest": {"keyframes_only": keyframes_only, "sample_interval_s": 2.0, "receiver": receiver,
                                "status_interval_s": 2.0, "queue_size": 1024}},
    }
    path.write_text(yaml.safe_dump(doc))


async def wait_all_up(redis, prefix: str, ids: list[str], timeout_s: float, since: float = 0.0) -> tuple[float, int]:
    t0 = time.monotonic()
    up = 0
    while time.monotonic() - t0 < timeout_s:
        states = await read_states(redis, prefix, ids)
        up = sum(1 for s in states.values() if s.state == "up" and s.since >= since)
        if up == len(ids):
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - t0, up


def spawn_worker(tmp: Path, w: int, redis_url: str) -> subprocess.Popen:
    with (tmp / f"w{w}.log").open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "camera_hub.cli", "worker", "--config", str(tmp / "city.yaml"),
             "--worker-id", f"w{w}", "--redis-url", redis_url, "--ingest-only", "--log-level", "WARNING",
             "--stats-json", str(tmp / f"w{w}.json")], cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)


async def run_size(args: argparse.Namespace, n: int, *, label: str, keyframes_only: bool = True,
                   width: int = 640, height: int = 360, fps: int = 10, storm: bool = False,
                   receiver: str = "native", workers: int | None = None) -> Run:
    ids = [f"cam{i:03d}" for i in range(n)]
    sim = SimServer([SimCameraSpec(c, "smoke") for c in ids], width=width, height=height, fps=fps, gop=2 * fps,
                    control_port=None, cache_dir=Path(args.cache_dir))
    await sim.start()
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    redis = aioredis.from_url(args.redis_url)
    tmp = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    write_config(tmp / "city.yaml", sim, n, prefix, keyframes_only, receiver)
    workers = min(workers or args.workers, n)
    procs = [spawn_worker(tmp, w, args.redis_url) for w in range(workers)]
    extra = ""
    try:
        took, up = await wait_all_up(redis, prefix, ids, 120)
        await asyncio.sleep(args.settle_s)
        cpu0, sim0, t0 = sum(cpu_seconds(p.pid) for p in procs), time.process_time(), time.time()
        await asyncio.sleep(args.measure_s)
        cpu1, sim1, t1 = sum(cpu_seconds(p.pid) for p in procs), time.process_time(), time.time()
        states = await read_states(redis, prefix, ids)
        up = sum(1 for s in states.values() if s.state == "up")
        kbps = statistics.mean([s.bitrate for s in states.values()] or [0.0]) / 1000
        if storm:
            t_cut = time.time()
            for c in ids:
                sim.fault(c, "restart")
            back_s, back = await wait_all_up(redis, prefix, ids, 90, since=t_cut + 0.01)
            extra = f"reconnect storm: {back}/{n} up again in {back_s:.1f} s"
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        await sim.stop()
        async for key in redis.scan_iter(match=f"{prefix}*"):
            await redis.delete(key)
        await redis.aclose()
    stats = [json.loads((tmp / f"w{w}.json").read_text()) for w in range(workers) if (tmp / f"w{w}.json").exists()]
    lags = sorted(lag for st in stats for t, lag in st["lags"] if t0 <= t <= t1)

    def q(p: float) -> float | None:
        return lags[min(len(lags) - 1, int(p * len(lags)))] if lags else None

    if storm:
        extra += f"; peak opens in flight per worker {[st['opens_peak'] for st in stats]} (bound 50)"
    return Run(label, n, (cpu1 - cpu0) * 1000 / (n * (t1 - t0)), q(0.5), q(0.95), len(lags),
               sum(st["dropped"] for st in stats), 100 * (sim1 - sim0) / (t1 - t0), up, kbps,
               extra or f"all up after {took:.1f} s")


FLOOR = r"""
import av, sys, threading, time, resource
urls = sys.argv[2:]; dur = float(sys.argv[1]); stop = time.time() + dur + 8
def read(url):
    c = av.open(url, options={"rtsp_transport": "tcp", "timeout": "5000000", "fpsprobesize": "0",
                              "analyzeduration": "500000"})
    s = c.streams.video[0]; s.codec_context.skip_frame = "NONKEY"; s.codec_context.thread_count = 1
    for p in c.demux(s):
        if p.is_keyframe: s.codec_context.decode(p)
        if time.time() > stop: break
ts = [threading.Thread(target=read, args=(u,), daemon=True) for u in urls]
[t.start() for t in ts]; time.sleep(6)
r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.time(); time.sleep(dur)
r1 = resource.getrusage(resource.RUSAGE_SELF); t1 = time.time()
cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
print(cpu * 1000 / (len(urls) * (t1 - t0)))
"""


async def pyav_floor(args: argparse.Namespace, n: int) -> float:
    """Bare PyAV keyframe-only reading (no ring, no sampler, no status): the floor."""
    ids = [f"cam{i:03d}" for i in range(n)]
    sim = SimServer([SimCameraSpec(c, "smoke") for c in ids], control_port=None, cache_dir=Path(args.cache_dir))
    await sim.start()
    try:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", FLOOR, str(args.measure_s),
                                                    *[sim.url(c) for c in ids], stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        return float(out.decode().strip().splitlines()[-1])
    finally:
        await sim.stop()


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 300, 400])
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default: one per core)")
    ap.add_argument("--measure-s", type=float, default=15.0)
    ap.add_argument("--settle-s", type=float, default=3.0)
    ap.add_argument("--baseline-cameras", type=int, default=50)
    ap.add_argument("--hd-cameras", type=int, default=12)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    ap.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "camera-hub-sim-cache"))
    ap.add_argument("--skip-baselines", action="store_true")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    print(f"simulator: 'smoke' scene, H.264, in this process; {args.workers} worker processes; "
          f"measure {args.measure_s:.0f} s per size\n", flush=True)
    runs: list[Run] = []
    header = f"{'run':<22}{'cams':>5}{'up':>5}{'CPU ms/stream-s':>17}{'lag p50':>9}{'lag p95':>9}" \
             f"{'samples':>9}{'dropped':>9}{'kbit/s':>8}{'sim CPU %':>11}  notes"
    print(header, flush=True)

    def show(r: Run) -> None:
        runs.append(r)
        print(f"{r.label:<22}{r.cameras:>5}{r.up:>5}{r.cpu_ms_per_stream_s:>17.2f}{fmt(r.lag_p50):>9}"
              f"{fmt(r.lag_p95):>9}{r.samples:>9}{r.dropped:>9}{r.kbps:>8.0f}{r.sim_cpu_pct:>11.0f}  {r.extra}",
              flush=True)

    for i, n in enumerate(args.sizes):
        show(await run_size(args, n, label="keyframes 360p", storm=i == len(args.sizes) - 1))
    if not args.skip_baselines:
        nb = args.baseline_cameras
        kf = next((r for r in runs if r.cameras == nb), None) or await run_size(args, nb, label="keyframes 360p")
        if kf not in runs:
            show(kf)
        ffmpeg = await run_size(args, nb, label="keyframes 360p pyav", receiver="pyav")
        show(ffmpeg)
        full = await run_size(args, nb, label="full decode 360p", keyframes_only=False)
        show(full)
        nh = args.hd_cameras
        # one worker process: with a handful of cameras, a second process's fixed upkeep (heartbeats,
        # leases, status) would be charged to them
        hd_kf = await run_size(args, nh, label="keyframes 1080p25", width=1920, height=1080, fps=25, workers=1)
        show(hd_kf)
        hd_full = await run_size(args, nh, label="full decode 1080p25", keyframes_only=False, width=1920,
                                 height=1080, fps=25, workers=1)
        show(hd_full)
        floor = await pyav_floor(args, nb)
        print(f"\nfull-decode / keyframe-only CPU at 360p ({nb} cameras): "
              f"{full.cpu_ms_per_stream_s / kf.cpu_ms_per_stream_s:.1f}x")
        print(f"full-decode / keyframe-only CPU at 1080p25 ({nh} cameras): "
              f"{hd_full.cpu_ms_per_stream_s / hd_kf.cpu_ms_per_stream_s:.1f}x")
        print(f"bare PyAV keyframe-only floor now, {nb} cameras 360p: {floor:.2f} ms per stream-second "
              f"(ours: {kf.cpu_ms_per_stream_s:.2f} native receiver, {ffmpeg.cpu_ms_per_stream_s:.2f} through "
              f"FFmpeg's demuxer)")
    held = [r for r in runs if r.label == "keyframes 360p" and r.up == r.cameras and (r.lag_p95 or 9) < 1.0]
    print(f"largest size held with p95 lag < 1 s: {max((r.cameras for r in held), default=0)}")


if __name__ == "__main__":
    asyncio.run(main())
