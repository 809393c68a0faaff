"""End-to-end score of the whole system on the simulator's demo city.

Runs the real processes (private Redis, `camera-hub sim`, `camera-hub worker`, `camera-hub api`)
for a fixed period, then compares the alerts in the API with the simulator's ground truth:
per type precision, recall and onset latency (ground-truth episode start → the alert's creation,
stamped with the time of the sample that raised it), p50/p95; and the city coverage the API
reports against the grids the live cameras watch.

    .venv/bin/python benchmarks/e2e_score.py --cameras 40 --seconds 420
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camera_hub.config import CityConfig, CrowdingRule, TamperRule, VendingRule, load_config  # noqa: E402
from camera_hub.demo import (  # noqa: E402
    DEMO_CONFIG,
    Supervisor,
    cli_argv,
    create_demo_login,
    free_port,
    live_subset,
    start_private_redis,
    wait_http,
    write_runtime_config,
)

TYPES = ("vending", "crowding", "tamper")
EARLY_S = 20.0  # an alert may start this much before the scripted start (a crowd forms gradually)
LATE_S = 5.0  # or up to this much after the scripted end (hysteresis)
SETTLE_S = 10.0  # episodes under way before ingest had settled are not scored


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    latencies: list[float] = field(default_factory=list)
    limit_s: float = 0.0
    misses: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        lat = sorted(self.latencies)
        p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))] if lat else None
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn,
                "precision": self.tp / (self.tp + self.fp) if self.tp + self.fp else None,
                "recall": self.tp / (self.tp + self.fn) if self.tp + self.fn else None,
                "latency_p50_s": statistics.median(lat) if lat else None, "latency_p95_s": p95,
                "latency_target_s": self.limit_s, "misses": self.misses, "extras": self.extras}


def latency_limit(cfg: CityConfig, kind: str) -> float:
    """Configured dwell + 2 sampling intervals + 1 s (the issue's target), largest over cameras."""
    interval = cfg.settings.ingest.sample_interval_s
    dwell = 0.0
    for cam in cfg.cameras:
        for zone in cam.zones:
            for rule in zone.rules:
                if rule.type == kind:
                    assert isinstance(rule, VendingRule | CrowdingRule | TamperRule)
                    d = rule.min_dwell_s if isinstance(rule, VendingRule) else rule.min_duration_s
                    dwell = max(dwell, d)
    return dwell + 2 * interval + 1.0


def score(cfg: CityConfig, alerts: list[dict], truth: dict[str, list[dict]], t_up: float, t_end: float) -> dict:
    out: dict[str, Score] = {}
    for kind in TYPES:
        s = out.setdefault(kind, Score(limit_s=latency_limit(cfg, kind)))
        for cam_id, episodes in truth.items():
            eps = [e for e in episodes if e["type"] == kind]
            mine = sorted((a for a in alerts if a["camera_id"] == cam_id and a["type"] == kind),
                          key=lambda a: a["started_at"])
            used: set[int] = set()
            for e in eps:
                scored = e["start"] >= t_up + SETTLE_S and e["start"] + s.limit_s + 5 <= t_end
                hit = next((i for i, a in enumerate(mine) if i not in used
                            and e["start"] - EARLY_S <= a["started_at"] <= (e["end"] or t_end) + LATE_S), None)
                if hit is not None:
                    used.add(hit)
                    if scored:
                        s.tp += 1
                        created = min((h["at"] for h in mine[hit]["history"] if h["action"] == "created"),
                                      default=mine[hit]["updated_at"])
                        s.latencies.append(created - e["start"])
                elif scored:
                    s.fn += 1
                    s.misses.append(f"{cam_id} {kind} at +{e['start'] - t_up:.0f}s")
            for i, a in enumerate(mine):
                if i not in used and a["started_at"] >= t_up + SETTLE_S:
                    s.fp += 1
                    s.extras.append(f"{cam_id} {kind} at +{a['started_at'] - t_up:.0f}s")
    return {k: v.as_dict() for k, v in out.items()}


async def fetch_alerts(base: str, headers: dict[str, str]) -> list[dict]:
    items: list[dict] = []
    cursor = None
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = (await client.get(f"{base}/api/v1/alerts", params=params, headers=headers)).json()
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items


async def run(args: argparse.Namespace) -> dict:
    sup = Supervisor(quiet=("redis", "sim", "worker1", "api"))
    data = Path(tempfile.mkdtemp(prefix="e2e-"))
    try:
        redis_url = await start_private_redis(sup, data)
        src = load_config(DEMO_CONFIG)
        live = live_subset(src, args.cameras)
        sim_port, control_port, api_port = free_port(), free_port(), free_port()
        cfg = write_runtime_config(DEMO_CONFIG, data / "config", live=live, sim_port=sim_port, redis_url=redis_url,
                                   data_dir=data, api_port=api_port)
        print(f"e2e: {len(live)} live cameras; preparing the simulator", flush=True)
        sim = await sup.start("sim", cli_argv("sim", "--config", str(data / "config"), "--cameras",
                                              str(args.cameras), "--port", str(sim_port),
                                              "--control-port", str(control_port)))
        await wait_http(f"http://127.0.0.1:{control_port}/cameras", 900, "the simulator", sim)
        await sup.start("worker1", cli_argv("worker", "--config", str(data / "config"), "--worker-id", "e2e-1"))
        api = await sup.start("api", cli_argv("api", "--config", str(data / "config")))
        base = f"http://127.0.0.1:{api_port}"
        await wait_http(base + "/healthz", 120, "the API", api)
        await create_demo_login(cfg, "e2e", "e2e-password")
        t_up = time.time()
        async with httpx.AsyncClient(timeout=10) as client:
            token = (await client.post(f"{base}/api/v1/auth/login",
                                       json={"username": "e2e", "password": "e2e-password"})).json()["token"]
            headers = {"Authorization": f"Bearer {token}"}
            while (left := t_up + args.seconds - time.time()) > 0:
                await asyncio.sleep(min(30.0, left))
                print(f"e2e: {time.time() - t_up:.0f}/{args.seconds} s", flush=True)
            t_end = time.time()
            alerts = await fetch_alerts(base, headers)
            truth = {cid: (await client.get(f"http://127.0.0.1:{control_port}/ground_truth/{cid}")).json()
                     for cid in sorted(live)}
            coverage = (await client.get(f"{base}/api/v1/coverage", headers=headers)).json()
            cameras = (await client.get(f"{base}/api/v1/cameras", headers=headers, params={"limit": 2000})).json()
        up = {c["id"] for c in cameras.get("items", cameras) if c.get("status", {}) and
              (c["status"] or {}).get("state") in ("up", "degraded")}
        expected_covered = len({g for c in cfg.cameras if c.id in up for g in c.grids})
        return {
            "cameras_live": len(live), "seconds": round(t_end - t_up), "alerts": len(alerts),
            "scores": score(cfg, alerts, truth, t_up, t_end),
            "coverage": {"city_covered": coverage["city"]["covered"], "expected_from_cameras_up": expected_covered,
                         "cameras_up": len(up), "grids": coverage["city"]["grids"]},
        }
    finally:
        await sup.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=40, help="live community cameras (plus the 4 lookouts)")
    ap.add_argument("--seconds", type=int, default=420, help="scored period (the scene loop is 180 s)")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args()
    result = asyncio.run(run(args))
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    print(f"\nmachine: {os.cpu_count()} CPUs, {cpu}; Python {platform.python_version()}")
    print(f"{result['cameras_live']} live cameras for {result['seconds']} s; {result['alerts']} alerts")
    print(f"{'type':<10}{'TP':>4}{'FP':>4}{'FN':>4}{'precision':>11}{'recall':>8}{'p50 s':>8}{'p95 s':>8}{'target':>8}")
    for kind, s in result["scores"].items():
        def f(x: object) -> str:
            return "-" if x is None else f"{x:.2f}"

        print(f"{kind:<10}{s['tp']:>4}{s['fp']:>4}{s['fn']:>4}{f(s['precision']):>11}{f(s['recall']):>8}"
              f"{f(s['latency_p50_s']):>8}{f(s['latency_p95_s']):>8}{s['latency_target_s']:>8.1f}")
        for line in s["misses"] + s["extras"]:
            print(f"    {'missed' if line in s['misses'] else 'extra '}: {line}")
    cov = result["coverage"]
    print(f"coverage: API says {cov['city_covered']}/{cov['grids']} grids covered; the {cov['cameras_up']} cameras "
          f"up watch {cov['expected_from_cameras_up']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
