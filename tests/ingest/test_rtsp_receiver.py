"""The native RTSP reader: depacketisation (RFC 6184 / RFC 7798), SDP, authentication, the
interleaved framing over a real socket (keepalive replies and garbage between packets), the
reactor that reads many sessions on one thread, and keyframe decoding without deblocking.
The simulator, GStreamer and the fault tests cover it against real servers."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import struct
import threading
import time
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from ingest_helpers import wait_until

from camera_hub.events import EncodedPacket, StreamInfo
from camera_hub.ingest import rtsp
from camera_hub.ingest.reactor import Reactor
from camera_hub.ingest.rtsp import Depacketizer, RtspReceiver, RtspStatusError, parse_sdp
from camera_hub.ingest.sampler import Sampler
from camera_hub.sim.rtsp_server import SimCameraSpec

S = b"\x00\x00\x00\x01"
SPS, PPS = b"\x67\x42\xc0\x1e\xda", b"\x68\xce\x3c\x80"
IDR = b"\x65" + bytes(range(1, 200))
P = b"\x41" + bytes(range(50))


def fu_a(nal: bytes, size: int) -> list[bytes]:
    body, out = nal[1:], []
    for i in range(0, len(body), size):
        fu = (nal[0] & 0x1F) | (0x80 if i == 0 else 0) | (0x40 if i + size >= len(body) else 0)
        out.append(bytes([(nal[0] & 0xE0) | 28, fu]) + body[i:i + size])
    return out


def stap_a(*nals: bytes) -> bytes:
    return b"\x18" + b"".join(struct.pack(">H", len(n)) + n for n in nals)


def test_h264_stap_a_and_fu_a_make_one_keyframe_then_single_nal_frames() -> None:
    d = Depacketizer("h264")
    frags = fu_a(IDR, 60)
    assert len(frags) == 4
    assert d.push(stap_a(SPS, PPS), 1, 9000, False) is None
    outs = [d.push(f, 2 + i, 9000, i == len(frags) - 1) for i, f in enumerate(frags)]
    assert outs[:-1] == [None] * 3
    assert outs[-1] == (S + SPS + S + PPS + S + IDR, 9000, True)
    assert d.push(P, 6, 12600, True) == (S + P, 12600, False)


def test_a_lost_packet_drops_its_frame_and_a_missing_marker_ends_at_the_next_timestamp() -> None:
    d = Depacketizer("h264")
    frags = fu_a(IDR, 60)
    d.push(frags[0], 10, 0, False)
    assert d.push(frags[2], 12, 0, False) is None  # 11 lost
    assert d.push(frags[3], 13, 0, True) is None and d.lost == 1
    assert d.push(P, 14, 3600, False) is None  # no marker: complete only when the time moves on
    assert d.push(P, 15, 7200, True) == (S + P, 7200, False)  # the marker's own frame wins the return
    assert d.lost == 1


def test_h265_aggregation_and_fragmentation_units() -> None:
    vps, sps, pps = b"\x40\x01\x0c\x01", b"\x42\x01\x01\x01", b"\x44\x01\xc1\x72"
    idr = b"\x26\x01" + bytes(range(100))  # type 19 (IDR_W_RADL)
    ap = b"\x60\x01" + b"".join(struct.pack(">H", len(n)) + n for n in (vps, sps, pps))
    fu_hdr = bytes([49 << 1, 1])
    frags = [fu_hdr + bytes([0x80 | 19]) + idr[2:50], fu_hdr + bytes([0x40 | 19]) + idr[50:]]
    d = Depacketizer("hevc")
    assert d.push(ap, 1, 0, False) is None and d.push(frags[0], 2, 0, False) is None
    assert d.push(frags[1], 3, 0, True) == (S + vps + S + sps + S + pps + S + idr, 0, True)
    trail = b"\x02\x01" + bytes(20)  # type 1, not a keyframe
    assert d.push(trail, 4, 3000, True) == (S + trail, 3000, False)


def test_sdp_tracks_and_control_urls() -> None:
    sprop = f"{base64.b64encode(SPS).decode()},{base64.b64encode(PPS).decode()}"
    sdp = ("v=0\r\nm=audio 0 RTP/AVP 0\r\na=control:trackID=1\r\n"
           "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
           f"a=fmtp:96 packetization-mode=1;sprop-parameter-sets={sprop}\r\na=control:trackID=0\r\n")
    t = parse_sdp(sdp, "rtsp://cam/ch1/main/")
    assert (t.codec, t.payload_type, t.clock_rate) == ("h264", 96, 90000)
    assert t.control == "rtsp://cam/ch1/main/trackID=0" and t.extradata == S + SPS + S + PPS
    assert parse_sdp(sdp.replace("a=control:trackID=0", "a=control:rtsp://other/x"), "rtsp://cam/a").control \
        == "rtsp://other/x"
    hevc = "m=video 0 RTP/AVP 97\na=rtpmap:97 H265/90000\na=fmtp:97 sprop-vps=QAE=;sprop-sps=QgE=;sprop-pps=RAE=\n"
    h = parse_sdp(hevc, "rtsp://cam/s")
    assert h.codec == "hevc" and h.control == "rtsp://cam/s"
    assert h.extradata == S + b"@\x01" + S + b"B\x01" + S + b"D\x01"
    with pytest.raises(rtsp.RtspProtocolError):
        parse_sdp("m=video 0 RTP/AVP 26\na=rtpmap:26 JPEG/90000\n", "rtsp://cam/")


def test_digest_with_qop_matches_rfc2617(monkeypatch) -> None:
    auth = rtsp._Auth("Mufasa", "Circle Of Life")
    assert auth.challenge('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                          'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    monkeypatch.setattr(rtsp.os, "urandom", lambda n: bytes.fromhex("0a4f113b"))
    header = auth.header("GET", "/dir/index.html")
    assert 'response="6629fae49393a05397450978507c4ef1"' in header and "nc=00000001" in header
    basic = rtsp._Auth("u", "p:w", allow_basic=True)
    assert basic.challenge('Basic realm="cam"') and basic.header("DESCRIBE", "x") == "Basic dTpwOnc="
    assert not rtsp._Auth("u", "p:w").challenge('Basic realm="cam"')  # Basic only where allowed
    assert not rtsp._Auth(None, None).challenge('Basic realm="cam"')


def rtp(seq: int, ts: int, payload: bytes, marker: bool, channel: int = 0) -> bytes:
    pkt = struct.pack(">BBHII", 0x80, (0x80 if marker else 0) | 96, seq, ts, 1234) + payload
    return b"$" + bytes([channel]) + struct.pack(">H", len(pkt)) + pkt


class OneShotServer:
    """A real TCP server for one RTSP session: demands Basic auth (the client must allow it),
    answers DESCRIBE, SETUP and PLAY, then sends ``stream`` and closes. Records the requests it got."""

    def __init__(self, stream: bytes, *, status: int = 200, sdp_extra: str = "") -> None:
        self.stream, self.status, self.requests, self.sdp_extra = stream, status, [], sdp_extra
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                text = head.decode()
                self.requests.append(text)
                method, cseq = text.split()[0], re.search(r"CSeq: (\d+)", text)[1]
                if "Authorization: Basic dXNlcjpwYXNz" not in text:  # user:pass
                    conn.sendall(f'RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n'
                                 f'WWW-Authenticate: Basic realm="cam"\r\n\r\n'.encode())
                    continue
                if method == "DESCRIBE" and self.status != 200:
                    conn.sendall(f"RTSP/1.0 {self.status} Nope\r\nCSeq: {cseq}\r\n\r\n".encode())
                    continue
                if method == "DESCRIBE":
                    sdp = (f"v=0\r\n{self.sdp_extra}m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
                           "a=control:track1\r\n").encode()
                    conn.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: rtsp://127.0.0.1:{self.port}/s/\r\n"
                                 f"Content-Length: {len(sdp)}\r\n\r\n".encode() + sdp)
                elif method == "SETUP":
                    conn.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: abc;timeout=60\r\n"
                                 "Transport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n\r\n".encode())
                elif method == "PLAY":
                    conn.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n".encode() + self.stream)
                    return


def test_receiver_over_a_socket_skips_replies_and_garbage_and_reads_its_channel() -> None:
    frags = fu_a(IDR, 80)
    stream = (rtp(1, 1000, stap_a(SPS, PPS), False, 2) + rtp(2, 1000, frags[0], False, 2)
              + b"RTSP/1.0 200 OK\r\nCSeq: 9\r\nContent-Length: 4\r\n\r\nabcd"  # a keepalive's reply
              + rtp(7, 1000, b"\x00" * 8, False, 3)  # RTCP on the other channel
              + rtp(3, 1000, frags[1], False, 2) + rtp(4, 1000, frags[2], True, 2)
              + b"\x17garbage" + rtp(5, 4600, P, True, 2) + rtp(6, 8200, P, True, 2))
    server = OneShotServer(stream)
    rx = RtspReceiver(f"rtsp://user:pass@127.0.0.1:{server.port}/s", read_timeout_s=5, allow_basic_auth=True)
    info = rx.open()
    assert info.codec == "h264" and rx.channel == 2 and info.extradata is None
    got = []
    with pytest.raises(EOFError):
        for pkt in rx.packets():
            got.append((pkt.data, pkt.pts, pkt.is_keyframe))
    rx.close()
    assert got == [(S + SPS + S + PPS + S + IDR, 0, True), (S + P, 3600, False), (S + P, 7200, False)]
    assert rx.garbage_bytes == len(b"\x17garbage")
    setup = next(r for r in server.requests if r.startswith("SETUP"))
    assert setup.startswith(f"SETUP rtsp://127.0.0.1:{server.port}/s/track1 RTSP/1.0")
    assert all("pass" not in r.split("\r\n")[0] for r in server.requests)  # credentials only in headers


def test_play_asks_for_the_range_the_session_description_offers() -> None:
    """GStreamer's server answers 503 to ``Range: npt=0.000-`` when it cannot seek there: a
    stream another client already reads (its SDP says ``npt=now-``) or one whose first timestamp
    is past 0 (B-frames: ``npt=0.2-``). PLAY asks for what the SDP offers; ``npt=0.000-`` as before
    (FFmpeg's and live555's) when it offers 0 or nothing."""
    video = "m=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\n"
    for extra, media, want in [("", "", "npt=0.000-"), ("a=range:npt=0-\n", "", "npt=0.000-"),
                               ("a=range:npt=now-\n", "", "npt=now-"), ("a=range:npt=0.2-\n", "", "npt=0.2-"),
                               ("a=range:npt=0-\n", "a=range:npt=now-\n", "npt=now-"),
                               ("a=range:npt=00:00:00-\n", "", "npt=0.000-"), ("a=range:npt = now -\n", "", "npt=now-"),
                               ("a=range:clock=19961108T142300Z-\n", "", "npt=0.000-")]:
        assert parse_sdp(f"v=0\n{extra}{video}{media}", "rtsp://cam/").play_range == want, (extra, media)
    for hostile in ["npt=now-; X: y", "npt=0.2-\tX: y\r", "npt=1e9-", "npt=-1-", "npt=99999999999-", "npt="]:
        got = parse_sdp(f"v=0\na=range:{hostile}\n{video}", "rtsp://cam/").play_range
        assert re.fullmatch(r"npt=(now|[0-9]{1,9}(\.[0-9]{1,9})?)-", got), (hostile, got)  # no camera text in PLAY
    for extra, want in [("", "npt=0.000-"), ("a=range:npt=now-\r\n", "npt=now-")]:
        server = OneShotServer(rtp(1, 0, SPS, True, 2), sdp_extra=extra)
        rx = RtspReceiver(f"rtsp://user:pass@127.0.0.1:{server.port}/s", allow_basic_auth=True)
        try:
            rx.open()
        finally:
            rx.close()
        server.thread.join(5)
        play = next(r for r in server.requests if r.startswith("PLAY") and "Authorization" in r)
        assert f"\r\nRange: {want}" in play, play


def test_receiver_status_errors() -> None:
    server = OneShotServer(b"", status=404)
    rx = RtspReceiver(f"rtsp://user:pass@127.0.0.1:{server.port}/s", allow_basic_auth=True)
    with pytest.raises(RtspStatusError) as err:
        rx.open()
    rx.close()
    assert err.value.status == 404 and "pass" not in str(err.value)
    server = OneShotServer(b"")
    rx = RtspReceiver(f"rtsp://user:wrong@127.0.0.1:{server.port}/s", allow_basic_auth=True)
    with pytest.raises(RtspStatusError) as err:
        rx.open()
    rx.close()
    assert err.value.status == 401


async def test_one_reactor_thread_reads_many_sessions_and_ends_each_on_its_own(sim_server_factory) -> None:
    sim = await sim_server_factory([SimCameraSpec(f"c{i}", "smoke") for i in range(3)], width=320, height=180)
    reactor = Reactor(name="test-reactor")
    got: dict[int, list[EncodedPacket]] = {i: [] for i in range(3)}
    ended: dict[int, BaseException | None] = {}

    def on_packet(i: int):
        def take(pkt: EncodedPacket) -> None:
            got[i].append(pkt)
            if i == 0 and len(got[0]) == 5:
                raise ValueError("a broken consumer")
        return take

    sessions = []
    for i in range(3):
        rx = RtspReceiver(sim.url(f"c{i}"), read_timeout_s=1.5)
        await asyncio.to_thread(rx.open)
        sessions.append(reactor.add(rx, on_packet(i), lambda exc, i=i: ended.setdefault(i, exc), 1.5))
    await asyncio.sleep(3.0)
    assert isinstance(ended.get(0), ValueError) and len(got[0]) == 5  # only its own session ended
    assert 1 not in ended and 2 not in ended and len(reactor) == 2
    assert got[1][0].is_keyframe and len(got[1]) >= 20 and [p.pts for p in got[1]] == sorted({p.pts for p in got[1]})
    sim.fault("c1", "stall")  # connection open, nothing sent
    reactor.remove(sessions[2])
    reactor.remove(sessions[2])  # idempotent
    await wait_until(lambda: 1 in ended and 2 in ended, 5, "the stalled and the removed session to end")
    assert isinstance(ended[1], TimeoutError) and ended[2] is None and len(reactor) == 0

    # a session removed while its data waits in the next select batch behind the removal: A's
    # callback removes B and holds the reactor while B's next frames arrive
    for _ in range(4):  # the batch order is the kernel's: try a few times
        rx_a, rx_b = RtspReceiver(sim.url("c2")), RtspReceiver(sim.url("c0"))
        for rx in (rx_a, rx_b):
            await asyncio.to_thread(rx.open)
        b_end: list[BaseException | None] = []
        box: dict[str, object] = {}

        def a_packet(_pkt: EncodedPacket, box: dict[str, object] = box) -> None:
            if "b" in box and "done" not in box:
                box["done"] = True
                reactor.remove(box["b"])
                time.sleep(0.35)

        a = reactor.add(rx_a, a_packet, lambda exc: None, 5.0)
        box["b"] = reactor.add(rx_b, lambda _pkt: None, b_end.append, 5.0)
        await wait_until(lambda b_end=b_end: b_end == [None], 3, "B to end on request")
        reactor.remove(a)
    last: list[EncodedPacket] = []
    rx = RtspReceiver(sim.url("c2"))
    await asyncio.to_thread(rx.open)
    reactor.add(rx, last.append, lambda exc: None, 5.0)
    await wait_until(lambda: len(last) >= 5, 3, "a new session to be read")


def test_keyframes_decode_without_the_loop_filter_unless_told(tmp_path) -> None:
    frame = np.zeros((360, 640, 3), np.uint8)
    cv2.putText(frame, "Camera Hub 12:00", (20, 200), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (200, 220, 255), 5)
    frame = cv2.GaussianBlur(frame, (0, 0), 1.5) + np.random.default_rng(0).integers(0, 40, frame.shape, np.uint8)
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt, enc.time_base = 640, 360, "yuv420p", Fraction(1, 10)
    enc.options = {"crf": "35", "preset": "veryfast"}
    vf = av.VideoFrame.from_ndarray(frame, format="bgr24").reformat(format="yuv420p")
    data = b"".join(bytes(p) for p in [*enc.encode(vf), *enc.encode(None)])
    info = StreamInfo("h264", 640, 360, None, Fraction(1, 90000))
    pictures = []
    for skip in (False, True):
        sampler = Sampler("c", 2.0, skip_loop_filter=skip)
        sampler.open(info)
        pictures.append(sampler.decode(EncodedPacket(data, 0, 0, True, info.time_base, 0.0), 0.0).frame)
    assert 30 < cv2.PSNR(pictures[0], pictures[1]) < 99  # close, and not the same picture: filter skipped
    assert Sampler("c", 0.1, keyframes_only=False).skip_loop_filter is False  # never with every frame decoded


def test_open_gop_i_frames_marked_by_a_recovery_point_are_keyframes_and_decode_alone() -> None:
    """x264 with open GOPs (as many cameras send) makes its later I-frames non-IDR slices with a
    recovery point SEI: FFmpeg counts them as keyframes, and the native reader must too."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt, enc.time_base = 320, 180, "yuv420p", Fraction(1, 10)
    enc.options = {"preset": "veryfast", "x264-params": "open-gop=1:keyint=10:min-keyint=10:scenecut=0:bframes=2"}
    rng = np.random.default_rng(1)
    packets = []
    for i in range(31):
        img = np.full((180, 320, 3), (i * 7) % 255, np.uint8)
        img[40:100, 10 + 5 * i:60 + 5 * i] = rng.integers(0, 255, (60, 50, 3), np.uint8)
        vf = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        vf.pts = i
        packets += enc.encode(vf)
    packets += enc.encode(None)
    d, seq, units = Depacketizer("h264"), 0, []
    for p in packets:  # each NAL in its own RTP packet, the marker on the last
        nals = [n.rstrip(b"\x00") for n in bytes(p).split(b"\x00\x00\x01")[1:]]
        for k, nal in enumerate(nals):
            seq += 1
            if (au := d.push(nal, seq, p.pts * 9000, k == len(nals) - 1)) is not None:
                units.append((au, p.is_keyframe))
    ours = [au[2] for au, _ in units]
    assert ours == [ffmpeg for _, ffmpeg in units] and sum(ours) == 4  # the IDR and 3 open-GOP I-frames
    assert [bool(S + b"\x65" in au[0]) for au, _ in units if au[2]] == [True, False, False, False]
    info = StreamInfo("h264", 320, 180, None, Fraction(1, 90000))
    for au, _ in [u for u in units if u[0][2]][1:]:  # each non-IDR keyframe on a fresh decoder
        sampler = Sampler("c", 2.0)
        sampler.open(info)
        sample = sampler.decode(EncodedPacket(au[0], au[1], au[1], True, info.time_base, 0.0), 0.0)
        assert sample is not None and sample.frame.shape == (180, 320, 3)
    assert not rtsp.recovery_point(b"\x06\x05\x02ab\x80") and rtsp.recovery_point(b"\x06\x05\x01a\x06\x01\x84\x80")
