"""A whole live-view system in a private network namespace, for tests and benchmarks/live_view.py.

WebRTC needs a non-loopback address (aioice never offers 127.0.0.1) and must not send a packet
off the machine, so the run happens inside a network namespace of its own (``unshare -n``, or
``unshare -rn`` when not root): loopback up and :data:`NS_ADDRESS` on a veth pair whose both ends
stay in the namespace (Chromium gathers no ICE candidates on a loopback interface; where veth is
missing the address goes on loopback, which aiortc peers still use), nothing else.
Inside it: a private ``redis-server``, the camera simulator (in the calling process), the real
``camera-hub worker --ingest-only`` and ``camera-hub api`` processes with a fresh live secret,
and users with tokens. Callers run their own script in the namespace with :func:`run_in_netns`
and use :func:`start_live_system` from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from camera_hub.demo import Supervisor, cli_argv, free_port, start_private_redis, wait_http
from camera_hub.live import protocol
from camera_hub.sim.demo_city import dump_yaml
from camera_hub.sim.rtsp_server import SimCameraSpec, SimServer

NS_ADDRESS = "10.213.0.1/24"
ROLES = ("viewer", "operator", "admin")


# inside the new namespace: loopback up, NS_ADDRESS on a veth pair kept inside it (or on loopback)
NETNS_SETUP = ("ip link set lo up && { { ip link add live0 type veth peer name live1 && ip link set live1 up "
               f"&& ip link set live0 up && ip addr add {NS_ADDRESS} dev live0; }} 2>/dev/null "
               f"|| ip addr add {NS_ADDRESS} dev lo; }}")


def _unshare() -> list[str]:
    return ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]


def netns_problem() -> str | None:
    """Why a private network namespace cannot be made here, or None when it can."""
    for tool in ("unshare", "ip", "redis-server"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    try:
        r = subprocess.run([*_unshare(), "sh", "-c", NETNS_SETUP],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    if r.returncode != 0:
        return f"no network namespace here: {r.stderr.strip()[:200]}"
    return None


def run_in_netns(argv: list[str], *, timeout_s: float, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a new network namespace with only loopback and :data:`NS_ADDRESS`."""
    script = NETNS_SETUP + ' && exec "$@"'
    return subprocess.run([*_unshare(), "sh", "-c", script, "sh", *argv], capture_output=True, text=True,
                          timeout=timeout_s, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def in_netns() -> bool:
    """Is this process in a namespace made by :func:`run_in_netns`? (Guards scripts that must
    never run WebRTC on the machine's real interfaces.)"""
    import ifaddr

    addrs = {ip.ip for a in ifaddr.get_adapters() for ip in a.ips if isinstance(ip.ip, str)}
    return addrs <= {"127.0.0.1", NS_ADDRESS.split("/")[0]}


@dataclass
class LiveSystem:
    api_url: str
    redis_url: str
    prefix: str
    tokens: dict[str, str]
    camera_ids: list[str]
    sim: SimServer
    sup: Supervisor
    secret: str
    pids: dict[str, int] = field(default_factory=dict)  # worker1.., api

    async def redis(self) -> Any:
        import redis.asyncio as aioredis

        return aioredis.from_url(self.redis_url)

    async def stop(self) -> None:
        await self.sup.stop(grace_s=10.0)
        await self.sim.stop()


def city(camera_urls: dict[str, str], redis_url: str, api_port: int, live: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    grids = [{"id": f"g{i}", "category": "commercial", "households": 100} for i in range(len(camera_urls))]
    return {
        "city": {"id": "live", "name": "Live view test"},
        "districts": [{"id": "d1", "name": "D1", "streets": [{"id": "s1", "name": "S1", "communities": [
            {"id": "c1", "name": "C1", "grids": grids}]}]}],
        "cameras": [{"id": cid, "name": cid, "main_url": url, "location": {"lat": 30.0, "lon": 120.0},
                     "grids": [f"g{i}"]} for i, (cid, url) in enumerate(camera_urls.items())],
        "settings": {"redis": {"url": redis_url}, "api": {"host": "127.0.0.1", "port": api_port},
                     "live": {"host": "127.0.0.1", **(live or {})}},
    }


async def start_live_system(work: Path, cameras: list[SimCameraSpec], *, width: int = 640, height: int = 360,
                            fps: int = 10, gop: int = 20, workers: int = 1, cache_dir: Path | None = None,
                            quiet: bool = True, up_timeout_s: float = 60.0, offline: tuple[str, ...] = (),
                            live: dict[str, Any] | None = None, stamp_frames: bool = False) -> LiveSystem:
    """Everything up and every camera live on a worker with its live endpoint registered.
    ``offline``: cameras in the config that the simulator does not serve (they stay down);
    ``live``: overrides of ``settings.live``; ``stamp_frames``: the simulator burns each frame's
    index into its picture (end-to-end delay: ``SimServer.captured_at``)."""
    if not in_netns():
        raise RuntimeError("start_live_system runs only inside run_in_netns (no WebRTC on real interfaces)")
    from camera_hub.api.auth import create_user
    from camera_hub.ingest.status import read_states

    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    names = ["redis", "api"] + [f"worker{i + 1}" for i in range(workers)]
    sup = Supervisor(quiet=names if quiet else ("redis",))
    sim = SimServer(cameras, width=width, height=height, fps=fps, gop=gop, control_port=None, cache_dir=cache_dir,
                    stamp_frames=stamp_frames)
    try:
        redis_url = await start_private_redis(sup, work)
        await sim.start()
        api_port = free_port()
        urls = {c.camera_id: sim.url(c.camera_id, "sub") for c in cameras}
        urls.update({cid: f"rtsp://127.0.0.1:{sim.port}/{cid}/sub" for cid in offline})  # 404 from the simulator
        doc = city(urls, redis_url, api_port, live)
        cfg_file = work / "city.yaml"
        await asyncio.to_thread(cfg_file.write_text, dump_yaml(doc), encoding="utf-8")
        secret = secrets.token_urlsafe(24)
        os.environ[protocol.SECRET_ENV] = secret  # the children inherit it (never on a command line)
        pids: dict[str, int] = {}
        for i in range(workers):
            child = await sup.start(f"worker{i + 1}", cli_argv("worker", "--config", str(cfg_file), "--worker-id",
                                                               f"live-{i + 1}", "--ingest-only",
                                                               "--log-level", "WARNING"))
            assert child.proc is not None
            pids[child.name] = child.proc.pid
        api = await sup.start("api", cli_argv("api", "--config", str(cfg_file)))
        assert api.proc is not None
        pids["api"] = api.proc.pid
        api_url = f"http://127.0.0.1:{api_port}"
        await wait_http(api_url + "/healthz", 60, "the API", api)
        import redis.asyncio as aioredis

        r = aioredis.from_url(redis_url)
        try:
            tokens = {role: await create_user(r, "ch:", role, role) for role in ROLES}  # type: ignore[arg-type]
            ids = [c.camera_id for c in cameras]
            deadline = time.monotonic() + up_timeout_s
            while True:
                states = await read_states(r, "ch:", ids)
                registered = [k async for k in r.scan_iter(match="ch:live:worker:*")]
                if all(cid in states and states[cid].state == "up" for cid in ids) and len(registered) >= workers:
                    break
                if time.monotonic() > deadline:
                    tails = "\n".join(f"[{c.name}] " + "\n".join(c.tail[-10:]) for c in sup.children)
                    raise RuntimeError(f"cameras not up within {up_timeout_s:.0f} s: "
                                       f"{ {k: v.state for k, v in states.items()} }\n{tails}")
                await asyncio.sleep(0.2)
        finally:
            await r.aclose()
        return LiveSystem(api_url, redis_url, "ch:", tokens, ids, sim, sup, secret, pids)
    except BaseException:
        await sup.stop(grace_s=5.0)
        with contextlib.suppress(Exception):
            await sim.stop()
        raise


async def worker_stats(system: LiveSystem, worker_id: str = "live-1") -> dict[str, Any]:
    """The worker's ``GET /live/stats`` (signed like the API's calls)."""
    r = await system.redis()
    try:
        url = (await r.get(protocol.worker_key(system.prefix, worker_id))).decode()
    finally:
        await r.aclose()
    async with httpx.AsyncClient(timeout=10) as c:
        resp = await c.get(url + "/live/stats", headers=protocol.sign(system.secret, "GET", "/live/stats", "bench"))
        resp.raise_for_status()
        return resp.json()


def python() -> str:
    return sys.executable
