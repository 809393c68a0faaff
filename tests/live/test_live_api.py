"""The WHEP routes of the API against a real worker live endpoint, in one process over loopback
HTTP and real Redis: the worker side is a :class:`LiveServer` with rings of real H.264, the camera
status hashes and leases are written as a worker writes them. Offers carry no ICE candidates, so
no media flows (that is tests/live/test_live_whep.py, in a network namespace)."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from livekit import h264, offer, ring_with

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from apikit import REDIS_URL, Live, start_live, stop_live  # noqa: E402

from camera_hub.ingest.shard import lease_key  # noqa: E402
from camera_hub.ingest.status import CameraStatus, write_states  # noqa: E402
from camera_hub.live import protocol  # noqa: E402
from camera_hub.live.server import LiveServer  # noqa: E402

SECRET = "live-secret-for-tests-0123"


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[Live]:
    lv, server, sync = start_live(tmp_path_factory.mktemp("live-api"))
    try:
        yield lv
    finally:
        stop_live(lv, server, sync)


@pytest.fixture
async def worker(live: Live, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LiveServer]:
    """cam0 (H.264) and cam1 (H.265) up on worker w1 with its live endpoint; cam2 down; cam3 up
    but held by no worker."""
    import redis.asyncio as aioredis

    monkeypatch.setenv(protocol.SECRET_ENV, SECRET)
    info, packets = h264(15, gop=10)
    rings = {"cam0": ring_with(info, packets)}
    r = aioredis.from_url(REDIS_URL)
    now = time.time()
    await write_states(r, live.prefix, [
        CameraStatus(camera_id="cam0", state="up", since=now, codec="h264", worker="w1", updated_at=now),
        CameraStatus(camera_id="cam1", state="up", since=now, codec="hevc", worker="w1", updated_at=now),
        CameraStatus(camera_id="cam2", state="down", reason="timeout", since=now, updated_at=now),
        CameraStatus(camera_id="cam3", state="up", since=now, codec="h264", updated_at=now)])
    for cam in ("cam0", "cam1", "cam2"):
        await r.set(lease_key(live.prefix, cam), "w1")
    from camera_hub.config import LiveSettings

    server = LiveServer(LiveSettings(), secret=SECRET, ring_for=rings.get, redis=r, prefix=live.prefix,
                        worker_id="w1")
    await server.start()
    server._refresher.cancel()  # the tests call refresh() themselves
    try:
        yield server
    finally:
        await server.stop()
        await r.aclose()


async def _whep(live: Live, camera: str, body: str, role: str | None = "viewer",
                ctype: str = "application/sdp") -> httpx.Response:
    headers = {"Content-Type": ctype, **(live.headers(role) if role else {})}
    async with httpx.AsyncClient(timeout=20) as c:
        return await c.post(f"{live.url}/api/v1/cameras/{camera}/whep", content=body.encode(), headers=headers)


async def _audit(live: Live, stream: str) -> list[dict[str, str]]:
    import redis.asyncio as aioredis

    r = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        return [f for _, f in await r.xrange(f"{live.prefix}audit:{stream}")]
    finally:
        await r.aclose()


async def test_whep_offer_is_forwarded_audited_and_deleted(live: Live, worker: LiveServer) -> None:
    import redis.asyncio as aioredis

    sdp = await offer()
    resp = await _whep(live, "cam0", sdp)
    assert resp.status_code == 201, resp.text
    assert resp.headers["content-type"].startswith("application/sdp") and "H264/90000" in resp.text
    location = resp.headers["location"]
    sid = location.rsplit("/", 1)[1]
    assert location == f"/api/v1/cameras/cam0/whep/{sid}" and protocol.SESSION_ID.match(sid)
    assert worker.sessions[sid].user == "viewer" and worker.sessions[sid].camera_id == "cam0"
    r = aioredis.from_url(REDIS_URL)
    try:
        assert await r.zscore(protocol.user_key(live.prefix, "viewer"), sid) is not None
        assert (await r.get(protocol.worker_key(live.prefix, "w1"))).decode() == worker.url
    finally:
        await r.aclose()
    views = [e for e in await _audit(live, "access") if e["action"] == "live_view"]
    assert views[-1]["actor"] == "viewer" and views[-1]["target"] == "cam0" and sid in views[-1]["detail"]

    async with httpx.AsyncClient(timeout=10) as c:
        other = await c.delete(live.url + location, headers=live.headers("operator"))
        assert other.status_code == 404 and sid in worker.sessions  # not theirs
        mine = await c.delete(live.url + location, headers=live.headers("viewer"))
        assert mine.status_code == 200 and sid not in worker.sessions
        assert (await c.delete(live.url + location, headers=live.headers("viewer"))).status_code == 404
        assert (await c.delete(live.url + location)).status_code == 401
    assert [e for e in await _audit(live, "access") if e["action"] == "live_stop"][-1]["target"] == "cam0"


async def test_whep_refusals(live: Live, worker: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import redis.asyncio as aioredis

    sdp = await offer()
    assert (await _whep(live, "cam0", sdp, role=None)).status_code == 401
    assert (await _whep(live, "nope", sdp)).status_code == 404
    assert (await _whep(live, "cam0", sdp, ctype="text/plain")).status_code == 415
    assert (await _whep(live, "cam0", "hello")).status_code == 400
    hevc = await _whep(live, "cam1", sdp)
    assert hevc.status_code == 422 and "H.265" in hevc.json()["detail"] and "Safari" in hevc.json()["detail"]
    down = await _whep(live, "cam2", sdp)
    assert down.status_code == 503 and "down (timeout)" in down.json()["detail"]
    nobody = await _whep(live, "cam3", sdp)
    assert nobody.status_code == 503 and "no worker" in nobody.json()["detail"]
    vp8 = await _whep(live, "cam0", await offer(("video/VP8",)))
    assert vp8.status_code == 422 and "H.264" in vp8.json()["detail"]
    r = aioredis.from_url(REDIS_URL)
    try:
        assert await r.zcard(protocol.user_key(live.prefix, "viewer")) == 0  # refused: nothing reserved
        # the worker is registered but does not answer: 503, the reservation given back
        await r.set(protocol.worker_key(live.prefix, "w1"), "http://127.0.0.1:9")
        gone = await _whep(live, "cam0", sdp)
        assert gone.status_code == 503 and "did not answer" in gone.json()["detail"]
        assert await r.zcard(protocol.user_key(live.prefix, "viewer")) == 0
    finally:
        await r.aclose()
    monkeypatch.delenv(protocol.SECRET_ENV)
    off = await _whep(live, "cam0", sdp)
    assert off.status_code == 503 and "not configured" in off.json()["detail"]
    denied = await _audit(live, "denied")
    assert {("cam1", "422"), ("cam2", "503"), ("cam3", "503")} <= {(e["target"], e["detail"][:3]) for e in denied
                                                                   if e["action"] == "live_view"}


async def test_worker_ends_sessions_that_are_no_longer_listed(live: Live, worker: LiveServer) -> None:
    import redis.asyncio as aioredis

    resp = await _whep(live, "cam0", await offer(), role="analyst")
    assert resp.status_code == 201
    sid = resp.headers["location"].rsplit("/", 1)[1]
    await worker.refresh()
    assert sid in worker.sessions  # listed and refreshed
    r = aioredis.from_url(REDIS_URL)
    try:
        await r.zrem(protocol.user_key(live.prefix, "analyst"), sid)  # e.g. an admin cut it off
    finally:
        await r.aclose()
    await worker.refresh()
    assert sid not in worker.sessions and not worker.cameras
