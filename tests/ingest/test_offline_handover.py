"""An offline alert outlives the worker that raised it: SIGKILL that worker while the camera is
down, bring the camera back under another worker process, and the alert ends (same alert, no
second one); its zone is the camera itself."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ingest_helpers import city_doc

from camera_hub.alerts.store import AlertStore
from camera_hub.ingest.status import read_states
from camera_hub.sim.rtsp_server import SimCameraSpec
from tests.conftest import REDIS_URL

REPO = Path(__file__).resolve().parents[2]


def spawn_worker(cfg_path: Path, wid: str, tmp_path: Path) -> subprocess.Popen:
    with (tmp_path / f"{wid}.log").open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "camera_hub.cli", "worker", "--config", str(cfg_path), "--worker-id", wid,
             "--redis-url", REDIS_URL, "--data-dir", str(tmp_path / wid), "--log-level", "INFO"],
            cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.DEVNULL, stderr=err)


async def offline_alerts(store: AlertStore) -> list:
    return (await store.list({"type": "camera_offline"})).alerts


@pytest.mark.slow
async def test_an_offline_alert_ends_under_another_worker_after_a_sigkill(sim_server_factory, redis_client,
                                                                          redis_prefix, tmp_path) -> None:
    sim = await sim_server_factory([SimCameraSpec("cam0", "smoke")], width=160, height=96)
    doc = city_doc([{"id": "cam0", "main_url": sim.url("cam0"), "zones": [
        {"id": "view", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "rules": [{"type": "tamper"}]}]}],
        redis_prefix=redis_prefix, ingest={"heartbeat_s": 0.5, "lease_ms": 2000, "backoff_base_s": 0.3,
                                           "backoff_cap_s": 1.0, "connect_timeout_s": 2.0, "read_timeout_s": 2.0})
    doc["settings"]["alerts"] = {"offline_grace_s": 2.0}
    cfg_path = tmp_path / "city.yaml"
    cfg_path.write_text(yaml.safe_dump(doc))
    store = AlertStore(redis_client, redis_prefix)
    logs = lambda: "\n".join(p.read_text()[-1500:] for p in tmp_path.glob("w*.log"))  # noqa: E731

    async def until(cond, within_s: float, what: str):
        for _ in range(int(within_s / 0.25)):
            if got := await cond():
                return got
            await asyncio.sleep(0.25)
        raise AssertionError(f"{what} within {within_s} s\n{logs()}")

    procs = {"w1": spawn_worker(cfg_path, "w1", tmp_path)}
    try:
        async def up() -> bool:
            return (await read_states(redis_client, redis_prefix, ["cam0"])).get("cam0", None) is not None and \
                (await read_states(redis_client, redis_prefix, ["cam0"]))["cam0"].state == "up"

        await until(up, 60, "cam0 up under w1")
        sim.fault("cam0", "drop", 3600)  # the camera goes away (sessions cut, refused) until cleared
        alerts = await until(lambda: offline_alerts(store), 30, "an offline alert from w1")
        assert len(alerts) == 1 and alerts[0].ended_at is None and alerts[0].zone_id == "cam0"
        procs["w1"].send_signal(signal.SIGKILL)
        procs["w1"].wait()
        procs["w2"] = spawn_worker(cfg_path, "w2", tmp_path)
        await asyncio.sleep(6.0)  # w2 holds the camera, still down, longer than the grace: no second alert
        assert [a.id for a in await offline_alerts(store)] == [alerts[0].id], logs()
        sim.fault("cam0", "clear")

        async def ended():
            got = await offline_alerts(store)
            return got if got and got[0].ended_at is not None else None

        done = await until(ended, 30, "the offline alert ended by w2")
        assert [a.id for a in done] == [alerts[0].id]
        assert await store.offline_open("cam0") is None
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
