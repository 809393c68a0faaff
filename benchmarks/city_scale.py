"""The whole system on the demo city at 250, 500 and 1,004 live cameras, on this machine.

Per size it runs the real processes (private Redis, `camera-hub sim`, one `camera-hub worker` with
the analysis planner and the demo model, `camera-hub api`) through `camera_hub.e2e.run_e2e` (the
same run and scoring as `benchmarks/e2e_score.py`), and beside the scoring period measures, over
a window after warm-up:

- CPU ms per camera-second by stage, from the worker's own per-stage thread-CPU counters
  (`camera_hub_stage_cpu_seconds_total`: decode, motion gate, detector, tracker and rules, and
  the reactor's and event loop's thread totals): receive = the reactor thread less the decode
  and motion gate it also runs; publish and loop = the event-loop thread less the rules; other =
  the rest of the process from /proc (camera threads, GC, metrics server); the simulator beside;
- resident memory (VmRSS) of the worker per live camera, and the parts the worker can count
  (packet rings, samples waiting, analysis state; the keyframe decoders are shared);
- the effective analysis interval (p50/p95; between the analysed frames' own timestamps, and between
  their receive times) of cameras the planner had hot (a candidate or an
  open episode) and of idle ones, from the worker's counters at exit;
- samples dropped, and the end-to-end score (precision, recall, onset latency per type, coverage).

    .venv/bin/python benchmarks/city_scale.py                       # 250 500 1004, ~20 min
    .venv/bin/python benchmarks/city_scale.py --sizes 1004 --seconds 240
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camera_hub.demo import Supervisor, System, default_workers  # noqa: E402
from camera_hub.e2e import format_report, run_e2e  # noqa: E402

LOOKOUTS = 4
TICK = os.sysconf("SC_CLK_TCK")
STAGES = ("decode", "motion", "detector", "rules", "reactor_thread", "loop_thread")


def cpu_of(path: str) -> float:
    """utime + stime (seconds) from a /proc stat file."""
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) / 1024 if m else 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size: pages shared with other processes (the libraries every worker maps,
    and the simulator and API too) count by their share; for several workers, what they occupy."""
    m = re.search(r"^Pss:\s+(\d+) kB", Path(f"/proc/{pid}/smaps_rollup").read_text(), re.M)
    return int(m.group(1)) / 1024 if m else 0.0


EVIDENCE = ("camera_hub_evidence_recordings", "camera_hub_evidence_disk_bytes",
            "camera_hub_evidence_written_bytes_total")


async def stage_counters(urls: list[str]) -> dict[str, float]:
    """The stage CPU counters and the evidence recorder's figures, from the workers' metrics, added up."""
    out = dict.fromkeys((*STAGES, *EVIDENCE), 0.0)
    async with httpx.AsyncClient(timeout=10) as c:
        for url in urls:
            text = (await c.get(url)).text
            for stage in STAGES:
                m = re.search(rf'camera_hub_stage_cpu_seconds_total{{stage="{stage}"}} ([0-9.e+-]+)', text)
                out[stage] += float(m.group(1)) if m else 0.0
            for name in EVIDENCE:
                m = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
                out[name] += float(m.group(1)) if m else 0.0
    return out


def snapshot(pids: list[int], sim_pid: int) -> dict:
    return {"t": time.time(), "process": sum(cpu_of(f"/proc/{pid}/stat") for pid in pids),
            "sim": cpu_of(f"/proc/{sim_pid}/stat")}


def make_probe(warmup_s: float, window_s: float):
    async def probe(system: System, sup: Supervisor, t_up: float) -> dict:
        pids = [c.proc.pid for c in sup.children if c.name.startswith("worker") and c.proc]
        sim_pid = next(c.proc.pid for c in sup.children if c.name == "sim" and c.proc)
        urls = system.metrics_urls
        await asyncio.sleep(max(0.0, t_up + warmup_s - time.time()))
        a, sa = snapshot(pids, sim_pid), await stage_counters(urls)
        peak, rec_peak, disk_peak = 0.0, 0.0, 0.0
        while time.time() < a["t"] + window_s:
            peak = max(peak, sum(rss_mb(pid) for pid in pids))
            ev = await stage_counters(urls)
            rec_peak = max(rec_peak, ev["camera_hub_evidence_recordings"])
            disk_peak = max(disk_peak, ev["camera_hub_evidence_disk_bytes"])
            await asyncio.sleep(5.0)
        b, sb = snapshot(pids, sim_pid), await stage_counters(urls)
        rss, pss = sum(rss_mb(pid) for pid in pids), sum(pss_mb(pid) for pid in pids)
        cam_s = len(system.live) * (b["t"] - a["t"])
        d = {k: sb[k] - sa[k] for k in STAGES}
        reactor, main = d["reactor_thread"], d["loop_thread"]
        process = b["process"] - a["process"]
        ms = {"receive": reactor - d["decode"] - d["motion"], "decode": d["decode"], "motion": d["motion"],
              "detector": d["detector"], "rules": d["rules"], "publish_and_loop": main - d["rules"],
              "other": process - reactor - main - d["detector"]}
        ms = {k: round(1000 * v / cam_s, 3) for k, v in ms.items()}
        ms["worker_total"] = round(1000 * process / cam_s, 3)
        ms["simulator"] = round(1000 * (b["sim"] - a["sim"]) / cam_s, 3)
        return {"window_s": round(b["t"] - a["t"], 1), "cpu_ms_per_camera_s": ms, "rss_mb": round(rss, 1),
                "rss_peak_mb": round(max(peak, rss), 1), "rss_mb_per_camera": round(rss / len(system.live), 3),
                "pss_mb": round(pss, 1), "pss_mb_per_camera": round(pss / len(system.live), 3),
                "load": os.getloadavg()[0],
                "evidence": {"recordings_peak": rec_peak, "disk_peak_mb": round(disk_peak / 2**20, 1),
                             "write_kb_s": round((sb[EVIDENCE[2]] - sa[EVIDENCE[2]]) / 1024 / (b["t"] - a["t"]), 1)}}
    return probe


def pct(xs: list[float], q: float) -> float | None:
    return round(sorted(xs)[min(len(xs) - 1, int(q * len(xs)))], 2) if xs else None


def summary(size: int, r: dict) -> str:
    p, ws = r["probe"] or {}, r["worker_stats"] or {}
    an = ws.get("analysis", {})
    hot, idle = an.get("intervals_hot", []), an.get("intervals_idle", [])
    hot_rx, idle_rx = an.get("intervals_hot_received", []), an.get("intervals_idle_received", [])
    mem = {k: round(v / 2**20, 1) for k, v in ws.get("memory_bytes", {}).items()}
    lines = [f"=== {size} live cameras ({r['cameras_live']}) on {r['workers']} worker process(es): {r['seconds']} s "
             f"scored, window {p.get('window_s')} s, "
             f"load {p.get('load', 0):.1f}",
             "CPU ms per camera-second: " + ", ".join(f"{k} {v}" for k, v in p.get("cpu_ms_per_camera_s", {}).items()),
             f"worker RSS {p.get('rss_mb')} MB (peak {p.get('rss_peak_mb')}), {p.get('rss_mb_per_camera')} MB per "
             f"camera; PSS {p.get('pss_mb')} MB, {p.get('pss_mb_per_camera')} MB per "
             f"camera; counted parts (MB): {mem}",
             f"analysis interval: hot p50 {pct(hot, 0.5)} p95 {pct(hot, 0.95)} s ({len(hot)} intervals); idle p50 "
             f"{pct(idle, 0.5)} p95 {pct(idle, 0.95)} s ({len(idle)}); max {max(hot + idle, default=None)} s "
             f"(between the frames' own timestamps; between receive times: hot p50 {pct(hot_rx, 0.5)} p95 "
             f"{pct(hot_rx, 0.95)} s, idle p50 {pct(idle_rx, 0.5)} p95 {pct(idle_rx, 0.95)} s); "
             f"planner rate {an.get('rate')} samples/s, starved at exit {an.get('starved')}; arming→sample "
             f"{an.get('wait_s')} s, arming→analysed {an.get('cycle_s')} s, budget {an.get('budget')} in flight, "
             f"mean batch {an.get('batch')}",
             f"samples dropped {ws.get('dropped')} of {ws.get('samples')} decoded",
             f"evidence recorder: {p.get('evidence')}",
             format_report(r)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1004], help="live cameras, lookouts included")
    ap.add_argument("--seconds", type=int, default=240, help="scored period per size (the scene loop is 180 s)")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds after the system is up before the window")
    ap.add_argument("--window", type=float, default=90.0, help="CPU and memory window")
    ap.add_argument("--workers", type=int, help="worker processes sharing the cameras; default: as `camera-hub demo` "
                    "(one per 500 cameras, at most one per core)")
    ap.add_argument("--json", type=Path, help="also write every result here")
    args = ap.parse_args()
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    print(f"machine: {os.cpu_count()} CPUs, {cpu}; Python {platform.python_version()}; "
          f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
    results = {}
    for size in args.sizes:
        r = asyncio.run(run_e2e(size - LOOKOUTS, args.seconds, workers=args.workers or default_workers(size),
                                say=lambda line: print(line, flush=True),
                                probe=make_probe(args.warmup, min(args.window, args.seconds - args.warmup - 5))))
        results[size] = r
        print(summary(size, r), flush=True)
    if len(results) > 1:
        print("\nper-camera cost, marginal between the smallest and largest size:")
        lo, hi = min(results), max(results)
        rl, rh = results[lo]["probe"], results[hi]["probe"]
        if rl and rh:
            print(f"  RSS {(rh['rss_mb'] - rl['rss_mb']) / (hi - lo):.3f} MB per extra camera")
    if args.json:
        for r in results.values():
            if r.get("worker_stats"):
                r["worker_stats"].pop("lags", None)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
