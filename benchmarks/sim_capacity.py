"""Simulator capacity: server CPU time per served stream-second at 360p 10 fps.

    .venv/bin/python benchmarks/sim_capacity.py            # 100 and 500 cameras, 20 s each

Starts the simulator in a subprocess (scenes encoded beforehand, cached), connects N raw RTSP
readers that do the handshake and then only drain bytes (their cost is not counted), and
reads the server process's CPU time (utime + stime from /proc/<pid>/stat) over a measurement
window. Target: ≤ 1 ms of server CPU per stream-second, so that the simulator never limits an
ingest benchmark on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camera_hub.sim.scenes import SQUARE_SCENES, STREET_SCENES  # noqa: E402

SCENES = STREET_SCENES + SQUARE_SCENES
WIDTH, HEIGHT, FPS = 640, 360, 10
TARGET_MS = 1.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def machine() -> str:
    import av

    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor())
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({model}); Python {platform.python_version()}, PyAV {av.__version__}; "
            f"load average at start {load}")


def serve(cameras: int, cache_dir: Path, port_file: Path) -> None:
    """Subprocess: the simulator alone (what is measured)."""
    from camera_hub.sim.rtsp_server import SimCameraSpec, SimServer

    specs = [SimCameraSpec(f"cam-{i:04d}", SCENES[i % len(SCENES)], offset_s=(i * 7.3) % 180) for i in range(cameras)]

    async def run() -> None:
        server = SimServer(specs, control_port=None, width=WIDTH, height=HEIGHT, fps=FPS, cache_dir=cache_dir)
        await server.start()
        await asyncio.to_thread(port_file.write_text, str(server.port))
        await asyncio.Event().wait()

    asyncio.run(run())


def measure(cameras: int, seconds: float, cache_dir: Path) -> dict[str, float]:
    from camera_hub.sim.rtsp_client import RtspClient

    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(cameras), "--cache-dir", str(cache_dir),
                                 "--port-file", str(port_file)])
        try:
            deadline = time.monotonic() + 120
            while not port_file.exists() or not port_file.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("simulator did not start")
                time.sleep(0.1)
            port = int(port_file.read_text())
            clients = []
            for i in range(cameras):
                c = RtspClient(f"rtsp://127.0.0.1:{port}/cam-{i:04d}/sub", timeout=10)
                c.play()
                c.sock.setblocking(False)
                clients.append(c)
            sel = selectors.DefaultSelector()
            for c in clients:
                sel.register(c.sock, selectors.EVENT_READ, c)
            closed = 0

            def drain(until: float) -> int:
                nonlocal closed
                total = 0
                while (left := until - time.monotonic()) > 0:
                    for key, _ in sel.select(timeout=min(left, 0.5)):
                        try:
                            data = key.fileobj.recv(1 << 18)
                        except BlockingIOError:
                            continue
                        if not data:
                            sel.unregister(key.fileobj)
                            closed += 1
                        total += len(data)
                return total

            drain(time.monotonic() + 3.0)  # settle: opening bursts over
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            received = drain(t0 + seconds)
            cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
            for c in clients:
                c.close()
        finally:
            proc.terminate()
            proc.wait(10)
    wall = t1 - t0
    stream_s = cameras * wall
    cpu = cpu1 - cpu0
    return {"cameras": cameras, "wall_s": wall, "cpu_s": cpu, "ms_per_stream_s": cpu * 1000 / stream_s,
            "cpu_pct": cpu / wall * 100, "mbit_s": received * 8 / wall / 1e6, "closed": closed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, nargs="+", default=[100, 500])
    ap.add_argument("--seconds", type=float, default=20.0, help="measurement window per run")
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    from camera_hub.sim.encode import default_cache_dir, encode_scene

    cache_dir = args.cache_dir or default_cache_dir()
    if args.serve:
        serve(args.serve, cache_dir, args.port_file)
        return
    print(f"machine: {machine()}")
    print(f"encoding/loading {len(SCENES)} scenes at {WIDTH}x{HEIGHT} {FPS} fps (cache: {cache_dir}) ...", flush=True)
    for scene in SCENES:
        encode_scene(scene, WIDTH, HEIGHT, fps=FPS, cache_dir=cache_dir)
    rows = []
    for n in args.cameras:
        print(f"measuring {n} cameras for {args.seconds:.0f} s ...", flush=True)
        rows.append(measure(n, args.seconds, cache_dir))
    print()
    print(f"Simulator server CPU per served stream-second, {WIDTH}x{HEIGHT} {FPS} fps H.264 over RTSP/TCP "
          f"(target <= {TARGET_MS:.1f} ms)")
    print(f"{'cameras':>8} {'window s':>9} {'server CPU s':>13} {'CPU % core':>11} {'ms/stream-s':>12} "
          f"{'Mbit/s out':>11} {'closed':>7}  verdict")
    for r in rows:
        verdict = "OK" if r["ms_per_stream_s"] <= TARGET_MS and not r["closed"] else "OVER TARGET"
        print(f"{r['cameras']:>8} {r['wall_s']:>9.1f} {r['cpu_s']:>13.2f} {r['cpu_pct']:>11.1f} "
              f"{r['ms_per_stream_s']:>12.3f} {r['mbit_s']:>11.1f} {r['closed']:>7}  {verdict}")


if __name__ == "__main__":
    main()
