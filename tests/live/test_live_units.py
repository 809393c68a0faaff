"""Live view pieces without a network namespace: the ring subscription, the per-camera fan-out
(keyframe first, parameter sets, B-frames, H.265), the viewer's RTP timing, the API → worker
signature, extra ICE addresses, and the worker's live endpoint over loopback HTTP (offers carry
no ICE candidates here, so no connectivity check is ever sent)."""

from __future__ import annotations

import asyncio
import threading
from fractions import Fraction

import httpx
import pytest
from livekit import h264, offer, ring_with

from camera_hub.config import LiveSettings
from camera_hub.events import EncodedPacket, StreamInfo
from camera_hub.ingest.ring import PacketRing
from camera_hub.live import protocol
from camera_hub.live.media import CATCH_UP_TICKS, Frame, LiveCamera, Unsupported, ViewerTrack, h264_nal_types
from camera_hub.live.server import LiveServer

SECRET = "s" * 24


# ------------------------------------------------------------------ ring subscription
def test_subscribe_hands_over_the_last_gop_then_every_packet_exactly_once() -> None:
    info, packets = h264(35, gop=10)
    ring = ring_with(info, packets[:25])  # keyframes at 0, 10, 20
    seen: list[EncodedPacket] = []
    got_info, gop = ring.subscribe(seen.append)
    assert got_info == info and gop == packets[20:25] and gop[0].is_keyframe
    t = threading.Thread(target=lambda: [ring.append(p) for p in packets[25:]])
    t.start()
    t.join()
    assert seen == packets[25:]
    ring.unsubscribe(seen.append)
    ring.append(packets[0])
    assert len(seen) == 10


def test_listeners_get_packets_the_ring_does_not_keep() -> None:
    info, packets = h264(12, gop=10)
    ring = PacketRing(60, 64 << 20)
    ring.set_info(info)
    seen: list[EncodedPacket] = []
    assert ring.subscribe(seen.append) == (info, [])
    for p in packets[1:]:  # starts mid-GOP: the ring keeps nothing before the next keyframe
        ring.append(p)
    assert seen == packets[1:]


# ------------------------------------------------------------------ fan-out
async def test_a_viewer_starts_on_the_keyframe_with_parameter_sets_in_front() -> None:
    info, packets = h264(25, gop=10, in_band=False)
    assert info.extradata and all(7 not in h264_nal_types(p.data) for p in packets)
    ring = ring_with(info, packets[:15])
    cam = LiveCamera("cam", ring, asyncio.get_running_loop())
    cam.start()
    cam.check()
    v = ViewerTrack()
    cam.add(v)
    first = await v.recv()
    assert {7, 8, 5} <= h264_nal_types(bytes(first)) and first.pts == 0 and first.time_base == Fraction(1, 90000)
    for p in packets[15:]:
        ring.append(p)  # from this thread: the camera gets them through the loop
    await asyncio.sleep(0.05)
    n = 1
    while v._frames:
        await v.recv()
        n += 1
    assert n == 15  # the GOP from its keyframe (10..14), then 15..24
    cam.close()
    assert v.readyState == "ended"
    assert not ring._listeners  # unsubscribed


async def test_b_frames_and_hevc_are_refused_with_a_reason() -> None:
    info, packets = h264(30, gop=10, bframes=2)
    assert any(b.pts < a.pts for a, b in zip(packets, packets[1:], strict=False))  # decode order != display
    cam = LiveCamera("cam", ring_with(info, packets), asyncio.get_running_loop())
    cam.start()
    with pytest.raises(Unsupported, match="B-frames"):
        cam.check()
    cam.close()

    hevc = StreamInfo("hevc", 160, 120, None, Fraction(1, 90000))
    ring = ring_with(hevc, [EncodedPacket(b"\x00\x00\x00\x01\x26\x01xx", 0, 0, True, hevc.time_base, 1.0)])
    cam = LiveCamera("cam", ring, asyncio.get_running_loop())
    cam.start()
    with pytest.raises(Unsupported, match="H.265"):
        cam.check()
    cam.close()


async def test_viewer_catches_up_1ms_apart_then_keeps_the_camera_spacing() -> None:
    v = ViewerTrack(max_frames=50)
    step = 9000  # 10 fps
    for i in range(5):
        v.put(Frame(b"\x00\x00\x00\x01\x65" if i == 0 else b"\x00\x00\x00\x01\x41", i * step, i == 0, 0.0))
    stamps = [(await v.recv()).pts for _ in range(5)]
    assert stamps[:3] == [0, CATCH_UP_TICKS, 2 * CATCH_UP_TICKS]  # more than one frame behind: 1 ms apart
    assert stamps[3:] == [stamps[2] + step, stamps[2] + 2 * step]  # then the camera's spacing
    v.put(Frame(b"\x00\x00\x00\x01\x41", 5 * step, False, 0.0))
    assert (await v.recv()).pts == stamps[4] + step
    v.put(Frame(b"\x00\x00\x00\x01\x41", 7, False, 0.0))  # a timestamp jump (the camera reconnected)
    assert (await v.recv()).pts == stamps[4] + step + 3600


def test_a_viewer_that_falls_behind_waits_for_the_next_keyframe() -> None:
    v = ViewerTrack(max_frames=3)
    v.put(Frame(b"p", 0, False, 0.0))  # no keyframe yet: nothing
    assert not v._frames
    for i in range(3):
        v.put(Frame(b"k" if i == 0 else b"p", i, i == 0, 0.0))
    v.put(Frame(b"p", 3, False, 0.0))  # over the bound: all dropped, wait for a keyframe
    assert not v._frames and v.dropped == 4
    v.put(Frame(b"p", 4, False, 0.0))
    v.put(Frame(b"k", 5, True, 0.0))
    assert [f.ticks for f in v._frames] == [5]


# ------------------------------------------------------------------ signature, SDP
def test_signature_binds_method_path_user_body_and_time() -> None:
    h = {k.lower(): v for k, v in protocol.sign(SECRET, "POST", "/live/cam/" + "a" * 32, "ann", b"v=0", 1000).items()}
    assert protocol.verify(SECRET, "POST", "/live/cam/" + "a" * 32, h, b"v=0", now=1010) == "ann"
    assert protocol.verify(SECRET, "POST", "/live/cam/" + "a" * 32, h, b"v=1", now=1010) is None
    assert protocol.verify(SECRET, "DELETE", "/live/cam/" + "a" * 32, h, b"v=0", now=1010) is None
    assert protocol.verify(SECRET, "POST", "/live/cam2/" + "a" * 32, h, b"v=0", now=1010) is None
    assert protocol.verify("t" * 24, "POST", "/live/cam/" + "a" * 32, h, b"v=0", now=1010) is None
    assert protocol.verify(SECRET, "POST", "/live/cam/" + "a" * 32, h, b"v=0", now=1000 + 31) is None
    assert protocol.verify(SECRET, "POST", "/live/cam/" + "a" * 32, {**h, "x-live-user": "bob"}, b"v=0",
                           now=1010) is None


def test_extra_ice_addresses_copy_each_host_candidate() -> None:
    sdp = ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
           "a=candidate:f1 1 udp 2130706431 10.0.0.5 40001 typ host\r\n"
           "a=candidate:f2 1 udp 2130706431 172.17.0.2 40002 typ host\r\na=end-of-candidates\r\n")
    out = protocol.add_ice_addresses(sdp, ["203.0.113.7", "10.0.0.5"])
    lines = out.split("\r\n")
    assert "a=candidate:f1x0 1 udp 2130706430 203.0.113.7 40001 typ host" in lines
    assert "a=candidate:f2x0 1 udp 2130706430 203.0.113.7 40002 typ host" in lines
    assert sum("10.0.0.5" in ln for ln in lines) == 1  # an address it has already is not repeated
    assert lines.index("a=end-of-candidates") == len(lines) - 2
    assert protocol.add_ice_addresses(sdp, []) == sdp


# ------------------------------------------------------------------ the worker's live endpoint
async def _post(server: LiveServer, camera: str, body: str, sid: str | None = None, secret: str = SECRET,
                user: str = "ann") -> httpx.Response:
    path = f"/live/{camera}/{sid or protocol.new_session_id()}"
    async with httpx.AsyncClient(timeout=10) as c:
        return await c.post(server.url + path, content=body.encode(),
                            headers=protocol.sign(secret, "POST", path, user, body.encode()))


async def test_live_endpoint_answers_refuses_and_ends_sessions() -> None:
    info, packets = h264(15, gop=10)
    b_info, b_packets = h264(30, gop=10, bframes=2)
    rings = {"cam0": ring_with(info, packets), "bf": ring_with(b_info, b_packets),
             "empty": ring_with(info, []),
             "hevc": ring_with(StreamInfo("hevc", 8, 8, None, info.time_base),
                               [EncodedPacket(b"\x00\x00\x00\x01\x26\x01x", 0, 0, True, info.time_base, 1.0)])}
    settings = LiveSettings(max_viewers_per_camera=1, ice_addresses=["203.0.113.9"], udp_ports=(41200, 41209))
    server = LiveServer(settings, secret=SECRET, ring_for=rings.get, redis=None, prefix="t:", worker_id="w")
    await server.start()
    try:
        sdp = await offer()
        sid = protocol.new_session_id()
        r = await _post(server, "cam0", sdp, sid)
        assert r.status_code == 201 and r.headers["content-type"] == "application/sdp"
        answer = r.text
        assert "H264/90000" in answer and "VP8" not in answer and "a=sendonly" in answer
        ports = {int(ln.split()[5]) for ln in answer.split("\r\n") if ln.startswith("a=candidate:")}
        assert ports and all(41200 <= p <= 41209 for p in ports)
        assert " 203.0.113.9 " in answer and "127.0.0.1" not in answer
        assert server.sessions[sid].user == "ann"
        assert (await _post(server, "cam0", sdp, sid)).status_code == 409  # an id is used once
        limited = await _post(server, "cam0", sdp)
        assert limited.status_code == 429 and "max_viewers_per_camera" in limited.json()["detail"]

        for cam, status, words in (("hevc", 422, "H.265"), ("bf", 422, "B-frames"), ("empty", 503, "keyframe"),
                                   ("gone", 503, "does not read")):
            resp = await _post(server, cam, sdp)
            assert resp.status_code == status and words in resp.json()["detail"], (cam, resp.text)
        vp8 = await _post(server, "cam0", await offer(("video/VP8",)))
        assert vp8.status_code in (422, 429)  # the camera's one place is taken; free it and ask again
        assert (await _post(server, "cam0", sdp, secret="x" * 24)).status_code == 401
        async with httpx.AsyncClient(timeout=10) as c:
            unsigned = await c.post(server.url + f"/live/cam0/{protocol.new_session_id()}", content=sdp)
            assert unsigned.status_code == 401
            path = f"/live/cam0/{sid}"
            resp = await c.delete(server.url + path, headers=protocol.sign(SECRET, "DELETE", path, "ann"))
            assert resp.status_code == 200 and sid not in server.sessions
            assert "cam0" not in server.cameras  # no viewers: unsubscribed from the ring
            resp = await c.delete(server.url + path, headers=protocol.sign(SECRET, "DELETE", path, "ann"))
            assert resp.status_code == 404
        vp8 = await _post(server, "cam0", await offer(("video/VP8",)))
        assert vp8.status_code == 422 and "H.264" in vp8.json()["detail"]
        assert not server.sessions
    finally:
        await server.stop()
    import aiortc.rtcicetransport
    from aioice import Connection

    assert aiortc.rtcicetransport.Connection is Connection  # the port range was this server's only


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16"):
        LiveServer(LiveSettings(), secret="short", ring_for=lambda _: None, redis=None, prefix="t:", worker_id="w")


async def test_serve_live_needs_a_secret_and_takes_the_worker_options() -> None:
    from types import SimpleNamespace

    from camera_hub.config import Settings
    from camera_hub.live.server import serve_live

    cfg = SimpleNamespace(settings=Settings())
    worker = SimpleNamespace(ring=lambda _cid: None, worker_id="w")
    assert await serve_live(cfg, worker, None, secret=None) is None  # no secret: no endpoint
    with pytest.raises(ValueError, match="LOW-HIGH"):
        await serve_live(cfg, worker, None, secret=SECRET, udp_ports="4000")
    server = await serve_live(cfg, worker, None, secret=SECRET, host="127.0.0.1", advertise="api-sees-me",
                              ice_addresses="203.0.113.1, 203.0.113.2", udp_ports="41300-41309")
    assert server is not None
    try:
        assert server.url.startswith("http://api-sees-me:")
        assert server.settings.ice_addresses == ["203.0.113.1", "203.0.113.2"]
        assert server.settings.udp_ports == (41300, 41309)
    finally:
        await server.stop()
