"""A private redis-server that a test may pause, kill and start again (the shared Redis on 6379
must never be touched)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


class RedisProc:
    """A private redis-server; AOF with fsync always so a SIGKILL loses no acknowledged write."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a paused one must be able to die
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def redis_proc(tmp_path: Path) -> Iterator[RedisProc]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    rp = RedisProc(tmp_path)
    rp.start()
    try:
        yield rp
    finally:
        rp.kill()
