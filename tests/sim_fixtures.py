"""Pytest plugin: the camera simulator as fixtures, for every test area that needs real RTSP.

Register with ``pytest_plugins = ["tests.sim_fixtures"]`` (or import the fixtures). Example::

    async def test_reads(sim_server_factory):
        server = await sim_server_factory([SimCameraSpec("cam-1", "smoke")], width=320, height=180)
        url = server.url("cam-1")          # rtsp://127.0.0.1:<free port>/cam-1/sub

The ``smoke`` scene is a 6 s loop that encodes in well under a second; the full scenes
(``street_vending`` ...) take seconds each at 640x360 the first time in a session. Set
CAMERA_HUB_SIM_CACHE to a folder to keep encodes across sessions.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from camera_hub.sim.rtsp_server import SimCameraSpec, SimServer

SimServerFactory = Callable[..., Awaitable[SimServer]]


@pytest.fixture(scope="session")
def sim_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where encoded scenes are kept for this test session (shared by every simulator in it)."""
    env = os.environ.get("CAMERA_HUB_SIM_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("sim-cache")


@pytest.fixture
async def sim_server_factory(sim_cache_dir: Path) -> AsyncIterator[SimServerFactory]:
    """``await factory(cameras, **SimServer kwargs)`` → a started SimServer on free ports
    (RTSP and control API), stopped after the test."""
    servers: list[SimServer] = []

    async def make(cameras: list[SimCameraSpec], **kwargs: Any) -> SimServer:
        kwargs.setdefault("cache_dir", sim_cache_dir)
        server = SimServer(cameras, **kwargs)
        servers.append(server)
        await server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            await server.stop()
