"""API load: alert publish rate into Redis, SSE fan-out to many clients, alert-list latency.

    .venv/bin/python benchmarks/api_load.py [--redis redis://127.0.0.1:6379/9] [--clients 100]

1. publish: the real path (id, Lua create of hash + indexes + feed entry) into Redis: publish()
   from 1 task and from --concurrency tasks, and publish_many() in batches of --batch (what the
   worker hands over per detector batch); alerts/s sustained, every alert checked in the feed.
2. fan-out: the API in its own process (uvicorn), --clients SSE connections (plain sockets, one
   per client) from this process, a publisher process sending --rate alerts/s for --duration s.
   Delay = arrival at the client − the alert's publish time (its updated_at, set just before the
   publish call); events/s = deliveries to all clients / (last arrival − first publish).
3. list latency: during the fan-out, GET /api/v1/alerts?limit=50 (and with a district filter)
   in a loop; p50/p99.
Keys go under a fresh prefix and are deleted at the end. Target: ≥ 2,000 alerts/s, p99 feed delay
< 250 ms with 100 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camera_hub.config import CityConfig, load_config  # noqa: E402
from camera_hub.events import Episode  # noqa: E402


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q / 100 * len(s)))]


def episodes(cfg: CityConfig, n: int, tag: str) -> list[Episode]:
    rng = random.Random(1)
    cams = [c.id for c in cfg.cameras]
    types = ("vending", "crowding", "tamper")
    now = time.time()
    return [Episode("start", rng.choice(types), rng.choice(cams), f"{tag}{i}", now - rng.random() * 3600, now,  # type: ignore[arg-type]
                    score=0.8, count=rng.randint(1, 20), boxes=((0.1, 0.2, 0.3, 0.5, "person", 0.9),))
            for i in range(n)]


async def bench_publish(cfg: CityConfig, url: str, prefix: str, data: Path, n: int, concurrency: int,
                        batch: int = 1) -> float:
    from camera_hub.alerts.publisher import AlertPublisher
    from camera_hub.alerts.store import connect

    r = connect(url)
    pub = AlertPublisher(cfg, r, prefix=prefix, data_dir=data)
    eps = episodes(cfg, n, "pub")
    queue = iter([eps[i:i + batch] for i in range(0, n, batch)])

    async def worker() -> None:
        for chunk in queue:
            if batch == 1:
                await pub.publish(chunk[0])
            else:
                await pub.publish_many(chunk)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    dt = time.perf_counter() - t0
    created = await r.xlen(pub.store.feed_key)
    assert created >= n, (created, n)
    await r.aclose()
    return n / dt


def serve(config: str, url: str, prefix: str, data: str, port: int) -> None:
    import uvicorn

    from camera_hub.api.app import create_app

    app = create_app(load_config(config), redis_url=url, prefix=prefix, data_dir=Path(data))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=1024)


def publish_at_rate(config: str, url: str, prefix: str, data: str, rate: float, duration: float,
                    ready: Any, go: Any, start_at: Any) -> None:
    from camera_hub.alerts.publisher import AlertPublisher
    from camera_hub.alerts.store import connect

    cfg = load_config(config)

    async def run() -> None:
        r = connect(url)
        pub = AlertPublisher(cfg, r, prefix=prefix, data_dir=Path(data))
        n = int(rate * duration)
        eps = episodes(cfg, n, "fan")
        await r.ping()
        ready.set()
        await asyncio.to_thread(go.wait)
        await asyncio.sleep(max(0.0, start_at.value - time.time()))
        t0 = time.perf_counter()
        for i, ep in enumerate(eps):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.time()
            await pub.publish(Episode("start", ep.type, ep.camera_id, ep.zone_id, ep.started_at, now,
                                      score=ep.score, count=ep.count, boxes=ep.boxes))
        await r.aclose()

    asyncio.run(run())


async def bench_fanout(args: argparse.Namespace, url: str, prefix: str, data: Path) -> dict[str, float]:
    import httpx
    import redis.asyncio as aioredis

    from camera_hub.api.auth import create_user

    r = aioredis.from_url(url)
    token = await create_user(r, prefix, "bench", "viewer", token_ttl_s=3600)
    await r.aclose()
    with socket.socket() as sock:  # a free port (released just before uvicorn binds it)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    server = ctx.Process(target=serve, args=(args.config, url, prefix, str(data), port), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=args.clients + 20, max_keepalive_connections=args.clients + 20)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        for _ in range(200):
            try:
                if (await http.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        delays: list[float] = []
        received = 0
        expected = int(args.rate * args.duration)
        ready = asyncio.Event()
        connected = 0
        last_arrival = 0.0

        async def client() -> None:
            """A plain SSE reader on its own socket (httpx's per-line overhead would make the
            clients, not the server, the bottleneck on 2 cores)."""
            nonlocal received, connected, last_arrival
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET /api/v1/feed HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
                         f"Accept: text/event-stream\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:100]
            got = 0
            buf = b""
            try:
                while got < expected:
                    size = int((await reader.readline()).strip(), 16)  # chunked transfer encoding
                    buf += await reader.readexactly(size + 2)
                    buf = buf[:-2] if buf.endswith(b"\r\n") else buf
                    *events, buf = buf.split(b"\n\n")
                    t = time.time()
                    last_arrival = max(last_arrival, t)
                    for ev in events:
                        if ev.startswith(b"retry:"):
                            connected += 1
                            if connected == args.clients:
                                ready.set()
                            continue
                        data = ev[ev.find(b"data: ") + 6:]
                        doc = json.loads(data)
                        if doc["zone_id"].startswith("fan"):
                            delays.append(t - doc["updated_at"])
                            received += 1
                            got += 1
            finally:
                writer.close()

        p_ready, p_go, p_start = ctx.Event(), ctx.Event(), ctx.Value("d", 0.0)
        producer = ctx.Process(target=publish_at_rate, args=(args.config, url, prefix, str(data), args.rate,
                                                              args.duration, p_ready, p_go, p_start), daemon=True)
        producer.start()
        clients = [asyncio.create_task(client()) for _ in range(args.clients)]
        await asyncio.wait_for(ready.wait(), 60)
        assert await asyncio.to_thread(p_ready.wait, 60), "publisher process did not start"
        start_at = time.time() + 0.2
        p_start.value = start_at
        p_go.set()

        list_lat: list[float] = []

        async def lister() -> None:
            await asyncio.sleep(max(0.0, start_at - time.time()))
            end = start_at + args.duration
            i = 0
            while time.time() < end:
                params = {"limit": "50"} if i % 2 else {"limit": "50", "district": args.district}
                t0 = time.perf_counter()
                resp = await http.get("/api/v1/alerts", params=params, headers=headers)
                list_lat.append(time.perf_counter() - t0)
                assert resp.status_code == 200, resp.text
                i += 1
                await asyncio.sleep(0.02)

        await lister()
        try:
            await asyncio.wait_for(asyncio.gather(*clients), args.duration + 60)
        except TimeoutError:
            for c in clients:
                c.cancel()
        wall = last_arrival - start_at
        producer.join(30)
    server.terminate()
    server.join(10)
    return {"events_expected": expected * args.clients, "events_received": received,
            "events_per_s": received / wall, "delay_p50_ms": pct(delays, 50) * 1000,
            "delay_p99_ms": pct(delays, 99) * 1000, "delay_max_ms": max(delays) * 1000 if delays else float("nan"),
            "list_p50_ms": pct(list_lat, 50) * 1000, "list_p99_ms": pct(list_lat, 99) * 1000,
            "list_requests": len(list_lat)}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} {platform.release()}"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis", default=os.environ.get("CAMERA_HUB_BENCH_REDIS", "redis://127.0.0.1:6379/9"))
    ap.add_argument("--config", default=str(REPO / "config" / "demo-city"))
    ap.add_argument("--alerts", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64, help="episodes per publish_many call")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rate", type=float, default=100.0, help="alerts/s during the fan-out")
    ap.add_argument("--duration", type=float, default=10.0)
    args = ap.parse_args()
    cfg = load_config(args.config)
    args.district = cfg.districts[0].id
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    data = Path(tempfile.mkdtemp(prefix="api-load-"))
    import redis.asyncio as aioredis

    r = aioredis.from_url(args.redis)
    info = await r.info("server")
    print(f"machine: {machine()}; Redis {info['redis_version']} at {args.redis.rsplit('@', 1)[-1]}")
    print(f"city: {args.config} ({len(cfg.cameras)} cameras)")
    try:
        rate1 = await bench_publish(cfg, args.redis, prefix, data, min(3000, args.alerts), 1)
        print(f"publish, 1 task:        {rate1:8.0f} alerts/s")
        rate = await bench_publish(cfg, args.redis, prefix + "c:", data, min(5000, args.alerts), args.concurrency)
        print(f"publish, {args.concurrency} tasks:       {rate:8.0f} alerts/s")
        rate = await bench_publish(cfg, args.redis, prefix + "b:", data, args.alerts, 4, args.batch)
        print(f"publish_many, batches of {args.batch}, 4 tasks: {rate:8.0f} alerts/s   (target >= 2000)")
        res = await bench_fanout(args, args.redis, prefix + "f:", data)
        print(f"fan-out: {args.clients} SSE clients, {args.rate:.0f} alerts/s for {args.duration:.0f} s: "
              f"{res['events_received']}/{res['events_expected']} events delivered, "
              f"{res['events_per_s']:.0f} events/s")
        print(f"  feed delay p50 {res['delay_p50_ms']:.1f} ms, p99 {res['delay_p99_ms']:.1f} ms, "
              f"max {res['delay_max_ms']:.1f} ms   (target p99 < 250 ms)")
        print(f"  alert list under load ({res['list_requests']} requests, limit 50, half filtered by district): "
              f"p50 {res['list_p50_ms']:.1f} ms, p99 {res['list_p99_ms']:.1f} ms")
    finally:
        async for key in r.scan_iter(match=f"{prefix}*", count=1000):
            await r.delete(key)
        await r.aclose()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
