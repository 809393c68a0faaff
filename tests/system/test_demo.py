"""`camera-hub demo` as a user runs it: it comes up, every alert type appears (vending, crowding,
tamper, camera_offline), the operator page shows them in headless Chromium, Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from systemkit import processes_left

from camera_hub.demo import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
TYPES = {"vending", "crowding", "tamper", "camera_offline"}
CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_raises_every_alert_type_and_stops_cleanly(tmp_path: Path, redis_server: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "camera_hub.cli", "demo", "--cameras", "10", "--no-browser", "--port", str(port),
         "--data-dir", str(tmp_path / "demo")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    lines: list[str] = []
    up = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Camera Hub demo is up" in line:
                up.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        assert up.wait(360), "demo did not come up:\n" + "".join(lines[-40:])
        base = f"http://127.0.0.1:{port}"
        login = httpx.post(f"{base}/api/v1/auth/login", json={"username": "demo", "password": "demo-password"})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        seen: set[str] = set()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and seen != TYPES:
            page = httpx.get(f"{base}/api/v1/alerts", params={"limit": 200}, headers=headers).json()
            seen = {a["type"] for a in page["items"]}
            time.sleep(3)
        assert seen == TYPES, f"alert types seen: {sorted(seen)}\n" + "".join(lines[-30:])
        coverage = httpx.get(f"{base}/api/v1/coverage", headers=headers).json()
        assert 0 < coverage["city"]["covered"] < coverage["city"]["grids"]  # only the live subset covers
        if CHROMIUM.exists():
            check_operator_page(base)
        metrics_line = next(ln for ln in lines if "Prometheus metrics:" in ln)
        targets = [u.split("//")[1].split("/")[0] for u in metrics_line.split()[2:]]
        if shutil.which("prometheus"):
            check_dashboard_queries(targets[0], targets[1:], tmp_path / "prom")
        assert "demo-only-password" not in "".join(lines)  # camera passwords never printed
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does in a terminal
        code = proc.wait(60)
    assert code == 0, "".join(lines[-30:])
    assert "demo: stopping" in "".join(lines)
    left = processes_left(tmp_path / "demo")
    assert left == "", f"children left running: {left}"


def check_dashboard_queries(api: str, workers: list[str], folder: Path) -> None:
    """Debian's Prometheus scrapes the running demo with our rules; every Grafana panel's query
    must parse and return data."""
    folder.mkdir()
    cfg = {"global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
           "rule_files": [str(DEPLOY / "prometheus" / "rules" / "camera_hub.rules.yml")],
           "scrape_configs": [{"job_name": "camera-hub-api", "static_configs": [{"targets": [api]}]},
                              {"job_name": "camera-hub-worker", "static_configs": [{"targets": workers}]}]}
    (folder / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    prom = subprocess.Popen(["prometheus", f"--config.file={folder / 'prometheus.yml'}",
                             f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    queries = [(panel["title"], t["expr"])
               for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
               for panel in json.loads(path.read_text())["panels"] for t in panel["targets"]]
    try:
        empty: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            time.sleep(3)
            empty = []
            for title, expr in queries:
                try:
                    res = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": expr}).json()
                except httpx.HTTPError:
                    empty.append(f"{title}: Prometheus not answering")
                    continue
                assert res["status"] == "success", f"{title}: {expr}: {res}"
                if not res["data"]["result"]:
                    empty.append(f"{title}: {expr}")
            if not empty:
                return
        raise AssertionError("panels without data:\n" + "\n".join(empty))
    finally:
        prom.terminate()
        prom.wait(30)


def check_operator_page(base: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()
            page.goto(base + "/")
            page.fill("input[name=username], #username", "demo")
            page.fill("input[type=password]", "demo-password")
            page.keyboard.press("Enter")
            for kind in TYPES:
                page.locator(".title", has_text=f"{kind} · ").first.wait_for(timeout=20_000)
        finally:
            browser.close()
