"""`camera-hub users add` prints a working token; `camera-hub api` serves the app."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import redis
import yaml

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("CAMERA_HUB_TEST_REDIS", "redis://127.0.0.1:6379/9")


def test_users_add_then_api_serves_with_that_token(tmp_path) -> None:
    prefix = f"test:{uuid.uuid4().hex[:10]}:"
    cfg_dir = tmp_path / "city"
    cfg_dir.mkdir()
    src = REPO / "config" / "demo-city"
    for name in ("city.yaml", "cameras.yaml"):
        (cfg_dir / name).write_text((src / name).read_text())
    settings = yaml.safe_load((src / "settings.yaml").read_text()) or {}
    settings.setdefault("settings", {}).setdefault("redis", {})["prefix"] = prefix
    (cfg_dir / "settings.yaml").write_text(yaml.safe_dump(settings))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = [sys.executable, "-m", "camera_hub.cli"]
    sync = redis.Redis.from_url(REDIS_URL)
    proc = None
    try:
        out = subprocess.run([*cli, "users", "add", "ops1", "--role", "operator", "--config", str(cfg_dir),
                              "--redis-url", REDIS_URL, "--password-stdin"], input="correct horse\n",
                             capture_output=True, text=True, timeout=60, cwd=REPO)
        assert out.returncode == 0, out.stderr
        token = out.stdout.strip()
        assert len(token) > 30 and "\n" not in token
        bad = subprocess.run([*cli, "users", "add", "x", "--role", "root", "--config", str(cfg_dir)],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
        assert bad.returncode == 2 and "unknown role" in bad.stderr
        proc = subprocess.Popen([*cli, "api", "--config", str(cfg_dir), "--redis-url", REDIS_URL, "--port", str(port),
                                 "--data-dir", str(tmp_path / "data")], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "api did not start"
            time.sleep(0.2)
        me = httpx.get(f"http://127.0.0.1:{port}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json() == {"user": "ops1", "role": "operator"}
        login = httpx.post(f"http://127.0.0.1:{port}/api/v1/auth/login",
                           json={"username": "ops1", "password": "correct horse"})
        assert login.status_code == 200
        assert len(httpx.get(f"http://127.0.0.1:{port}/api/v1/cameras",
                             headers={"Authorization": f"Bearer {token}"}).json()["items"]) > 1000
        # removing the user revokes its tokens at once, the CLI's and the login's
        gone = subprocess.run([*cli, "users", "remove", "ops1", "--config", str(cfg_dir), "--redis-url", REDIS_URL],
                              capture_output=True, text=True, timeout=60, cwd=REPO)
        assert gone.returncode == 0, gone.stderr
        for t in (token, login.json()["token"]):
            me = httpx.get(f"http://127.0.0.1:{port}/api/v1/me", headers={"Authorization": f"Bearer {t}"})
            assert me.status_code == 401
        again = subprocess.run([*cli, "users", "remove", "ops1", "--config", str(cfg_dir), "--redis-url", REDIS_URL],
                               capture_output=True, text=True, timeout=60, cwd=REPO)
        assert again.returncode == 1 and "no user" in again.stderr
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        for key in sync.scan_iter(match=f"{prefix}*", count=1000):
            sync.delete(key)
        sync.close()
