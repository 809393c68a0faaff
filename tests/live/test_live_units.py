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
        ring.append(p)  # as the camera's thread would: the fan-out runs in the appending thread
    await asyncio.sleep(0.05)
    n = 1
    while v._frames:
        await v.recv()
        n += 1
    assert n == 15  # the GOP from its keyframe (10..14), then 15..24
    cam.close()
    assert v.readyState == "ended"
    assert not ring._listeners  # unsubscribed


async def test_viewers_joining_while_the_camera_thread_appends_get_every_frame_once_in_order() -> None:
    """The fan-out runs in the thread that appends to the ring, start() and add() on the loop:
    whenever they land between two appends, each viewer gets one keyframe-led run of frames with
    nothing missing, repeated or out of order, up to the last frame appended. The ring here lets
    the camera's thread in between the subscription and the hand-over of the GOP."""
    import time

    class SlowRing(PacketRing):
        def subscribe(self, fn):  # type: ignore[no-untyped-def]
            got = super().subscribe(fn)
            time.sleep(0.002)  # the camera's thread appends meanwhile
            return got

    info, packets = h264(300, gop=10)
    for attempt in range(10):
        ring = SlowRing(60, 64 << 20)
        ring.set_info(info)
        for p in packets[:5 + attempt]:
            ring.append(p)
        cam = LiveCamera("cam", ring, asyncio.get_running_loop())
        go = threading.Event()

        def camera(ring: PacketRing = ring, go: threading.Event = go,
                   rest: list[EncodedPacket] = packets[5 + attempt:]) -> None:
            go.set()
            for p in rest:
                ring.append(p)
                time.sleep(0.0002)

        t = threading.Thread(target=camera)
        t.start()
        go.wait()
        cam.start()
        viewers = [ViewerTrack(max_frames=400) for _ in range(3)]
        for v in viewers:
            cam.add(v)
            await asyncio.sleep(0)
        t.join()
        ticks = [p.pts for p in packets]
        for v in viewers:
            got = [f.ticks for f in v._frames]
            start = ticks.index(got[0])
            assert packets[start].is_keyframe and got == ticks[start:], attempt
        cam.close()


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


async def test_a_queued_viewer_waiting_on_the_loop_wakes_for_a_frame_from_the_camera_thread() -> None:
    """aiortc's own send loop (and the lean one before it connects) awaits recv() on the event loop
    while the fan-out puts from the camera's thread."""
    v = ViewerTrack()
    waiting = asyncio.create_task(v.recv())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await asyncio.to_thread(v.put, Frame(b"\x00\x00\x00\x01\x65", 0, True, 0.0))
    assert bytes(await asyncio.wait_for(waiting, 2)) == b"\x00\x00\x00\x01\x65"
    v.stop()


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


def test_packetize_gives_aiortcs_payloads() -> None:
    """Frame.payloads: the shortcut for one large NAL unit gives what aiortc's H264Encoder.pack
    gives, and so does every other shape of access unit (real libx264 frames, start codes of 3
    and 4 bytes, several NAL units, one small one)."""
    import random

    import av
    from aiortc.codecs.h264 import H264Encoder

    from camera_hub.live.media import packetize

    rnd = random.Random(7)
    body = rnd.randbytes(5000).replace(b"\x00\x00", b"\x00\x07")  # no start code inside
    units = [b"\x00\x00\x00\x01\x41" + body, b"\x00\x00\x01\x41" + body[:1300], b"\x00\x00\x00\x01\x41" + body[:90],
             b"\x00\x00\x00\x01\x67" + body[:12] + b"\x00\x00\x00\x01\x68" + body[:4] + b"\x00\x00\x01\x65" + body,
             *(p.data for p in h264(12, gop=6, width=640, height=360)[1])]
    for au in units:
        pkt = av.Packet(au)
        pkt.pts, pkt.time_base = 0, Fraction(1, 90000)
        assert packetize(au) == tuple(H264Encoder().pack(pkt)[0])


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
    # the token digest a session lasts with is signed too: it cannot be swapped for another
    t = {k.lower(): v for k, v in protocol.sign(SECRET, "POST", "/p", "ann", b"", 1000, token="d" * 64).items()}
    assert t["x-live-token"] == "d" * 64 and protocol.verify(SECRET, "POST", "/p", t, b"", now=1000) == "ann"
    assert protocol.verify(SECRET, "POST", "/p", {**t, "x-live-token": "e" * 64}, b"", now=1000) is None
    assert protocol.verify(SECRET, "POST", "/p", {**t, "x-live-token": ""}, b"", now=1000) is None


def test_trickle_fragment_parsing() -> None:
    # RFC 9725's example (§4.3.2), with CRLF or LF
    frag = ("a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\n"
            "a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n"
            "a=candidate:473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0 ufrag EsAw\r\n"
            "a=end-of-candidates\r\n")
    for text in (frag, frag.replace("\r\n", "\n")):
        f = protocol.parse_sdpfrag(text)
        assert (f.ufrag, f.pwd, f.end) == ("EsAw", "P2uYro0UCOQ4zxjKXaWCBui1", True)
        assert [(c.mid, c.mline, c.ufrag) for c in f.candidates] == [("0", 0, "EsAw"), ("0", 0, "EsAw")]
        assert f.candidates[0].value.startswith("1387637174 1 udp 2122260223 192.0.2.1 61764 typ host")
    # two m= sections, a=mid after the candidates; no m= at all
    two = protocol.parse_sdpfrag("m=audio 9 X 0\na=candidate:1 1 udp 1 10.0.0.1 5 typ host\na=mid:a\n"
                                 "m=video 9 X 0\na=mid:v\na=candidate:2 1 udp 1 10.0.0.1 6 typ host\n")
    assert [(c.mid, c.mline) for c in two.candidates] == [("a", 0), ("v", 1)] and not two.end
    bare = protocol.parse_sdpfrag("a=candidate:1 1 udp 1 10.0.0.1 5 typ host\n")
    assert [(c.mid, c.mline) for c in bare.candidates] == [(None, 0)] and bare.ufrag is None
    for bad in ("hello", "a=candidate:1 1 udp 1 10.0.0.1 5", "a=candidate:1 x udp 1 10.0.0.1 5 typ host",
                "a=candidate:1 1 udp 1 10.0.0.1 port typ host", "a=candidate:1 1 udp 1 10.0.0.1 5 type host",
                "a=candidate:1 1 udp 1 10.0.0.1 65536 typ host"):
        with pytest.raises(ValueError):
            protocol.parse_sdpfrag(bad)


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
                user: str = "ann", token: str = "d" * 64) -> httpx.Response:
    path = f"/live/{camera}/{sid or protocol.new_session_id()}"
    async with httpx.AsyncClient(timeout=10) as c:
        return await c.post(server.url + path, content=body.encode(),
                            headers=protocol.sign(secret, "POST", path, user, body.encode(), token=token))


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
        assert server.sessions[sid].user == "ann" and server.sessions[sid].token == "d" * 64
        etag = server.sessions[sid].etag
        assert r.headers["etag"] == f'"{etag}"' and f"a=ice-ufrag:{etag}" in answer  # the ICE session
        assert (await _post(server, "cam0", sdp, sid)).status_code == 409  # an id is used once
        no_token = await _post(server, "cam0", sdp, token="")  # a session nobody could revoke
        assert no_token.status_code == 400 and "token" in no_token.json()["detail"]
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
            # another user's session, as if there were none (the API checks ownership first; this is the worker's own)
            resp = await c.delete(server.url + path, headers=protocol.sign(SECRET, "DELETE", path, "bob"))
            assert resp.status_code == 404 and sid in server.sessions
            frag = b"a=candidate:1 1 udp 1 10.0.0.1 5000 typ host\r\n"
            resp = await c.patch(server.url + path, content=frag, headers={
                **protocol.sign(SECRET, "PATCH", path, "bob", frag), "If-Match": f'"{etag}"'})
            assert resp.status_code == 404 and sid in server.sessions
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


# ------------------------------------------------------------------ the lean RTP send loop
async def test_lean_sender_sends_what_aiortc_would_and_retransmits_as_rtx() -> None:
    """camera_hub/live/sender.py on a real aiortc RTCRtpSender whose ICE pair is a real UDP socket
    on 127.0.0.1 (SRTP left out, so the datagrams can be parsed): the payloads are aiortc's own
    packetisation of each frame, the headers parse with aiortc's parser, the counters RTCP reads
    move, a frame put from the camera's thread is on the wire before put() returns (no hand-off
    to the event loop), and a NACKed packet comes back as RTX that aiortc's unwrap_rtx turns into
    the original."""
    import os
    import socket
    import time
    from types import SimpleNamespace

    import av
    from aioice.ice import StunProtocol
    from aiortc import RTCRtpSender
    from aiortc.codecs.h264 import H264Encoder
    from aiortc.rtcdtlstransport import State
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket, unwrap_rtx

    from camera_hub.live.sender import install

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx.setblocking(False)
    rx.settimeout(2)

    def received(n: int) -> list[bytes]:
        return [rx.recv(65536) for _ in range(n)]

    protocol_ = StunProtocol(None)  # the selected pair's protocol, its asyncio transport's socket
    protocol_.transport = SimpleNamespace(_sock=tx)
    pair = SimpleNamespace(protocol=protocol_, remote_addr=rx.getsockname())
    transport = SimpleNamespace(state="connected", _state=State.CONNECTED,
                                _tx_srtp=SimpleNamespace(protect=lambda d: d),
                                transport=SimpleNamespace(_connection=SimpleNamespace(_nominated={1: pair})))
    track = ViewerTrack()
    sender = RTCRtpSender(track, transport)
    ext_params = RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
        RTCRtpHeaderExtensionParameters(id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time")])
    sender._RTCRtpSender__rtp_header_extensions_map.configure(ext_params)
    sender._RTCRtpSender__mid = "0"
    sender._RTCRtpSender__rtx_payload_type = 97
    assert install(sender)
    # an IDR with SPS/PPS in front (STAP-A) and a 5 kB slice (FU-A), then small P slices
    idr = b"".join(b"\x00\x00\x00\x01" + n for n in (b"\x67" + os.urandom(12), b"\x68" + os.urandom(4),
                                                       b"\x65" + os.urandom(5000)))
    p = b"\x00\x00\x00\x01\x41" + os.urandom(300)
    frames = [Frame(idr, 0, True, 0.0), Frame(p, 9000, False, 0.0), Frame(p, 18000, False, 0.0)]
    expected = []
    for f in frames:
        pkt = av.Packet(f.data)
        pkt.pts, pkt.time_base = f.ticks, Fraction(1, 90000)
        expected.append(H264Encoder().pack(pkt)[0])
    assert [list(f.payloads) for f in frames] == expected and len(expected[0]) >= 5  # STAP-A + 4 FU-A

    track.put(frames[0])  # queued before the connection: sent when the sender starts
    task = asyncio.create_task(sender._run_rtp(RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000,
                                                                      payloadType=102)))
    sent = await asyncio.to_thread(received, len(expected[0]))
    loop_thread = threading.get_ident()

    def camera_thread() -> list[bool]:  # as the ring's listener: put, and the datagrams are there
        assert threading.get_ident() != loop_thread
        rx.setblocking(False)
        on_wire = []
        for f in frames[1:]:
            track.put(f)
            try:
                sent.extend(received(len(expected[1])))
                on_wire.append(True)
            except BlockingIOError:
                on_wire.append(False)
        rx.settimeout(2)
        return on_wire

    assert await asyncio.to_thread(camera_thread) == [True, True]
    ext_map = HeaderExtensionsMap()
    ext_map.configure(ext_params)
    packets = [RtpPacket.parse(data, ext_map) for data in sent]
    seq0, n = packets[0].sequence_number, sum(map(len, expected))
    assert [x.payload for x in packets] == [*expected[0], *expected[1], *expected[2]]
    assert all(x.payload_type == 102 and x.ssrc == sender._ssrc and x.extensions.mid == "0"
               and x.extensions.abs_send_time is not None for x in packets)
    sent_at = (int((time.time() + 2_208_988_800) * (1 << 32)) >> 14) & 0xFFFFFF  # abs-send-time: 6.18 s, mod 64 s
    assert all((sent_at - x.extensions.abs_send_time) & 0xFFFFFF < 5 << 18 for x in packets)  # within 5 s
    assert [x.sequence_number for x in packets] == [(seq0 + i) & 0xFFFF for i in range(n)]
    assert [x.marker for x in packets] == [0] * (len(expected[0]) - 1) + [1] + ([0] * (len(expected[1]) - 1) + [1]) * 2
    stamps = [(x.timestamp - packets[0].timestamp) & 0xFFFFFFFF for x in packets if x.marker]
    assert stamps == [0, 9000, 18000]  # the viewer's stamps: 0, then the camera's spacing
    assert sender._RTCRtpSender__packet_count == n
    assert sender._RTCRtpSender__octet_count == sum(len(x.payload) for x in packets)

    lost = packets[2]
    await sender._retransmit(lost.sequence_number)
    await sender._retransmit((lost.sequence_number + 1000) & 0xFFFF)  # never sent: nothing
    rtx = RtpPacket.parse((await asyncio.to_thread(received, 1))[0], ext_map)
    rx.setblocking(False)
    with pytest.raises(BlockingIOError):
        rx.recv(65536)
    assert rtx.payload_type == 97 and rtx.ssrc == sender._rtx_ssrc and rtx.extensions.mid == "0"
    original = unwrap_rtx(rtx, payload_type=102, ssrc=sender._ssrc)
    assert (original.sequence_number, original.timestamp, original.marker, original.payload) == \
        (lost.sequence_number, lost.timestamp, lost.marker, lost.payload)

    # the connection went: the next frame ends the loop and the track
    transport.state, transport._state = "closed", State.CLOSED
    await asyncio.to_thread(track.put, frames[1])
    await asyncio.wait_for(task, 5)
    assert sender._RTCRtpSender__rtp_exited.is_set() and track.readyState == "ended"
    rx.close()
    tx.close()
