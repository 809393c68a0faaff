"""Checks on a running `camera-hub demo` (tests/deploy/test_wheel.py runs the installed demo and
calls them): every Grafana panel's query returns data from Debian's Prometheus scraping it, and
the operator page shows each alert type in headless Chromium."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import yaml

from camera_hub.demo import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
TYPES = {"vending", "crowding", "tamper", "camera_offline"}
CHROMIUM = Path("/usr/bin/chromium")


@contextlib.contextmanager
def prometheus_scraping(api: str, workers: list[str], folder: Path) -> Iterator[Callable[[], None]]:
    """Debian's Prometheus scraping the running demo with our rules, from now on; yields the
    check that every Grafana panel's query parses and returns data (started early, it has
    scraped enough by the time the demo has shown everything else)."""
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

    def every_panel_has_data() -> None:
        empty: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
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
            time.sleep(3)
        raise AssertionError("panels without data:\n" + "\n".join(empty))

    try:
        yield every_panel_has_data
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
            page = browser.new_page(locale="en-US")
            page.goto(base + "/")
            page.fill("input[name=username], #username", "demo")
            page.fill("input[type=password]", "demo-password")
            page.keyboard.press("Enter")
            labels = json.loads((REPO / "camera_hub/api/web/i18n/en.json").read_text())
            for kind in TYPES:  # each type's alert in the queue, under its English label
                page.locator(".title .type", has_text=labels[f"type.{kind}"]).first.wait_for(timeout=20_000)
        finally:
            browser.close()
