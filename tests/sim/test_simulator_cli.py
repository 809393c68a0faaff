"""``camera-hub sim``: cameras from a city config mapped to scenes, credentials from their URLs,
and the real command serving them until Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from camera_hub.config import load_config
from camera_hub.sim.cli import plan
from camera_hub.sim.scenes import SQUARE_SCENES, STREET_SCENES
from tests.sim.sim_helpers import read_stream

CITY = """
city: {id: testcity, name: Test City}
districts:
- id: d1
  name: D1
  streets:
  - id: s1
    name: S1
    communities:
    - id: c1
      name: C1
      grids: [{id: g1, category: market, households: 400}]
"""

CAMERA = """
- id: {id}
  name: {id}
  kind: {kind}
  main_url: rtsp://admin:Pa55-word@127.0.0.1:8554/{id}/main
  sub_url: rtsp://admin:Pa55-word@127.0.0.1:8554/{id}/sub
  location: {{lat: 28.2, lon: 112.9}}
  grids: [g1]
  zones:
  - id: {zone}
    polygon: {polygon}
    rules: [{{type: {rule}}}]
"""


@pytest.fixture
def city_dir(tmp_path: Path) -> Path:
    (tmp_path / "city.yaml").write_text(CITY)
    cams = [("cam-0001", "community", "frontage", "[[0.05,0.52],[0.95,0.52],[0.95,0.8],[0.05,0.8]]", "vending"),
            ("cam-0002", "community", "square", "[[0.1,0.3],[0.9,0.3],[0.9,0.95],[0.1,0.95]]", "crowding"),
            ("cam-0003", "community", "frontage", "[[0.05,0.52],[0.95,0.52],[0.95,0.8],[0.05,0.8]]", "vending"),
            ("look-1", "lookout", "square", "[[0.1,0.3],[0.9,0.3],[0.9,0.95],[0.1,0.95]]", "crowding")]
    text = "cameras:" + "".join(CAMERA.format(id=i, kind=k, zone=z, polygon=p, rule=r) for i, k, z, p, r in cams)
    (tmp_path / "cameras.yaml").write_text(text)
    return tmp_path


def test_plan_maps_cameras_to_scenes(city_dir: Path) -> None:
    specs, creds, mixed = plan(load_config(city_dir), cameras=2)
    assert [s.camera_id for s in specs] == ["cam-0001", "cam-0002", "look-1"]  # first 2 community + lookout
    assert specs[0].scene in STREET_SCENES and specs[1].scene in SQUARE_SCENES and specs[2].scene == "lookout"
    assert all(s.offset_s == zlib.crc32(s.camera_id.encode()) % 180 for s in specs)
    assert creds == ("admin", "Pa55-word") and not mixed
    specs, _, _ = plan(load_config(city_dir), cameras=10, scene="smoke")
    assert {s.scene for s in specs} == {"smoke"} and len(specs) == 4


async def test_sim_command_serves_until_interrupted(city_dir: Path, sim_cache_dir: Path) -> None:
    cmd = [sys.executable, "-m", "camera_hub.cli", "sim", "--config", str(city_dir), "--cameras", "1", "--port", "0",
           "--control-port", "0", "--scene", "smoke", "--cache-dir", str(sim_cache_dir)]
    # started with SIGINT ignored, as a parent that ignores it passes on (the full suite once did):
    # the simulator must still stop on it
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    output: list[str] = []
    try:
        async with asyncio.timeout(90):
            while not any(line.startswith("Ctrl-C") for line in output):
                line = (await proc.stdout.readline()).decode()
                assert line, "".join(output)
                output.append(line)
        port = int(re.search(r"serving 2 cameras on rtsp://127.0.0.1:(\d+)/", "".join(output))[1])
        reading = await asyncio.to_thread(read_stream, f"rtsp://admin:Pa55-word@127.0.0.1:{port}/cam-0001/sub", 1.0)
        assert reading.ended is None and len(reading.packets) > 5
        lookout = await asyncio.to_thread(read_stream, f"rtsp://admin:Pa55-word@127.0.0.1:{port}/look-1/main", 0.5,
                                          decode=True)
        assert {(w, h) for _, w, h in lookout.frames} == {(1280, 720)}  # main of a street scene (encoded lazily)
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            rest = (await proc.stdout.read()).decode()
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = "".join(output) + rest
    assert "encoding smoke" in text and "stopped" in text
    assert "Pa55-word" not in text and "admin:***@" in text
