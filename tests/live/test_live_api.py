"""The WHEP routes of the API against a real worker live endpoint, in one process over loopback
HTTP and real Redis: the worker side is a :class:`LiveServer` with rings of real H.264, the camera
status hashes and leases are written as a worker writes them. Offers carry no ICE candidates, so
no media flows (that is tests/live/test_live_whep.py, in a network namespace)."""

from __future__ import annotations

import asyncio
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


async def test_revoked_tokens_end_their_live_views_at_the_next_refresh(live: Live, worker: LiveServer) -> None:
    """Logout, expiry, removing the user and a role change each end the views opened with the
    token they revoke, at the worker's next refresh (one pipeline for all its sessions); another
    user's view, and a view opened with another token of the same user, go on."""
    import redis.asyncio as aioredis

    from camera_hub.api.auth import Auth, create_user, remove_user, token_digest

    r = aioredis.from_url(REDIS_URL)
    try:
        names = ("rv_logout", "rv_expiry", "rv_removed", "rv_demoted", "rv_other")
        tokens = {n: await create_user(r, live.prefix, n, "operator" if n == "rv_demoted" else "viewer")
                  for n in names}
        second, _ = await Auth(r, live.prefix).issue_token("rv_logout", "viewer")  # the same user, another token

        async def watch(token: str) -> str:
            async with httpx.AsyncClient(timeout=20) as c:
                resp = await c.post(f"{live.url}/api/v1/cameras/cam0/whep", content=(await offer()).encode(),
                                    headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"})
            assert resp.status_code == 201, resp.text
            return resp.headers["location"].rsplit("/", 1)[1]

        sids = {n: await watch(t) for n, t in tokens.items()}
        kept = await watch(second)
        assert worker.sessions[sids["rv_logout"]].token == token_digest(tokens["rv_logout"])
        await worker.refresh()
        assert set(sids.values()) | {kept} <= set(worker.sessions)  # every token good: all kept

        async with httpx.AsyncClient(timeout=10) as c:
            out = await c.post(f"{live.url}/api/v1/auth/logout",
                               headers={"Authorization": f"Bearer {tokens['rv_logout']}"})
            assert out.status_code == 204
            demoted = await c.post(f"{live.url}/api/v1/users", headers=live.headers("admin"),
                                   json={"name": "rv_demoted", "role": "viewer"})
            assert demoted.status_code == 201 and demoted.json()["tokens_revoked"]
        # expired by its own time (the Redis key's TTL would remove it a moment later anyway)
        await r.hset(protocol.token_key(live.prefix, token_digest(tokens["rv_expiry"])), "expires_at",
                     repr(time.time() - 1))
        assert await remove_user(r, live.prefix, "rv_removed")
        # nothing is ended before the refresh: the check is the worker's
        assert set(sids.values()) <= set(worker.sessions)
        await worker.refresh()
        for n in ("rv_logout", "rv_expiry", "rv_removed", "rv_demoted"):
            assert sids[n] not in worker.sessions, n
            assert await r.zscore(protocol.user_key(live.prefix, n), sids[n]) is None, n
        stops = {e["actor"]: e for e in await _audit(live, "access") if e["action"] == "live_stop"}
        for n in ("rv_logout", "rv_expiry", "rv_removed", "rv_demoted"):  # the worker's end, audited
            assert stops[n]["target"] == "cam0" and stops[n]["detail"] == f"session {sids[n]}: token revoked", n
            assert stops[n]["client"] == f"worker {worker.worker_id}", n
        assert "rv_other" not in stops
        assert sids["rv_other"] in worker.sessions and kept in worker.sessions
        assert await r.zscore(protocol.user_key(live.prefix, "rv_other"), sids["rv_other"]) is not None
        assert await r.zscore(protocol.user_key(live.prefix, "rv_logout"), kept) is not None
        for sid in (sids["rv_other"], kept):
            await worker.close_session(sid, "test over")
    finally:
        await r.aclose()


def test_the_worker_reads_the_auth_keys_where_the_api_writes_them() -> None:
    from camera_hub.api.auth import ROLES, Auth

    auth = Auth.__new__(Auth)
    auth.prefix = "p:"
    assert protocol.token_key("p:", "d" * 64) == auth._token_key("d" * 64)
    assert protocol.account_key("p:", "ann") == auth._user_key("ann")
    assert protocol.ROLES == ROLES


async def test_trickle_ice_patch_adds_the_viewers_candidates(live: Live, worker: LiveServer) -> None:
    """PATCH (RFC 9725 §4.3) with an RFC 8840 fragment: the candidates reach the worker's ICE agent,
    which then sends its connectivity checks to them (seen on a socket of ours, at the worker's own
    address: nothing leaves the machine); If-Match, content type, ownership and ICE restarts are
    checked; after end-of-candidates more candidates are ignored."""
    import asyncio
    import re
    import socket

    sdp = await offer()
    client_ufrag = re.search(r"a=ice-ufrag:(\S+)", sdp).group(1)
    client_pwd = re.search(r"a=ice-pwd:(\S+)", sdp).group(1)
    resp = await _whep(live, "cam0", sdp)
    assert resp.status_code == 201
    etag, location = resp.headers["etag"], resp.headers["location"]
    assert resp.headers["accept-patch"] == protocol.TRICKLE_TYPE
    worker_ufrag = re.search(r"a=ice-ufrag:(\S+)", resp.text).group(1)
    assert etag == f'"{worker_ufrag}"'
    sid = location.rsplit("/", 1)[1]
    host = next(ln.split()[4] for ln in resp.text.split("\r\n")
                if ln.startswith("a=candidate:") and "." in ln.split()[4])  # an IPv4 address of the worker's
    socks = []
    for _ in range(3):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, 0))
        s.setblocking(False)
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]

    def frag(*cands: str, end: bool = False, ufrag: str = client_ufrag, pwd: str = client_pwd) -> str:
        lines = [f"a=ice-ufrag:{ufrag}", f"a=ice-pwd:{pwd}", "m=video 9 UDP/TLS/RTP/SAVPF 0", "a=mid:0",
                 *(f"a=candidate:{c}" for c in cands)]
        return "\r\n".join([*lines, *(["a=end-of-candidates"] if end else []), ""])

    async def patch(body: str, *, if_match: str | None = etag, role: str = "viewer",
                    ctype: str = protocol.TRICKLE_TYPE, url: str = location) -> httpx.Response:
        headers = {"Content-Type": ctype, **live.headers(role)}
        if if_match is not None:
            headers["If-Match"] = if_match
        async with httpx.AsyncClient(timeout=20) as c:
            return await c.patch(live.url + url, content=body.encode(), headers=headers)

    def remote() -> set[tuple[str, int, str]]:
        return {(c.ip, c.port, c.protocol.lower()) for c in worker.remote_candidates(sid)}

    try:
        udp = f"1 1 udp 2122260223 {host} {ports[0]} typ host generation 0 ufrag {client_ufrag}"
        tcp = f"2 1 tcp 1518280447 {host} 9 typ host tcptype active"
        assert (await patch(frag(udp), ctype="application/sdp")).status_code == 415
        assert (await patch(frag(udp), if_match=None)).status_code == 428
        assert (await patch(frag(udp), if_match='"not-it"')).status_code == 412
        assert (await patch(frag(udp), role="operator")).status_code == 404  # not theirs
        assert (await patch(frag(udp), role="operator", url=location[:-32] + "0" * 32)).status_code == 404
        bad = await patch("a=candidate:1 1 udp x\r\nnot sdp\r\n")
        assert bad.status_code == 400
        restart = await patch(frag(udp, ufrag="Zz9Q", pwd="x" * 24), if_match="*")
        assert restart.status_code == 422 and "restart" in restart.json()["detail"]
        async with httpx.AsyncClient(timeout=10) as c:
            assert (await c.patch(live.url + location, content=frag(udp),
                                  headers={"Content-Type": protocol.TRICKLE_TYPE, "If-Match": etag})).status_code == 401
            for method in ("GET", "PUT", "POST"):  # 405 naming both methods a session URL takes
                other = await c.request(method, live.url + location, headers=live.headers("viewer"))
                assert other.status_code == 405 and other.headers["allow"] == "PATCH, DELETE", method
        assert not remote() & {(host, ports[0], "udp")}  # none of the refused ones got through

        ok = await patch(frag(udp, tcp))
        assert ok.status_code == 204 and not ok.content and "etag" not in ok.headers
        assert (host, ports[0], "udp") in remote()
        # the worker's ICE agent checks the pair: a STUN binding request from its ufrag to ours
        loop = asyncio.get_running_loop()
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(socks[0], 2048), 15)
        assert data[:2] == b"\x00\x01" and data[4:8] == bytes.fromhex("2112a442")
        assert f"{client_ufrag}:{worker_ufrag}".encode() in data

        again = f"3 1 udp 2122260222 {host} {ports[1]} typ host"
        late = f"4 1 udp 2122260221 {host} {ports[2]} typ host"
        other_generation = f"5 1 udp 2122260220 {host} 7 typ host ufrag Zz9Q"
        assert (await patch(frag(again, other_generation, end=True), if_match=f'"x", {etag}')).status_code == 204
        assert (await patch(frag(late), if_match="*")).status_code == 204
        got = remote()
        assert (host, ports[1], "udp") in got  # before end-of-candidates, in the same fragment
        assert (host, 7, "udp") not in got  # another ICE generation's
        assert (host, ports[2], "udp") not in got  # after end-of-candidates
    finally:
        for s in socks:
            s.close()
        await worker.close_session(sid, "test over")


async def test_a_logout_ends_its_live_view_at_once(live: Live, worker: LiveServer) -> None:
    """The API publishes each revocation; the worker checks its sessions then, not at its next
    5 s refresh: the view opened with the logged-out token is gone well within a refresh."""
    import redis.asyncio as aioredis

    from camera_hub.api.auth import create_user

    r = aioredis.from_url(REDIS_URL)
    try:
        token = await create_user(r, live.prefix, "rv_push", "viewer")
    finally:
        await r.aclose()
    worker._refresher = asyncio.create_task(worker._refresh_loop())  # the fixture stopped it; stop() ends it
    await asyncio.sleep(0.5)  # subscribed
    async with httpx.AsyncClient(timeout=20) as c:
        resp = await c.post(f"{live.url}/api/v1/cameras/cam0/whep", content=(await offer()).encode(),
                            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"})
        assert resp.status_code == 201, resp.text
        sid = resp.headers["location"].rsplit("/", 1)[1]
        assert sid in worker.sessions
        t0 = time.monotonic()
        out = await c.post(f"{live.url}/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
        assert out.status_code == 204
    for _ in range(int((protocol.REFRESH_S + 2) / 0.05)):  # past a refresh: the periodic one would end it too
        if sid not in worker.sessions:
            break
        await asyncio.sleep(0.05)
    took = time.monotonic() - t0
    assert sid not in worker.sessions and took < 2.0, f"ended after {took:.2f} s (refresh every {protocol.REFRESH_S} s)"
    stops = [e for e in await _audit(live, "access") if e["action"] == "live_stop" and e["actor"] == "rv_push"]
    assert stops and stops[-1]["detail"] == f"session {sid}: token revoked"


async def test_a_token_that_expires_ends_its_live_view_when_it_expires(live: Live, worker: LiveServer) -> None:
    """A token that runs out by its own time (no revocation is published) ends its view at that
    moment, not at the worker's next 5 s refresh: the refresh after the session opened learnt
    when the token expires."""
    import redis.asyncio as aioredis

    from camera_hub.api.auth import create_user, token_digest

    r = aioredis.from_url(REDIS_URL)
    try:
        token = await create_user(r, live.prefix, "rv_timed", "viewer")
        expires = time.time() + 2.5
        await r.hset(protocol.token_key(live.prefix, token_digest(token)), "expires_at", repr(expires))
    finally:
        await r.aclose()
    worker._refresher = asyncio.create_task(worker._refresh_loop())  # the fixture stopped it; stop() ends it
    async with httpx.AsyncClient(timeout=20) as c:
        resp = await c.post(f"{live.url}/api/v1/cameras/cam0/whep", content=(await offer()).encode(),
                            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"})
    assert resp.status_code == 201, resp.text
    sid = resp.headers["location"].rsplit("/", 1)[1]
    for _ in range(int((expires - time.time() + protocol.REFRESH_S + 2) / 0.05)):
        if sid not in worker.sessions:
            break
        await asyncio.sleep(0.05)
    late = time.time() - expires
    assert sid not in worker.sessions and -0.1 < late < 1.0, f"ended {late:+.2f} s from its token's expiry"
    stops = [e for e in await _audit(live, "access") if e["action"] == "live_stop" and e["actor"] == "rv_timed"]
    assert stops and stops[-1]["detail"] == f"session {sid}: token revoked"
