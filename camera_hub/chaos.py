"""Chaos, end to end (issue #12): the run of :mod:`camera_hub.e2e` while parts of the system die
and come back on a schedule, with two workers and Redis keeping an append-only file.

The steps (:func:`schedule`; seconds after the system is up):

- ``kill_worker``: SIGKILL worker1 (no goodbye: its leases expire and worker2 takes its cameras),
  then start it again ``WORKER_DOWN_S`` later, as Kubernetes would. Same worker id, so rendezvous
  hashing hands it the same cameras back: they move twice.
- ``restart_redis``: SIGKILL Redis and start it ``REDIS_DOWN_S`` later on the same port and folder;
  it reloads its AOF (``appendfsync everysec``, as deployed). A kill, not SIGTERM: on SIGTERM Redis
  writes and fsyncs the file on its way out, so only a crash tests that what it acknowledged was
  already in the file (Redis writes each command there before it replies; the fsync each second
  only matters when the host itself goes down). Down longer than the workers' lease fence (0.6 × the
  6 s lease), so every worker also stops and retakes its cameras.
- ``restart_sim``: SIGKILL the simulator and start it again on the same ports. A simulator's
  timeline starts with its process: the ground truth of the one killed is kept (its episodes cut
  at the kill; an episode of the new one that follows an episode of the old one closely may or
  may not be a second alert: :func:`join_truth`), the scripted outage is put back on its camera,
  and until every camera delivers again plus ``SETTLE_S`` nothing is scored (what the new process
  shows at first started before anyone could see it: its scenes jump).

Beside them :class:`FeedRecorder`, a real SSE client (HTTP, login token), records every event and
reconnects with ``Last-Event-ID`` whenever its stream breaks; each step also cuts it, as a proxy
timeout or a laptop going to sleep would.

At the end (:func:`run_chaos`): precision and recall per type against the merged ground truth;
no alert doubled (two alerts of one camera and type on one ground-truth episode) and alert ids
unique; every entry the alert Stream got after the recorder connected reached it exactly once, in
order, and every alert created meanwhile was announced once; coverage equals what the simulator
serves; and how long each part took to recover, measured by polling Redis and the API.

``tests/system/test_chaos.py`` runs it small in CI, ``benchmarks/chaos.py`` large.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import redis.asyncio as aioredis

from camera_hub.alerts.store import AlertStore
from camera_hub.config import CityConfig, CrowdingRule, TamperRule, VendingRule
from camera_hub.demo import OUTAGE_AFTER_S, scripted_outage, wait_http, wait_redis
from camera_hub.e2e import (
    EARLY_S,
    LATE_S,
    SETTLE_S,
    Collected,
    Run,
    collect,
    fetch_alerts,
    open_run,
    wait_until,
    worker_stats,
)
from camera_hub.ingest.status import COVERING, CameraStatus, read_states

Action = Literal["kill_worker", "restart_redis", "restart_sim"]
WORKER_DOWN_S = 5.0  # a killed worker is started again this long after it died
REDIS_DOWN_S = 5.0  # Redis stays down this long: past the workers' lease fence (3.6 s)
RECOVERY_LIMIT_S = 120.0  # a part not recovered by then is reported as not recovered (None)
POLL_S = 0.25
RECONNECT_S = 0.5  # the recorder's pause before it reconnects (browsers: the server's retry, 1 s)
AOF = "everysec"


@dataclass(frozen=True)
class Step:
    at_s: float  # after the system is up
    action: Action


def schedule(seconds: float) -> list[Step]:
    """Worker kill, Redis crash and simulator restart at 20, 40 and 60 % of the period: each
    part's recovery, and new episodes after the last one, fit in the rest."""
    return [Step(round(seconds * f), a) for f, a in ((0.2, "kill_worker"), (0.4, "restart_redis"),
                                                      (0.6, "restart_sim"))]


# ---------------------------------------------------------------------------- the SSE client
class FeedRecorder:
    """A live-feed client (``GET /api/v1/feed``): records (stream id, alert id, event) of every
    event and reconnects with ``Last-Event-ID`` whenever the stream breaks or :meth:`cut` is called."""

    def __init__(self, base: str, headers: dict[str, str], after: str) -> None:
        self.base, self.headers = base, headers
        self.start_id = after  # the Stream's last entry when the recorder started
        self.last: str | None = after
        self.events: list[tuple[str, str, str]] = []
        self.connects: list[float] = []  # when each stream opened
        self.breaks: list[tuple[float, str]] = []  # when and why each open stream ended
        self.refused: list[tuple[float, str]] = []  # attempts answered with an error or not at all
        self.resets: list[int] = []  # connections (by number) that began with `event: reset`
        self.from_start: set[int] = set()  # connections that resumed from start_id (no alert seen yet)
        self._cut = asyncio.Event()

    def cut(self) -> None:
        self._cut.set()

    async def run(self) -> None:
        # read timeout: past the server's 15 s keep-alive comment
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=40.0)) as http:
            while True:
                await self._stream(http)
                await asyncio.sleep(RECONNECT_S)

    async def _stream(self, http: httpx.AsyncClient) -> None:
        headers = self.headers | ({"Last-Event-ID": self.last} if self.last else {})
        self._cut.clear()
        try:
            async with http.stream("GET", f"{self.base}/api/v1/feed", headers=headers) as resp:
                if resp.status_code != 200:
                    self.refused.append((time.time(), f"HTTP {resp.status_code}"))
                    return
                self.connects.append(time.time())
                if self.last == self.start_id:
                    self.from_start.add(len(self.connects))
                reading = asyncio.create_task(self._read(resp, len(self.connects)))
                cut = asyncio.create_task(self._cut.wait())
                try:
                    done, _ = await asyncio.wait({reading, cut}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (reading, cut):
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):  # its error is read below
                            await task
                error = reading.exception() if reading in done else None
                why = type(error).__name__ if error is not None else "cut" if cut in done else "closed by the server"
                self.breaks.append((time.time(), why))
        except httpx.HTTPError as exc:  # not even connected, or broken before the status line
            self.refused.append((time.time(), type(exc).__name__))

    async def _read(self, resp: httpx.Response, connection: int) -> None:
        sid, event, data = None, "message", ""
        async for line in resp.aiter_lines():
            if line.startswith("id: "):
                sid = line[4:]
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "":  # end of an event: only now is it complete
                if event == "alert" and sid is not None:
                    doc = json.loads(data)
                    self.events.append((sid, doc["id"], doc["event"]))
                    self.last = sid
                elif event == "reset":
                    self.resets.append(connection)
                sid, event, data = None, "message", ""


def sid_key(sid: str) -> tuple[int, int]:
    ms, _, seq = sid.partition("-")
    return int(ms), int(seq or 0)


async def feed_check(rec: FeedRecorder, events: list[tuple[str, str, str]], store: AlertStore,
                     alerts: list[dict]) -> dict:
    """The recorder's ``events`` (its record at one moment) against the Stream itself: every entry
    after ``rec.start_id`` up to the last one recorded, exactly once and in order; every alert the
    API lists (``alerts``: all of them, listed after that moment) created in that span announced
    once (``created``)."""
    entries = []
    after = rec.start_id
    while batch := await store.read_feed(after, count=5000):
        entries += batch
        after = batch[-1].stream_id
    last = events[-1][0] if events else rec.start_id
    span = [e for e in entries if sid_key(e.stream_id) <= sid_key(last)]
    got = [sid for sid, _, _ in events]
    seen, times = set(got), Counter(got)
    created_in_span = {e.alert_id for e in span if e.event == "created"}
    announced = Counter(aid for _, aid, ev in events if ev == "created")
    listed = {a["id"] for a in alerts}
    # a connection from an empty Stream resumes from 0-0 until the first alert has come: an alert
    # just before it makes a reset (the first connection, or a later one when a part was killed
    # before any alert was announced)
    resets = [c for c in rec.resets if not (c in rec.from_start and rec.start_id == "0-0")]
    return {
        "events": len(events), "stream_entries": len(span), "pending_after_check": len(entries) - len(span),
        "missing": [e.stream_id for e in span if e.stream_id not in seen],
        "repeated": sorted(s for s, n in times.items() if n > 1),
        "out_of_order": sum(1 for a, b in zip(got, got[1:], strict=False) if sid_key(b) <= sid_key(a)),
        "not_in_stream": sorted(seen - {e.stream_id for e in span}),
        "alerts_created_in_span": len(created_in_span & listed),
        "unannounced": sorted((created_in_span & listed) - set(announced)),
        "announced_twice": sorted(a for a, n in announced.items() if n > 1),
        "announced_not_listed": sorted(set(announced) - listed),
        "connections": len(rec.connects), "refused": len(rec.refused), "resets": resets,
        "breaks": [f"{time.strftime('%H:%M:%S', time.localtime(t))} {why}" for t, why in rec.breaks],
        "unplanned_breaks": [f"{time.strftime('%H:%M:%S', time.localtime(t))} {why}"
                             for t, why in rec.breaks if why != "cut"],
    }


# ---------------------------------------------------------------------------- ground truth
def cut_truth(truth: dict[str, list[dict]], at: float) -> dict[str, list[dict]]:
    """What a simulator killed at ``at`` had shown: episodes begun by then, ends cut there (a cut
    episode must have been detectable before the cut to be scored)."""
    out: dict[str, list[dict]] = {}
    for cam, eps in truth.items():
        out[cam] = []
        for e in eps:
            if e["start"] >= at:
                continue
            if e["end"] is None or e["end"] > at:
                e = {**e, "end": at, "detectable_until": at}
            out[cam].append(e)
    return out


def rejoin_s(cfg: CityConfig, kind: str) -> float:
    """Two episodes of a type on one camera closer than this are one alert by design: the rule's
    hysteresis forgives the gap, or the publisher's cooldown suppresses the second start."""
    hold = 0.0
    for cam in cfg.cameras:
        for zone in cam.zones:
            for rule in zone.rules:
                if rule.type == kind:
                    assert isinstance(rule, VendingRule | CrowdingRule | TamperRule)
                    hold = max(hold, rule.min_duration_s if isinstance(rule, TamperRule) else rule.end_after_s)
    return hold + cfg.settings.alerts.cooldown_s


def join_truth(parts: list[dict[str, list[dict]]], cfg: CityConfig) -> dict[str, list[dict]]:
    """Episodes of several simulator processes, one after the other. An episode that starts closer
    than :func:`rejoin_s` after the end of the one before it (same camera, type and zone) may or may
    not get its own alert (``optional``): within the gap the rule or the cooldown keeps it one, past
    the gap it is two, and where exactly depends on when the rule saw the end."""
    out: dict[str, list[dict]] = {}
    for cam in sorted({c for part in parts for c in part}):
        joined: list[dict] = []
        for e in sorted((e for part in parts for e in part.get(cam, [])), key=lambda e: e["start"]):
            prev = next((p for p in reversed(joined) if (p["type"], p["zone_id"]) == (e["type"], e["zone_id"])), None)
            near = prev is not None and prev["end"] is not None and e["start"] - prev["end"] < rejoin_s(cfg, e["type"])
            joined.append({**e, "optional": True} if near else dict(e))
        out[cam] = joined
    return out


def doubled(alerts: list[dict], truth: dict[str, list[dict]], t_end: float) -> list[str]:
    """Ground-truth episodes that more than one alert (same camera and type) matches."""
    out = []
    for cam, eps in truth.items():
        for e in eps:
            hits = [a["id"] for a in alerts if a["camera_id"] == cam and a["type"] == e["type"]
                    and e["start"] - EARLY_S <= a["started_at"] <= (e["end"] or t_end) + LATE_S]
            if len(hits) > 1:
                out.append(f"{cam} {e['type']} {e['zone_id']} from {e['start']:.0f}: {', '.join(hits)}")
    return out


# ---------------------------------------------------------------------------- recovery
async def seconds_until(cond: Callable[[], Awaitable[bool]], since: float,
                        limit_s: float = RECOVERY_LIMIT_S) -> float | None:
    """Seconds from ``since`` until ``cond()`` first holds (polled), or None after ``limit_s``."""
    while time.time() - since < limit_s:
        with contextlib.suppress(Exception):  # Redis or the API away: not yet
            if await cond():
                return round(time.time() - since, 1)
        await asyncio.sleep(POLL_S)
    return None


@dataclass
class Chaos:
    """The schedule's state while it runs: what a step did, and what scoring needs to know."""

    run: Run
    redis_url: str
    recorder: FeedRecorder
    log: list[dict] = field(default_factory=list)
    truth_parts: list[dict[str, list[dict]]] = field(default_factory=list)  # of simulators killed
    blind: list[tuple[float, float]] = field(default_factory=list)
    unwatched: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # camera → windows
    measuring: list[asyncio.Task[None]] = field(default_factory=list)

    def client(self) -> aioredis.Redis:
        return aioredis.from_url(self.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)

    async def states(self, ids: list[str]) -> dict[str, CameraStatus]:
        r = self.client()
        try:
            return await read_states(r, self.run.system.cfg.settings.redis.prefix, ids, stale_after_s=None)
        finally:
            await r.aclose()

    def serving(self) -> list[str]:
        """The cameras the simulator serves without a fault at the end (all but the outage one)."""
        return sorted(self.run.system.live - {self.run.cut})

    async def delivering(self, ids: list[str], after: float, worker: str | None = None) -> bool:
        got = await self.states(ids)
        return len(got) == len(ids) and all(
            st.state in COVERING and (st.last_frame_at or 0) > after and (worker is None or st.worker == worker)
            for st in got.values())

    def measure(self, entry: dict, key: str, cond: Callable[[], Awaitable[bool]], since: float,
                then: Callable[[float | None], None] | None = None) -> None:
        """Record in ``entry[key]`` the seconds from ``since`` until ``cond`` holds, in the background."""
        async def go() -> None:
            entry[key] = got = await seconds_until(cond, since)
            if then is not None:
                then(got)
        self.measuring.append(asyncio.create_task(go()))

    async def crash(self, name: str) -> float:
        """SIGKILL the child ``name``, wait for it, cut the feed recorder's stream; the time it died."""
        child = self.run.sup.latest(name)
        assert child.proc is not None
        child.proc.send_signal(signal.SIGKILL)
        await child.proc.wait()
        t0 = time.time()
        self.recorder.cut()
        return t0

    async def kill_worker(self, entry: dict) -> None:
        before = await self.states(sorted(self.run.system.live))
        mine = sorted(c for c, st in before.items() if st.worker == "demo-1" and st.state in COVERING)
        t0 = await self.crash("worker1")
        entry.update(cameras=len(mine), down_s=WORKER_DOWN_S)
        self.measure(entry, "delivering_again_s", lambda: self.delivering(mine, t0), t0)
        await asyncio.sleep(WORKER_DOWN_S)
        await self.run.sup.restart("worker1")
        # its cameras' analysis starts afresh on worker2, then again back on worker1
        self.measure(entry, "back_on_worker1_s", lambda: self.delivering(mine, t0, "demo-1"), t0,
                     lambda got: self.not_watched(mine, t0, got))

    def not_watched(self, cameras: list[str], t0: float, recovered_s: float | None) -> None:
        """The cameras' analysis was down from ``t0`` and started afresh ``recovered_s`` later."""
        until = t0 + (recovered_s if recovered_s is not None else RECOVERY_LIMIT_S)
        for cam in cameras:
            self.unwatched.setdefault(cam, []).append((t0, until))

    async def alerts_stored(self) -> int:
        r = self.client()
        try:
            return int(await r.zcard(AlertStore(r, self.run.system.cfg.settings.redis.prefix).index_key("all")))
        finally:
            await r.aclose()

    async def restart_redis(self, entry: dict) -> None:
        entry["alerts_before"] = await self.alerts_stored()
        t0 = await self.crash("redis")
        entry["down_s"] = REDIS_DOWN_S
        await asyncio.sleep(REDIS_DOWN_S)
        await wait_redis(self.redis_url, await self.run.sup.restart("redis"), limit_s=60)
        entry["answering_s"] = round(time.time() - t0, 1)
        entry["alerts_after_reload"] = await self.alerts_stored()
        t_up = time.time()

        async def api() -> bool:
            r = await self.run.client.get(f"{self.run.base}/api/v1/alerts", params={"limit": 1},
                                          headers=self.run.headers)
            return r.status_code == 200

        self.measure(entry, "api_s", api, t0)
        self.measure(entry, "feed_s", lambda: self._reconnected(t0), t0)  # refused (503) until Redis is back
        self.measure(entry, "cameras_delivering_s", lambda: self.delivering(self.serving(), t_up), t0)

    async def _reconnected(self, after: float) -> bool:
        return bool(self.recorder.connects) and self.recorder.connects[-1] > after

    async def restart_sim(self, entry: dict) -> None:
        run = self.run
        before = await run.ground_truth()
        t0 = await self.crash("sim")
        self.truth_parts.append(cut_truth(before, t0))
        new = await run.sup.restart("sim")
        await wait_http(f"{run.control}/cameras", 300, "the restarted simulator", new)
        if t0 > run.t_up + OUTAGE_AFTER_S:  # a new process knows no faults: cut the outage camera off again
            await scripted_outage(run.system.control_port, run.cut, 0.0, 3600.0)
        t_up = time.time()
        entry["answering_s"] = round(t_up - t0, 1)

        def blind_until(got: float | None) -> None:
            self.blind.append((t0, t0 + (got if got is not None else RECOVERY_LIMIT_S) + SETTLE_S))
            self.not_watched(sorted(run.system.live), t0, got)

        self.measure(entry, "cameras_delivering_s", lambda: self.delivering(self.serving(), t_up), t0, blind_until)
        self.measure(entry, "api_coverage_s", lambda: self._coverage_back(), t0)

    async def _coverage_back(self) -> bool:
        """The API's covered grids equal those of the cameras the simulator serves."""
        cfg = self.run.system.cfg
        serving = set(self.serving())
        expected = len({g for c in cfg.cameras if c.id in serving for g in c.grids})
        r = await self.run.client.get(f"{self.run.base}/api/v1/coverage", headers=self.run.headers)
        return r.status_code == 200 and r.json()["city"]["covered"] == expected

    async def play(self, steps: list[Step]) -> None:
        for step in steps:
            await asyncio.sleep(max(0.0, self.run.t_up + step.at_s - time.time()))
            entry: dict = {"action": step.action, "at_s": round(time.time() - self.run.t_up, 1)}
            self.log.append(entry)
            await getattr(self, step.action)(entry)

    def fix_truth(self, now: dict[str, list[dict]]) -> dict[str, list[dict]]:
        return join_truth([*self.truth_parts, now], self.run.system.cfg)


async def run_chaos(cameras: int, seconds: float, *, data_dir: Path | None = None,
                    steps: list[Step] | None = None, say: Callable[[str], None] = print) -> dict:
    """The e2e run of ``cameras`` live community cameras (plus the lookouts) for ``seconds``, two
    workers, Redis with AOF, ``steps`` (default :func:`schedule`) played meanwhile; the e2e result
    plus ``chaos`` (the steps as played, with recovery times), ``feed``, ``doubles`` and ``ids_unique``."""
    data = data_dir or Path(tempfile.mkdtemp(prefix="chaos-"))
    steps = schedule(seconds) if steps is None else steps
    async with open_run(cameras, data, workers=2, redis_aof=AOF, say=say) as run:
        redis_url = run.system.cfg.settings.redis.url
        store = AlertStore(aioredis.from_url(redis_url), run.system.cfg.settings.redis.prefix)
        recorder = FeedRecorder(run.base, run.headers, await store.last_feed_id())
        recording = asyncio.create_task(recorder.run())
        chaos = Chaos(run, redis_url, recorder)
        outage = asyncio.create_task(scripted_outage(run.system.control_port, run.cut, OUTAGE_AFTER_S, seconds + 600))
        say(f"chaos: up; {run.cut} goes offline at +{OUTAGE_AFTER_S:.0f} s; scoring {seconds:.0f} s; "
            + ", ".join(f"{s.action} at +{s.at_s:.0f} s" for s in steps))
        playing = asyncio.create_task(chaos.play(steps))
        try:
            await wait_until(run.t_up + seconds, run.t_up, seconds, say)
            t_end = time.time()
            await playing  # a step still under way finishes first
            await asyncio.gather(*chaos.measuring)
            got: Collected = await collect(run, t_end, fix_truth=chaos.fix_truth, blind=chaos.blind,
                                           unwatched=chaos.unwatched)
            await seconds_until(lambda: _caught_up(recorder, store), time.time(), 30.0)
            record = list(recorder.events)  # then listed again: alerts created since collect() are in it too
            feed = await feed_check(recorder, record, store, await fetch_alerts(run.client, run.base, run.headers))
        finally:
            for task in (playing, outage, recording, *chaos.measuring):
                task.cancel()
            await asyncio.gather(playing, outage, recording, *chaos.measuring, return_exceptions=True)
            await store.redis.aclose()
    ids = [a["id"] for a in got.alerts]
    return {**got.result, "worker_stats": worker_stats(data), "chaos": chaos.log, "blind": chaos.blind,
            "unwatched": chaos.unwatched, "t_up": run.t_up, "feed": feed,
            "doubles": doubled(got.alerts, got.truth, t_end), "ids_unique": len(ids) == len(set(ids))}


async def _caught_up(rec: FeedRecorder, store: AlertStore) -> bool:
    return rec.last == await store.last_feed_id()


def format_chaos(result: dict) -> str:
    """The steps with their recovery times and the live feed's record (the benchmark prints it
    under :func:`camera_hub.e2e.format_report`; also a test's failure message)."""
    def s(x: float | None) -> str:
        return "not within the limit" if x is None else f"{x:.1f} s"

    lines = ["schedule (seconds after the system was up):"]
    for e in result["chaos"]:
        at = f"  +{e['at_s']:.0f} s"
        if e["action"] == "kill_worker":
            lines.append(f"{at} worker1 SIGKILLed ({e['cameras']} cameras), started again {e['down_s']:.0f} s later: "
                         f"its cameras delivering again after {s(e.get('delivering_again_s'))}, all back on worker1 "
                         f"after {s(e.get('back_on_worker1_s'))}")
        elif e["action"] == "restart_redis":
            lines.append(f"{at} Redis SIGKILLed with {e['alerts_before']} alerts, started again {e['down_s']:.0f} s "
                         f"later: answering after {s(e.get('answering_s'))} with {e.get('alerts_after_reload')} alerts "
                         f"(AOF {AOF}); API answering after {s(e.get('api_s'))}; live feed reconnected after "
                         f"{s(e.get('feed_s'))}; every camera delivering after {s(e.get('cameras_delivering_s'))}")
        else:
            lines.append(f"{at} simulator SIGKILLed and started again: answering after {s(e.get('answering_s'))}; "
                         f"every camera delivering after {s(e.get('cameras_delivering_s'))}; API coverage back "
                         f"after {s(e.get('api_coverage_s'))}")
    up = result["t_up"]

    def span(w: tuple[float, float]) -> str:
        return f"+{w[0] - up:.0f}–{w[1] - up:.0f} s"

    cameras = Counter(tuple(w) for ws in result["unwatched"].values() for w in ws)  # window → cameras in it
    lines.append("not scored: episodes starting in " + (", ".join(span(w) for w in result["blind"]) or "no window")
                 + "; analysis started afresh (an episode needs its latency limit in one watched stretch): "
                 + (", ".join(f"{span(w)} ({n} cameras)" for w, n in sorted(cameras.items())) or "none"))
    f = result["feed"]
    lines.append(f"live feed: {f['events']} events over {f['connections']} connections ({f['refused']} attempts "
                 f"refused while a part was away; resets at connections {f['resets'] or 'none'}); the Stream got "
                 f"{f['stream_entries']} entries meanwhile: {len(f['missing'])} missing, {len(f['repeated'])} "
                 f"repeated, {f['out_of_order']} out of order, {len(f['not_in_stream'])} not in the Stream; "
                 f"{f['alerts_created_in_span'] - len(f['unannounced'])}/{f['alerts_created_in_span']} alerts created "
                 f"meanwhile announced, {len(f['announced_twice'])} twice")
    lines.append(f"    streams ended: {'; '.join(f['breaks']) or 'none'}")
    for key in ("missing", "repeated", "not_in_stream", "unannounced", "announced_twice", "announced_not_listed"):
        if f[key]:
            lines.append(f"    {key}: {f[key][:10]}")
    lines.append(f"doubled alerts: {len(result['doubles'])}; alert ids unique: {result['ids_unique']}")
    lines += [f"    doubled: {d}" for d in result["doubles"]]
    return "\n".join(lines)
