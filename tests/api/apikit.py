"""Helpers for tests/api: a real API server (uvicorn on a free port, in a thread) over real Redis."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "alerts"))  # alertkit

from alertkit import make_city  # noqa: E402

from camera_hub.api.app import create_app  # noqa: E402
from camera_hub.api.auth import create_user  # noqa: E402
from camera_hub.config import CityConfig  # noqa: E402

REDIS_URL = os.environ.get("CAMERA_HUB_TEST_REDIS", "redis://127.0.0.1:6379/9")


@dataclass
class Live:
    url: str
    prefix: str
    data_dir: Path
    cfg: CityConfig
    tokens: dict[str, str]
    passwords: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


class ServerThread:
    def __init__(self, app) -> None:  # noqa: ANN001
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                                    timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("API server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def start_live(tmp: Path, cfg: CityConfig | None = None) -> tuple[Live, ServerThread, redis.Redis]:
    prefix = f"test:{uuid.uuid4().hex[:10]}:"
    cfg = cfg or make_city(4, pre_roll_s=2, post_roll_s=2)
    passwords = {r: f"pw-{r}-{uuid.uuid4().hex[:6]}" for r in ("viewer", "operator", "analyst", "admin")}

    async def users() -> dict[str, str]:
        import redis.asyncio as aioredis

        r = aioredis.from_url(REDIS_URL)
        try:
            return {role: await create_user(r, prefix, role, role, pw) for role, pw in passwords.items()}
        finally:
            await r.aclose()

    tokens = asyncio.run(users())
    app = create_app(cfg, redis_url=REDIS_URL, prefix=prefix, data_dir=tmp, housekeeping_s=0.5)
    server = ServerThread(app).__enter__()
    return (Live(f"http://127.0.0.1:{server.port}", prefix, tmp, cfg, tokens, passwords), server,
            redis.Redis.from_url(REDIS_URL))


def stop_live(live: Live, server: ServerThread, sync: redis.Redis) -> None:
    server.__exit__(None, None, None)
    for key in sync.scan_iter(match=f"{live.prefix}*", count=1000):
        sync.delete(key)
    sync.close()
