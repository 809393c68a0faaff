"""Live view (WebRTC, WHEP): CPU per viewer, time to first frame and end-to-end delay, on this machine.

    .venv/bin/python benchmarks/live_view.py                 # 360p and 1080p, ~8 min
    .venv/bin/python benchmarks/live_view.py --sizes 360p --seconds 10
    .venv/bin/python benchmarks/live_view.py --sizes 1080p --senders aiortc lean   # before/after, one run

Runs itself inside a private network namespace (loopback, and 10.213.0.1 on a veth pair kept
inside it: no packet leaves the machine; root, or unprivileged user namespaces). Per stream size
it starts the real processes (private Redis, the simulator with one camera, `camera-hub worker
--ingest-only`, `camera-hub api`) and measures:

- time to first frame: ``--joins`` single viewers one after another, each at a random point of
  the GOP, from the start of the WHEP exchange (offer made, POST, ICE, DTLS) to the first
  *decoded* picture in the client (aiortc), p50/p95; and the worker's part (session created →
  first frame handed to the RTP sender);
- end-to-end delay, during those joins: from 0.5 s after a viewer's first frame (past the GOP it
  joins on, which comes at once) and for 2 s, each decoded picture's capture time against the
  clock when the client has it. The simulator burns each frame's index into its picture
  (camera_hub/sim/stamp.py) and sends it on the wall clock, so the index read back gives the
  capture time (``SimServer.captured_at``), as a camera's on-screen clock would; p50/p95/max;
- CPU per viewer: worker and API process CPU (utime + stime from /proc, not the client's; the
  worker's kernel part, stime, also apart) over
  ``--seconds`` with 0, 1, 4 and 16 viewers watching; per viewer = (CPU with N − CPU with 0) / N.
  These clients count frames instead of decoding them (a client decoding 16 streams would take
  the cores the worker is measured on); every viewer must keep receiving frames.

``--senders``: the worker's RTP send loop, ``lean`` (camera_hub/live/sender.py, the default) or
``aiortc`` (aiortc's own, ``CAMERA_HUB_LIVE_AIORTC_SENDER=1``); with both, each size is measured
with each, one after the other, in the same run.

Writes the figures as JSON (``--out``, default benchmarks/out/live_view.json) and prints the
Markdown tables of benchmarks/README.md, Live view.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TICK = os.sysconf("SC_CLK_TCK")
SIZES = {"360p": (640, 360, 10, 20), "1080p": (1920, 1080, 25, 50)}  # width, height, fps, GOP (frames)
VIEWERS = (1, 4, 16)
DELAY_AFTER_S, DELAY_WINDOW_S = 0.5, 2.0  # end-to-end delay: frames from 0.5 s after the first, for 2 s


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def cpu_s(pid: int) -> float:
    return sum(cpu_split(pid))


def delay(sim: Any, frame: Any, received: float) -> float | None:
    """Seconds from the capture of a decoded frame (its index, burnt into the picture by the
    simulator, camera_hub/sim/stamp.py, and the simulator's schedule) to ``received`` (wall
    clock); None when the stamp cannot be read."""
    import numpy as np

    from camera_hub.sim import stamp

    plane = frame.planes[0]  # luma, read in place: the stamp is in its top rows
    rows = np.frombuffer(plane, np.uint8)[:plane.line_size * stamp.BLOCK].reshape(stamp.BLOCK, plane.line_size)
    index = stamp.read(rows[:, :frame.width])
    captured = sim.captured_at("cam1", index, received) if index is not None else None
    return received - captured if captured is not None else None


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(size: str, sender: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from camera_hub.live.client import WhepViewer, count_only_decoder
    from camera_hub.live.harness import start_live_system, worker_stats
    from camera_hub.live.server import AIORTC_SENDER_ENV
    from camera_hub.sim.rtsp_server import SimCameraSpec

    width, height, fps, gop = SIZES[size]
    print(f"[{size} {sender}] starting (the first run encodes the scene: up to a minute at 1080p)", flush=True)
    os.environ[AIORTC_SENDER_ENV] = "1" if sender == "aiortc" else "0"  # the worker inherits it
    system = await start_live_system(work / f"{size}-{sender}", [SimCameraSpec("cam1", "smoke")], width=width,
                                     height=height, fps=fps, gop=gop, up_timeout_s=180, stamp_frames=True,
                                     live={"max_sessions_per_user": 64, "max_viewers_per_camera": 64})
    size = f"{size} {sender}"
    out: dict[str, Any] = {"size": size, "sender": sender, "width": width, "height": height, "fps": fps,
                           "gop_s": gop / fps}
    token = system.tokens["viewer"]
    worker, api = system.pids["worker1"], system.pids["api"]
    try:
        # ---------------------------------------------------------------- time to first frame (decoding)
        ttff, server_part, delays, unread = [], [], [], 0
        for i in range(args.joins):
            await asyncio.sleep(random.uniform(0, gop / fps))
            v = WhepViewer(system.api_url, "cam1", token=token)
            seen: list[tuple[float, float | None]] = []  # (received, delay): the stamp read at once

            def on_frame(frame: Any, seen: list[tuple[float, float | None]] = seen) -> None:
                now = time.time()
                seen.append((now, delay(system.sim, frame, now)))

            v.on_frame = on_frame
            status = await v.open()
            assert status == 201, (status, v.detail)
            if not await v.wait_frames(1, gop / fps + 10):
                raise RuntimeError(f"join {i}: no frame")
            ttff.append(v.first_frame_s)
            await asyncio.sleep(DELAY_AFTER_S + DELAY_WINDOW_S)  # live frames, past the GOP it joined on
            first = seen[0][0]
            for t, d in seen:
                if t - first >= DELAY_AFTER_S:
                    if d is None:
                        unread += 1
                    else:
                        delays.append(d)
            st = await worker_stats(system)
            server_part += [x["first_frame_s"] for x in st["viewers"] if x["first_frame_s"] is not None]
            await v.close()
        out["ttff_s"] = {"p50": quantile(ttff, 0.5), "p95": quantile(ttff, 0.95), "max": max(ttff), "n": len(ttff),
                         "worker_p50": quantile(server_part, 0.5), "worker_p95": quantile(server_part, 0.95)}
        if not delays:
            raise RuntimeError(f"no frame's stamp could be read ({unread} frames)")
        out["delay_s"] = {"p50": quantile(delays, 0.5), "p95": quantile(delays, 0.95), "max": max(delays),
                          "frames": len(delays), "unread": unread}
        print(f"[{size}] time to first frame p50 {out['ttff_s']['p50']:.3f} s, p95 {out['ttff_s']['p95']:.3f} s; "
              f"end-to-end delay p50 {out['delay_s']['p50'] * 1000:.0f} ms, p95 {out['delay_s']['p95'] * 1000:.0f} ms "
              f"({len(delays)} frames, {unread} unread)", flush=True)

        # ---------------------------------------------------------------- CPU per viewer (counting clients)
        decode_again = count_only_decoder()
        await asyncio.sleep(2.0)
        rows = []
        for n in (0, *VIEWERS):
            viewers = [WhepViewer(system.api_url, "cam1", token=token) for _ in range(n)]
            a0 = cpu_s(api)
            statuses = await asyncio.gather(*(v.open() for v in viewers))
            assert all(s == 201 for s in statuses), statuses
            api_signalling = cpu_s(api) - a0
            ok = await asyncio.gather(*(v.wait_frames(fps, 20) for v in viewers))
            assert all(ok), [v.frames for v in viewers]
            await asyncio.sleep(2.0)  # past the catch-up burst
            frames0 = [v.frames for v in viewers]
            w0, a0, t0 = cpu_split(worker), cpu_s(api), time.monotonic()
            await asyncio.sleep(args.seconds)
            w1, a1, t1 = cpu_split(worker), cpu_s(api), time.monotonic()
            wu, ws = ((b - a) / (t1 - t0) for a, b in zip(w0, w1, strict=True))  # user, kernel
            w0, w1 = sum(w0), sum(w1)
            got = [v.frames - f for v, f in zip(viewers, frames0, strict=True)]
            st = await worker_stats(system)
            await asyncio.gather(*(v.close() for v in viewers))
            row = {"viewers": n, "worker_cores": (w1 - w0) / (t1 - t0), "worker_user_cores": wu,
                   "worker_system_cores": ws, "api_cores": (a1 - a0) / (t1 - t0),
                   "api_signalling_ms_per_session": 1000 * api_signalling / n if n else None,
                   "fps_min": min(got) / (t1 - t0) if got else None,
                   "dropped": sum(x["dropped"] for x in st["viewers"])}
            rows.append(row)
            print(f"[{size}] {n:2d} viewers: worker {row['worker_cores']:.4f} cores (user {wu:.4f}, system {ws:.4f}), "
                  f"api {row['api_cores']:.4f}"
                  + (f", slowest viewer {row['fps_min']:.1f} fps" if n else ""), flush=True)
            await asyncio.sleep(2.0)
        base = rows[0]
        for row in rows[1:]:
            row["worker_per_viewer"] = (row["worker_cores"] - base["worker_cores"]) / row["viewers"]
            row["api_per_viewer"] = (row["api_cores"] - base["api_cores"]) / row["viewers"]
        out["cpu"] = rows
        decode_again()  # the next size's joins decode again
    finally:
        await system.stop()
    return out


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| stream | viewers | worker CPU (cores) | of which kernel | per viewer | API CPU (cores) | "
             "slowest viewer fps |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for row in r["cpu"]:
            per = f"{row['worker_per_viewer']:.4f}" if "worker_per_viewer" in row else "–"
            fps = f"{row['fps_min']:.1f}" if row["fps_min"] is not None else "–"
            lines.append(f"| {r['size']} {r['fps']} fps | {row['viewers']} | {row['worker_cores']:.4f} | "
                         f"{row['worker_system_cores']:.4f} | {per} | "
                         f"{row['api_cores']:.4f} | {fps} |")
    lines += ["", "| stream | GOP | first frame p50 | p95 | max | worker part p50 / p95 | joins "
              "| end-to-end delay p50 / p95 / max | frames |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        t, d = r["ttff_s"], r["delay_s"]
        lines.append(f"| {r['size']} | {r['gop_s']:.1f} s | {t['p50']:.3f} s | {t['p95']:.3f} s | {t['max']:.3f} s | "
                     f"{t['worker_p50']:.3f} / {t['worker_p95']:.3f} s | {t['n']} | "
                     f"{d['p50'] * 1000:.0f} / {d['p95'] * 1000:.0f} / {d['max'] * 1000:.0f} ms | {d['frames']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--senders", nargs="+", default=["lean"], choices=["lean", "aiortc"])
    ap.add_argument("--seconds", type=float, default=20.0, help="CPU window per viewer count")
    ap.add_argument("--joins", type=int, default=20, help="single joins for time to first frame")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "live_view.json")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    from camera_hub.live.harness import in_netns, netns_problem, run_in_netns

    if not args.inside:
        if (why := netns_problem()) is not None:
            sys.exit(f"live_view: {why}")
        argv = [sys.executable, __file__, "--inside", "--sizes", *args.sizes, "--senders", *args.senders,
                "--seconds", str(args.seconds),
                "--joins", str(args.joins), "--out", str(args.out)]
        run = run_in_netns(argv, timeout_s=3600)
        sys.stdout.write(run.stdout)
        sys.stderr.write(run.stderr[-5000:] if run.returncode else "")
        sys.exit(run.returncode)
    assert in_netns()

    async def run_all() -> list[dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="live-view-") as tmp:
            return [await measure(size, sender, args, Path(tmp)) for size in args.sizes for sender in args.senders]

    results = asyncio.run(run_all())
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.machine())
    doc = {"machine": {"cpus": os.cpu_count(), "processor": model, "python": platform.python_version(),
                       "load_average_at_end": os.getloadavg()},
           "date": time.strftime("%Y-%m-%d"), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print()
    print(table(results))


if __name__ == "__main__":
    main()
