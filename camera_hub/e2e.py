"""End-to-end score of the whole system against the simulator's ground truth.

:func:`run_e2e` brings the demo city up with the real processes (private Redis, ``camera-hub sim``,
``camera-hub worker``, ``camera-hub api``: :func:`camera_hub.demo.start_system`), cuts one camera
off part-way (the demo's scripted outage, kept until the end), lets it run for a fixed period,
then compares what the API says with what the simulator knows:

- alerts, per type: precision, recall and onset latency (ground-truth episode start → the
  alert's creation, stamped with the time of the sample that raised it), p50/p95 — :func:`score`;
- coverage: the grids the API reports covered against the grids of the cameras the simulator
  is serving without a fault.

``benchmarks/e2e_score.py`` (the figures in ``benchmarks/README.md``) and the CI test
``tests/system/test_e2e_score.py`` both run this; only the period and camera count differ.
:mod:`camera_hub.chaos` builds on the same pieces (:func:`open_run`, :func:`collect`) to run it
while parts of the system are killed and restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import httpx

from camera_hub.config import CityConfig, CrowdingRule, TamperRule, VendingRule
from camera_hub.demo import (
    DEMO_CONFIG,
    DemoOptions,
    Supervisor,
    System,
    free_port,
    outage_camera,
    scripted_outage,
    start_system,
)

TYPES = ("vending", "crowding", "tamper", "camera_offline")
EARLY_S = 20.0  # an alert may start this much before the scripted start (a crowd forms gradually)
LATE_S = 5.0  # or up to this much after the scripted end (hysteresis)
SETTLE_S = 10.0  # episodes under way before ingest had settled are not scored
OUTAGE_AFTER_S = 20.0  # the outage camera is cut off this long after the system is up, until the end


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    latencies: list[float] = field(default_factory=list)
    limit_s: float = 0.0
    misses: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    matches: list[str] = field(default_factory=list)
    pairs: list[tuple[str, float]] = field(default_factory=list)  # (alert id, ground-truth start) of each TP

    def as_dict(self) -> dict[str, object]:
        lat = sorted(self.latencies)
        p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))] if lat else None
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn,
                "precision": self.tp / (self.tp + self.fp) if self.tp + self.fp else None,
                "recall": self.tp / (self.tp + self.fn) if self.tp + self.fn else None,
                "latency_p50_s": statistics.median(lat) if lat else None, "latency_p95_s": p95,
                "latency_target_s": self.limit_s, "misses": self.misses, "extras": self.extras,
                "matches": self.matches, "pairs": self.pairs}


def latency_limit(cfg: CityConfig, kind: str) -> float:
    """Configured dwell + 2 sampling intervals + 1 s (the issue's target), largest over cameras;
    for ``camera_offline`` the dwell is the offline grace period."""
    interval = cfg.settings.ingest.sample_interval_s
    dwell = cfg.settings.alerts.offline_grace_s if kind == "camera_offline" else 0.0
    for cam in cfg.cameras:
        for zone in cam.zones:
            for rule in zone.rules:
                if rule.type == kind:
                    assert isinstance(rule, VendingRule | CrowdingRule | TamperRule)
                    d = rule.min_dwell_s if isinstance(rule, VendingRule) else rule.min_duration_s
                    dwell = max(dwell, d)
    return dwell + 2 * interval + 1.0


Windows = Sequence[tuple[float, float]]  # (from, to), wall time


def watchable(start: float, bound: float, gaps: Windows, need: float) -> bool:
    """Does [start, bound] hold a stretch of ``need`` seconds outside ``gaps``?"""
    t = start
    for a, b in sorted(gaps):
        if b <= t:
            continue
        if a >= bound:
            break
        if a - t >= need:
            return True
        t = b
    return bound - t >= need


def score(cfg: CityConfig, alerts: list[dict], truth: dict[str, list[dict]], t_up: float, t_end: float, *,
          blind: Windows = (), unwatched: Mapping[str, Windows] | None = None) -> dict:
    """Alerts (as the API lists them) against ground-truth episodes (as the simulator's control API
    gives them, per camera). An alert matches an episode of the same camera and type when it
    starts between ``EARLY_S`` before the episode's start and ``LATE_S`` after its end; each
    episode and each alert match once. An episode is scored when it starts after ``SETTLE_S``
    and early enough for its latency limit (+5 s) to pass before ``t_end`` (or before its
    ``detectable_until``: an episode the simulator's restart cut short); an alert that matches
    nothing is a false positive unless it started before ``SETTLE_S``. ``blind``: (from, to)
    wall-time windows treated like the start: episodes and alerts that start in one are not
    scored (a restarted simulator's scenes jump: what it shows at first started before anyone
    could see it), nor alerts that start up to ``EARLY_S`` before one (a crowd gathering on the old
    scene, carried over the jump by the rule's hysteresis, dates the alert before it).
    ``unwatched``: per camera, windows in which its analysis was down and started afresh after (its
    worker was killed): an episode is scored only if it could be watched for its latency limit
    (+5 s) in one stretch outside them, as a dwell must be. An ``optional`` episode is never
    missed, and the alert it matches is no false positive."""

    def seen(t: float, early: float = 0.0) -> bool:
        return t >= t_up + SETTLE_S and not any(a - early <= t < b for a, b in blind)

    out: dict[str, Score] = {}
    for kind in TYPES:
        s = out.setdefault(kind, Score(limit_s=latency_limit(cfg, kind)))
        for cam_id, episodes in truth.items():
            eps = [e for e in episodes if e["type"] == kind]
            mine = sorted((a for a in alerts if a["camera_id"] == cam_id and a["type"] == kind),
                          key=lambda a: a["started_at"])
            used: set[int] = set()
            for e in eps:
                bound = min(t_end, e.get("detectable_until", t_end))
                scored = (not e.get("optional") and seen(e["start"])
                          and watchable(e["start"], bound, (unwatched or {}).get(cam_id, ()), s.limit_s + 5))
                hit = next((i for i, a in enumerate(mine) if i not in used
                            and e["start"] - EARLY_S <= a["started_at"] <= (e["end"] or t_end) + LATE_S), None)
                if hit is not None:
                    used.add(hit)
                    if scored:
                        s.tp += 1
                        created = min((h["at"] for h in mine[hit]["history"] if h["action"] == "created"),
                                      default=mine[hit]["updated_at"])
                        s.latencies.append(created - e["start"])
                        s.matches.append(f"{cam_id} at +{e['start'] - t_up:.0f}s: {created - e['start']:.1f} s")
                        s.pairs.append((mine[hit]["id"], e["start"]))
                elif scored:
                    s.fn += 1
                    s.misses.append(f"{cam_id} {kind} at +{e['start'] - t_up:.0f}s")
            for i, a in enumerate(mine):
                if i not in used and seen(a["started_at"], EARLY_S):
                    s.fp += 1
                    s.extras.append(f"{cam_id} {kind} at +{a['started_at'] - t_up:.0f}s")
    return {k: v.as_dict() for k, v in out.items()}


async def fetch_alerts(client: httpx.AsyncClient, base: str, headers: dict[str, str]) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"{base}/api/v1/alerts", params=params, headers=headers)).json()
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


CLIP_TYPES = ("vending", "crowding")
CLIP_MIN_S = 10.0
CLIP_AGE_S = 60.0  # alerts older than this (at the end of the run) must have their clip


def _clip_span(data: bytes) -> float:
    """Seconds of video the MP4 decodes to (first to last frame, plus one frame)."""
    with av.open(io.BytesIO(data)) as c:
        v = c.streams.video[0]
        pts = [f.pts for f in c.decode(v) if f.pts is not None]
    if not pts:
        return 0.0
    step = float(v.average_rate and 1 / v.average_rate or 0.1)
    return float((max(pts) - min(pts)) * v.time_base) + step


async def check_clips(client: httpx.AsyncClient, base: str, headers: dict[str, str], alerts: list[dict],
                      scores: dict, t_end: float) -> dict:
    """Of the vending and crowding alerts matched to a ground-truth episode and older than
    ``CLIP_AGE_S``: how many have a clip that plays, lasts ``CLIP_MIN_S`` or more and covers the
    episode's start (ground truth), and why the others fail."""
    by_id = {a["id"]: a for a in alerts}
    ok, failures, eligible = 0, [], 0
    for kind in CLIP_TYPES:
        for aid, truth_start in scores[kind]["pairs"]:
            a = by_id[aid]
            created = min((h["at"] for h in a["history"] if h["action"] == "created"), default=a["updated_at"])
            if t_end - created < CLIP_AGE_S:
                continue
            eligible += 1
            why = ""
            if not a.get("clip_url"):
                why = "no clip"
            else:
                r = await client.get(f"{base}{a['clip_url']}", headers=headers)
                span = _clip_span(r.content) if r.status_code == 200 else 0.0
                if span < CLIP_MIN_S:
                    why = f"plays {span:.1f} s"
                elif a.get("clip_start") is None or a["clip_start"] > truth_start:
                    why = f"starts {a['clip_start'] - truth_start:.1f} s after the onset"
            if why:
                failures.append(f"{a['camera_id']} {kind} {aid}: {why}")
            else:
                ok += 1
    return {"eligible": eligible, "ok": ok, "share": ok / eligible if eligible else None, "failures": failures}


def _metric_sum(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


Probe = Callable[[System, Supervisor, float], Awaitable[dict]]


@dataclass
class Run:
    """A running e2e system (see :func:`open_run`) and an API client logged in to it."""

    sup: Supervisor
    system: System
    data: Path
    t_up: float  # when everything answered; the scoring period starts here
    cut: str  # the camera the scripted outage cuts off at +OUTAGE_AFTER_S
    client: httpx.AsyncClient
    headers: dict[str, str]

    @property
    def base(self) -> str:
        return self.system.api_url

    @property
    def control(self) -> str:
        return f"http://127.0.0.1:{self.system.control_port}"

    async def ground_truth(self) -> dict[str, list[dict]]:
        """Every live camera's episodes, as the simulator running now knows them."""
        return {cid: (await self.client.get(f"{self.control}/ground_truth/{cid}")).json()
                for cid in sorted(self.system.live)}


@contextlib.asynccontextmanager
async def open_run(cameras: int, data: Path, *, workers: int = 1, redis_aof: str | None = None,
                   say: Callable[[str], None] = print) -> AsyncIterator[Run]:
    """Bring the demo city up (:func:`camera_hub.demo.start_system`: private Redis, simulator,
    ``workers`` workers, API), log in, and stop every process on the way out."""
    sup = Supervisor(quiet=("redis", "sim", "api", *(f"worker{i + 1}" for i in range(workers))))
    opts = DemoOptions(config=DEMO_CONFIG, cameras=cameras, workers=workers, api_port=free_port(), data_dir=data,
                       user="e2e", password="e2e-password", open_browser=False, worker_stats=True,
                       redis_aof=redis_aof)
    try:
        system = await start_system(sup, opts, say=lambda line: say(line.replace("demo:", "e2e:", 1)))
        t_up = time.time()
        async with httpx.AsyncClient(timeout=60) as client:  # a loaded 2-core box lists 1,004 cameras slowly
            token = (await client.post(f"{system.api_url}/api/v1/auth/login",
                                       json={"username": opts.user, "password": opts.password})).json()["token"]
            yield Run(sup, system, data, t_up, outage_camera(system.live), client,
                      {"Authorization": f"Bearer {token}"})
    finally:
        await sup.stop()


async def wait_until(t: float, t_up: float, seconds: float, say: Callable[[str], None]) -> None:
    """Sleep until wall time ``t``, saying how far the scoring period is every 30 s."""
    while (left := t - time.time()) > 0:
        await asyncio.sleep(min(30.0, left))
        say(f"e2e: {time.time() - t_up:.0f}/{seconds:.0f} s")


@dataclass
class Collected:
    result: dict  # what run_e2e returns, less the probe and the workers' counters
    alerts: list[dict]  # as scored: the outage camera's scene alerts left out
    truth: dict[str, list[dict]]  # as scored
    listed: list[dict]  # every alert the API lists


TruthFix = Callable[[dict[str, list[dict]]], dict[str, list[dict]]]


async def collect(run: Run, t_end: float, *, fix_truth: TruthFix | None = None, blind: Windows = (),
                  unwatched: Mapping[str, Windows] | None = None) -> Collected:
    """Alerts, ground truth, coverage and the workers' counters at ``t_end``, scored. ``fix_truth``
    amends the simulator's ground truth before scoring (a run that restarted the simulator adds
    what the earlier process knew); ``blind``, ``unwatched``: see :func:`score`."""
    c, base, h, system = run.client, run.base, run.headers, run.system
    alerts = listed_alerts = await fetch_alerts(c, base, h)
    truth = await run.ground_truth()
    sim_cameras = (await c.get(f"{run.control}/cameras")).json()
    coverage = (await c.get(f"{base}/api/v1/coverage", headers=h)).json()
    listed = (await c.get(f"{base}/api/v1/cameras", headers=h)).json()["items"]
    metrics = [(await c.get(url)).text for url in system.metrics_urls]
    if fix_truth is not None:
        truth = fix_truth(truth)
    if t_end - run.t_up > OUTAGE_AFTER_S:
        # the outage camera: its scenes are not observable once it is cut off; score its outage
        truth[run.cut] = [{"type": "camera_offline", "zone_id": "", "start": run.t_up + OUTAGE_AFTER_S, "end": None}]
        alerts = [a for a in alerts if a["camera_id"] != run.cut or a["type"] == "camera_offline"]
    scores = score(system.cfg, alerts, truth, run.t_up, t_end, blind=blind, unwatched=unwatched)
    clips = await check_clips(c, base, h, alerts, scores, t_end)
    serving = {x["id"] for x in sim_cameras if x["fault"] is None}
    up_api = {x["id"] for x in listed if (x.get("status") or {}).get("state") in ("up", "degraded")}
    expected = {g for cam in system.cfg.cameras if cam.id in serving for g in cam.grids}
    result = {
        "cameras_live": len(system.live), "seconds": round(t_end - run.t_up), "alerts": len(alerts),
        "scores": scores, "clips": clips,
        "coverage": {"city_covered": coverage["city"]["covered"], "grids": coverage["city"]["grids"],
                     "expected_covered": len(expected), "cameras_serving": len(serving),
                     "cameras_up_api": len(up_api), "outage_camera": run.cut,
                     "up_but_not_serving": sorted(up_api - serving),
                     "serving_but_not_up": sorted(serving - up_api)},
        "worker": {"samples_dropped": sum(_metric_sum(m, "camera_hub_samples_dropped_total") for m in metrics),
                   "detector_runs_skipped": sum(_metric_sum(m, "camera_hub_motion_skipped_total") for m in metrics)},
    }
    return Collected(result, alerts, truth, listed_alerts)


def worker_stats(data: Path, worker: int = 1) -> dict | None:
    """The counters a worker wrote at exit (``--stats-json``), once the run has stopped."""
    path = data / f"worker{worker}-stats.json"
    return json.loads(path.read_text()) if path.exists() else None


async def run_e2e(cameras: int, seconds: float, *, data_dir: Path | None = None, workers: int = 1,
                  say: Callable[[str], None] = print, probe: Probe | None = None) -> dict:
    """Run the demo city for ``seconds`` after it is up, with ``cameras`` live community cameras
    (plus the lookouts) on ``workers`` worker processes; return the scores, the coverage check and
    a few health figures. ``probe`` (system, supervisor, time up) runs beside the scoring period;
    its result and the workers' counters at exit (``--stats-json``, merged) are returned too."""
    data = data_dir or Path(tempfile.mkdtemp(prefix="e2e-"))
    probed: asyncio.Task[dict] | None = None
    try:
        async with open_run(cameras, data, workers=workers, say=say) as run:
            if probe is not None:
                probed = asyncio.create_task(probe(run.system, run.sup, run.t_up))
            outage = asyncio.create_task(scripted_outage(run.system.control_port, run.cut, OUTAGE_AFTER_S,
                                                         seconds + 600))
            say(f"e2e: up; {run.cut} goes offline at +{OUTAGE_AFTER_S:.0f} s; scoring {seconds:.0f} s")
            await wait_until(run.t_up + seconds, run.t_up, seconds, say)
            t_end = time.time()
            outage.cancel()
            probe_result = await probed if probed is not None else None
            got = await collect(run, t_end)
    finally:
        if probed is not None and not probed.done():
            probed.cancel()
    stats = [st for i in range(workers) if (st := worker_stats(data, i + 1)) is not None]
    return {"probe": probe_result, "worker_stats": merge_stats(stats), "workers": workers, **got.result}


# the planner's recent intervals: by the frames' own timestamps, and by receive time
INTERVALS = ("intervals_hot", "intervals_idle", "intervals_hot_received", "intervals_idle_received")


def merge_stats(stats: list[dict]) -> dict | None:
    """Several workers' counters as one: counts and bytes added up, the planner's intervals pooled,
    its rates added up and its timings averaged."""
    if len(stats) <= 1:
        return stats[0] if stats else None
    out: dict = {"worker": ",".join(str(st.get("worker")) for st in stats)}
    for key in ("cameras", "samples", "dropped", "reconnects"):
        out[key] = sum(st.get(key) or 0 for st in stats)
    out["memory_bytes"] = {k: sum(st.get("memory_bytes", {}).get(k, 0) for st in stats)
                           for k in stats[0].get("memory_bytes", {})}
    plans = [st["analysis"] for st in stats if "analysis" in st]
    if plans:
        out["analysis"] = {
            **{k: round(sum(p[k] for p in plans), 1) for k in ("rate", "armed", "budget", "starved")},
            **{k: round(sum(p[k] for p in plans) / len(plans), 2) for k in ("batch", "wait_s", "cycle_s")},
            **{k: [x for p in plans for x in p.get(k, [])] for k in INTERVALS}}
    evidence = [st["evidence"] for st in stats if "evidence" in st]
    if evidence:
        out["evidence"] = {k: sum(e[k] for e in evidence) for k in evidence[0]}
    return out


def format_report(result: dict) -> str:
    """The score table as the benchmark prints it (also a test's failure message)."""
    lines = [f"{result['cameras_live']} live cameras for {result['seconds']} s; {result['alerts']} alerts",
             f"{'type':<15}{'TP':>4}{'FP':>4}{'FN':>4}{'precision':>11}{'recall':>8}{'p50 s':>8}{'p95 s':>8}"
             f"{'target':>8}"]

    def f(x: object) -> str:
        return "-" if x is None else f"{x:.2f}"

    for kind, s in result["scores"].items():
        lines.append(f"{kind:<15}{s['tp']:>4}{s['fp']:>4}{s['fn']:>4}{f(s['precision']):>11}{f(s['recall']):>8}"
                     f"{f(s['latency_p50_s']):>8}{f(s['latency_p95_s']):>8}{s['latency_target_s']:>8.1f}")
        lines += [f"    onset {m}" for m in s["matches"]]
        lines += [f"    missed: {m}" for m in s["misses"]] + [f"    extra : {m}" for m in s["extras"]]
    cov = result["coverage"]
    lines.append(f"coverage: the API says {cov['city_covered']}/{cov['grids']} grids covered; the "
                 f"{cov['cameras_serving']} cameras the simulator serves without a fault watch "
                 f"{cov['expected_covered']} (API: {cov['cameras_up_api']} cameras up; {cov['outage_camera']} "
                 f"cut off)")
    if cov["up_but_not_serving"] or cov["serving_but_not_up"]:
        lines.append(f"    up in the API but not served: {cov['up_but_not_serving']}; "
                     f"served but not up: {cov['serving_but_not_up']}")
    c = result.get("clips")
    if c:
        share = "-" if c["share"] is None else f"{c['share']:.2f}"
        lines.append(f"clips: {c['ok']}/{c['eligible']} vending and crowding alerts older than {CLIP_AGE_S:.0f} s have "
                     f"a clip that plays ≥ {CLIP_MIN_S:.0f} s and covers the onset (share {share})")
        lines += [f"    clip: {f}" for f in c["failures"]]
    w = result["worker"]
    lines.append(f"worker: {w['samples_dropped']:.0f} samples dropped, {w['detector_runs_skipped']:.0f} detector "
                 f"runs skipped by the motion gate")
    return "\n".join(lines)
