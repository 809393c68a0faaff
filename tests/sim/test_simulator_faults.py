"""Each injected fault does what it says, seen from a real client (PyAV or a raw RTSP client)."""

from __future__ import annotations

import asyncio
import time

import pytest

from camera_hub.sim.rtsp_client import RtspClient
from camera_hub.sim.rtsp_server import SimCameraSpec
from tests.sim.sim_helpers import read_stream

SMALL = {"width": 320, "height": 180, "control_port": None}


@pytest.fixture
async def server(sim_server_factory):
    return await sim_server_factory([SimCameraSpec("cam-1", "smoke"), SimCameraSpec("cam-2", "smoke", 2.0)], **SMALL)


def describe(server, camera_id: str = "cam-1") -> int:
    with RtspClient(server.url(camera_id)) as c:
        return c.request("DESCRIBE").status


async def wait_for_close(server) -> None:
    """The server sees a client's close a moment after the client made it (up to 5 s)."""
    for _ in range(250):
        if any(e.event == "close" for e in server.connection_log):
            return
        await asyncio.sleep(0.02)


async def fault_later(server, delay: float, kind: str, duration: float | None = None, camera_id: str = "cam-1") -> None:
    await asyncio.sleep(delay)
    server.fault(camera_id, kind, duration)


async def test_drop_closes_the_readers_connection(server) -> None:
    task = asyncio.create_task(fault_later(server, 1.5, "drop"))
    reading = await asyncio.to_thread(read_stream, server.url("cam-1"), 10.0)
    await task
    await wait_for_close(server)
    assert reading.ended is not None and reading.packets
    assert reading.packets[-1][0] - reading.opened_at < 5  # ended by the drop, not by the reader
    events = [(e.camera_id, e.event) for e in server.connection_log]
    assert events == [("cam-1", "play"), ("cam-1", "close")]
    assert await asyncio.to_thread(describe, server) == 200  # a drop without duration is momentary


async def test_stall_keeps_the_socket_open_and_sends_nothing(server) -> None:
    def run() -> tuple[int, str, int]:
        with RtspClient(server.url("cam-1"), timeout=1.0) as c:
            c.play()
            c.read_packet()
            server.fault("cam-1", "stall")  # from another thread: applied on the loop
            time.sleep(0.5)
            try:  # what was in flight before the stall
                while True:
                    c.read_packet()
            except TimeoutError:
                pass
            during = 0
            t_end = time.monotonic() + 2.0
            outcome = "open"
            while time.monotonic() < t_end:
                try:
                    during += c.drain()
                except EOFError:
                    outcome = "closed"
                    break
            server.fault("cam-1", "clear")  # from another thread: applied on the loop
            after = c.read_packet()
            return during, outcome, after.seq

    during, outcome, _ = await asyncio.to_thread(run)
    assert during == 0 and outcome == "open"
    await wait_for_close(server)
    assert [e.event for e in server.connection_log] == ["play", "close"]  # resumed, then closed by us


async def test_refuse_answers_503_until_cleared(server) -> None:
    server.fault("cam-1", "refuse")
    assert await asyncio.to_thread(describe, server) == 503
    assert await asyncio.to_thread(describe, server, "cam-2") == 200  # only that camera
    server.fault("cam-1", "clear")
    assert await asyncio.to_thread(describe, server) == 200
    server.fault("cam-1", "refuse", 0.5)
    assert await asyncio.to_thread(describe, server) == 503
    await asyncio.sleep(0.6)
    assert await asyncio.to_thread(describe, server) == 200  # expired on its own


async def test_restart_drops_refuses_then_serves_again(server) -> None:
    task = asyncio.create_task(fault_later(server, 1.0, "restart"))
    first = await asyncio.to_thread(read_stream, server.url("cam-1"), 10.0)
    await task
    assert first.ended is not None
    assert await asyncio.to_thread(describe, server) == 503
    t0 = time.monotonic()
    while await asyncio.to_thread(describe, server) != 200:
        assert time.monotonic() - t0 < 5
        await asyncio.sleep(0.2)
    assert 1.0 <= time.monotonic() - t0 + 0.3 <= 4.0  # ~2 s of refusal
    again = await asyncio.to_thread(read_stream, server.url("cam-1"), 1.0)
    assert again.ended is None and len(again.packets) > 5


async def test_garbage_makes_decode_errors(server) -> None:
    clean = await asyncio.to_thread(read_stream, server.url("cam-1"), 2.0, decode=True)
    assert clean.decode_errors == 0 and clean.frames
    server.fault("cam-1", "garbage", 10)
    dirty = await asyncio.to_thread(read_stream, server.url("cam-1"), 2.0, decode=True)
    assert dirty.decode_errors >= 5


async def test_resize_changes_the_decoded_resolution(server) -> None:
    task = asyncio.create_task(fault_later(server, 1.0, "resize"))
    reading = await asyncio.to_thread(read_stream, server.url("cam-1"), 4.5, decode=True)
    await task
    sizes = [(w, h) for _, w, h in reading.frames]
    assert sizes[0] == (320, 180) and sizes[-1] == (160, 90)  # switched at a keyframe, in-band SPS
    assert reading.decode_errors == 0
    server.fault("cam-1", "clear")
    back = await asyncio.to_thread(read_stream, server.url("cam-1"), 0.5, decode=True)
    assert {(w, h) for _, w, h in back.frames} == {(320, 180)}


async def test_no_keyframes_withholds_idr_frames(server) -> None:
    server.fault("cam-1", "no_keyframes")

    def nal_types(seconds: float, clear_after: bool) -> tuple[set[int], set[int]]:
        with RtspClient(server.url("cam-1")) as c:
            c.play()
            seen: set[int] = set()
            t_end = time.monotonic() + seconds
            while time.monotonic() < t_end:
                seen.add(c.read_packet().nal_type)
            if not clear_after:
                return seen, set()
            server.fault("cam-1", "clear")  # from another thread: applied on the loop
            later: set[int] = set()
            t_end = time.monotonic() + 2.6  # a GOP is 2 s
            while time.monotonic() < t_end and 5 not in later:
                later.add(c.read_packet().nal_type)
            return seen, later

    during, after = await asyncio.to_thread(nal_types, 2.5, True)
    assert 1 in during and 5 not in during and 7 not in during  # P slices only, no IDR, no SPS
    assert 5 in after


async def test_credentials_fault_refuses_the_right_password_until_cleared(sim_server_factory) -> None:
    """A password changed at the camera: every request gets 401 (the configured password included),
    other cameras are untouched, and ``clear`` restores it."""
    server = await sim_server_factory([SimCameraSpec("cam-1", "smoke"), SimCameraSpec("cam-2", "smoke")],
                                      credentials=("admin", "s3cret!"), **SMALL)

    def describe_status(camera_id: str) -> int:
        with RtspClient(server.url(camera_id)) as c:
            return c.request("DESCRIBE").status

    assert await asyncio.to_thread(describe_status, "cam-1") == 200
    server.fault("cam-1", "credentials", 30)
    assert server.fault_of("cam-1") == "credentials"
    assert await asyncio.to_thread(describe_status, "cam-1") == 401
    assert await asyncio.to_thread(describe_status, "cam-2") == 200
    server.fault("cam-1", "clear")
    assert await asyncio.to_thread(describe_status, "cam-1") == 200
