"""Seed corpus for benchmarks/fuzz_rtsp.py: real exchanges, captured off the wire.

    .venv/bin/python benchmarks/fuzz_capture.py        # rewrites benchmarks/fuzz_corpus/ (a few seconds)

- the simulator (``camera_hub.sim``, H.264, Digest auth, RTP over TCP): everything it sends to the
  native receiver from the 401 on, a keepalive's reply mid-stream included; its SDP; its RTP;
- a VLC-like camera (tests/ingest/rtp_helpers.UdpCamera: 461 for TCP, RTP and RTCP over UDP):
  its RTSP replies, RTP datagrams and RTCP (SR, SDES, BYE with SSRC 0);
- H.265 (the simulator has none): a few libx265 frames packetised per RFC 7798 (single NAL unit,
  AP with VPS/SPS/PPS, FU), as RTP and in a made-up session whose SDP carries sprop-vps/sps/pps;
- a receiver report of our own (RTCP).

The crash-* files beside them are reproducers of what fuzzing found (kept: this script leaves
them). Input formats per target: tests/ingest/fuzz_targets.py. Each file is kept small (the whole
corpus stays under 200 KB): the fuzzer needs shapes, not volume.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import struct
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "ingest"))

import av  # noqa: E402
import numpy as np  # noqa: E402
from fuzz_targets import SSRC, interleave, join_packets  # noqa: E402
from rtp_helpers import UdpCamera, UdpSession, h264_frames, packetize, rtcp_bye  # noqa: E402

from camera_hub.ingest import rtp as rtpmod  # noqa: E402
from camera_hub.ingest.rtsp import RtspReceiver  # noqa: E402
from camera_hub.sim.rtsp_server import SimCameraSpec, SimServer  # noqa: E402

OUT = REPO / "benchmarks" / "fuzz_corpus"
STREAM_BYTES = 12_000  # of interleaved data after PLAY, per rtsp/interleaved seed


class _Tap:
    """A socket that keeps a copy of everything received."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock, self.got = sock, bytearray()

    def recv(self, n: int) -> bytes:
        data = self._sock.recv(n)
        self.got += data
        return data

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


class TapReceiver(RtspReceiver):
    def _connect(self) -> None:
        super()._connect()
        self.tap = _Tap(self._sock)  # type: ignore[arg-type]
        self._sock = self.tap  # type: ignore[assignment]


def _read(rx: TapReceiver, nbytes: int, *, keepalive_at: int | None = None) -> bytes:
    """Stream bytes after PLAY (what the PLAY reply brought included), asking for an OPTIONS reply
    once ``keepalive_at`` bytes have come."""
    start = len(rx.tap.got) - len(rx._buf)
    rx.sock.settimeout(5.0)
    while len(rx.tap.got) - start < nbytes:
        if keepalive_at is not None and len(rx.tap.got) - start >= keepalive_at:
            rx._next_keepalive, keepalive_at = 0.0, None
            rx.keepalive(time.monotonic())
        rx.sock.recv(65536)
    return bytes(rx.tap.got[start:start + nbytes])


def _cut(stream: bytes, limit: int) -> bytes:
    """``stream`` up to the last whole interleaved frame (or RTSP message) within ``limit`` bytes."""
    pos = 0
    while pos + 4 <= len(stream):
        if stream[pos] != 0x24:
            nxt = stream.find(b"$", pos + 1)
            nxt = len(stream) if nxt < 0 else nxt
        else:
            nxt = pos + 4 + int.from_bytes(stream[pos + 2:pos + 4], "big")
        if nxt > limit:
            break
        pos = nxt
    return stream[:pos]


def _boundaries(stream: bytes) -> list[int]:
    """Where each interleaved frame or RTSP message of ``stream`` starts."""
    out, pos = [], 0
    while pos + 4 <= len(stream):
        out.append(pos)
        if stream[pos] != 0x24:
            nxt = stream.find(b"$", pos + 1)
            pos = len(stream) if nxt < 0 else nxt
        else:
            pos += 4 + int.from_bytes(stream[pos + 2:pos + 4], "big")
    return out


def _packets(stream: bytes, channel: int) -> list[bytes]:
    """The RTP packets of one interleaved channel."""
    out, pos = [], 0
    while pos + 4 <= len(stream):
        if stream[pos] != 0x24:
            pos = stream.find(b"$", pos + 1)
            if pos < 0:
                break
            continue
        end = pos + 4 + int.from_bytes(stream[pos + 2:pos + 4], "big")
        if stream[pos + 1] == channel and end <= len(stream):
            out.append(stream[pos + 4:end])
        pos = end
    return out


def capture_sim() -> dict[str, bytes]:
    loop = asyncio.new_event_loop()
    server = SimServer([SimCameraSpec("cam-1", "smoke")], control_port=None, credentials=("user", "pa@ss"),
                       width=320, height=180, fps=10, gop=10)
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(120)
    try:
        rx = TapReceiver(server.url("cam-1"), transport="tcp")
        rx.open()
        handshake = bytes(rx.tap.got[:len(rx.tap.got) - len(rx._buf)])
        stream = _read(rx, 40_000, keepalive_at=20_000)
        rx.close()
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
    sdp = handshake[handshake.rindex(b"v=0"):]
    sdp = sdp[:sdp.index(b"RTSP/1.0")]
    at = stream.find(b"RTSP/1.0 200")  # the keepalive's reply, between frames
    assert at > 0, "no reply to the keepalive"
    at = max(b for b in _boundaries(stream) if b <= max(0, at - 3000))
    packets = _packets(stream, 0)
    key = next(i for i, p in enumerate(packets) if p[12] & 0x1F == 7)  # SPS: a keyframe begins
    return {
        "rtsp/sim-h264-digest-tcp.bin": handshake + _cut(stream, STREAM_BYTES),
        "sdp/sim-h264.sdp": sdp,
        "interleaved/sim-h264.bin": _cut(stream, STREAM_BYTES),
        "interleaved/sim-h264-keepalive-reply.bin": _cut(stream[at:], 6000),
        "rtp_h264/sim-idr-fu-a.bin": join_packets(_limit(packets[key:], 16_000)),
        "rtp_h264/sim-p-frames.bin": join_packets(_limit([p for p in packets[key:] if p[12] & 0x1F == 1], 4_000)),
    }


def _limit(packets: list[bytes], nbytes: int) -> list[bytes]:
    out, total = [], 0
    for p in packets:
        if total + len(p) > nbytes:
            break
        out.append(p)
        total += len(p)
    return out


def capture_vlc_like() -> dict[str, bytes]:
    frames = h264_frames(12, keyint=6, width=96, height=64)
    datagrams: list[bytes] = []

    def play(session: UdpSession) -> None:
        for _, d in packetize(frames, ssrc=0xE96059F1, mtu=300):
            session.send(d)
            time.sleep(0.002)
        session.send(rtcp_bye(0), rtcp=True)

    camera = UdpCamera(frames, play)
    try:
        rx = TapReceiver(camera.url, transport="auto")
        rx.open()
        assert rx.udp is not None
        rtp_sock, rtcp_sock = rx.udp
        rtcp: list[bytes] = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not rtcp:
            for sock, into in ((rtp_sock, datagrams), (rtcp_sock, rtcp)):
                try:
                    into.append(sock.recv(65536))
                except BlockingIOError:
                    pass
            time.sleep(0.001)
        handshake = bytes(rx.tap.got)
        rx.close()
    finally:
        camera.close()
    return {
        "rtsp/vlc-like-461-then-udp.bin": handshake,
        "sdp/vlc-like.sdp": camera.sdp(),
        "rtp_h264/vlc-like-udp.bin": join_packets(_limit(datagrams, 12_000)),
        "rtcp/vlc-sr-sdes-bye.bin": join_packets(rtcp or [rtcp_bye(0)]),
    }


def hevc_nals(n: int = 6) -> list[list[bytes]]:
    enc = av.CodecContext.create("libx265", "w")
    enc.width, enc.height, enc.pix_fmt, enc.time_base = 128, 64, "yuv420p", Fraction(1, 10)
    enc.options = {"x265-params": "keyint=4:min-keyint=4:bframes=0:repeat-headers=1:log-level=error"}
    rng = np.random.default_rng(7)
    packets = []
    for i in range(n):
        img = rng.integers(0, 255, (64, 128, 3), np.uint8)
        vf = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        vf.pts = i
        packets += enc.encode(vf)
    packets += enc.encode(None)
    return [[nal.rstrip(b"\x00") for nal in bytes(p).split(b"\x00\x00\x01")[1:] if nal] for p in packets]


def hevc_packets(frames: list[list[bytes]], mtu: int = 400) -> list[bytes]:
    """RFC 7798: parameter sets in one AP, big slices in FUs, the rest as single NAL units."""
    out, seq = [], 0
    for f, nals in enumerate(frames):
        pieces: list[bytes] = []
        params = [n for n in nals if (n[0] >> 1) & 0x3F in (32, 33, 34)]
        if params:
            pieces.append(bytes(((48 << 1), 1)) + b"".join(struct.pack(">H", len(n)) + n for n in params))
        for nal in (n for n in nals if n not in params):
            if len(nal) <= mtu:
                pieces.append(nal)
                continue
            kind, body = (nal[0] >> 1) & 0x3F, nal[2:]
            for j in range(0, len(body), mtu):
                fu = kind | (0x80 if j == 0 else 0) | (0x40 if j + mtu >= len(body) else 0)
                pieces.append(bytes(((nal[0] & 0x81) | (49 << 1), nal[1], fu)) + body[j:j + mtu])
        for k, piece in enumerate(pieces):
            marker = 0x80 if k == len(pieces) - 1 else 0
            out.append(struct.pack(">BBHI", 0x80, marker | 96, seq, f * 9000) + SSRC + piece)
            seq += 1
    return out


def capture_hevc() -> dict[str, bytes]:
    frames = hevc_nals()
    packets = hevc_packets(frames)
    first = frames[0]
    vps, sps, pps = (next(n for n in first if (n[0] >> 1) & 0x3F == t) for t in (32, 33, 34))
    b64 = (base64.b64encode(n).decode() for n in (vps, sps, pps))
    sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=hevc\r\nt=0 0\r\na=control:*\r\nm=video 0 RTP/AVP 96\r\n"
           "a=rtpmap:96 H265/90000\r\na=fmtp:96 sprop-vps={};sprop-sps={};sprop-pps={}\r\n"
           "a=control:trackID=0\r\n").format(*b64).encode()
    replies = (b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Base: rtsp://127.0.0.1:554/cam/\r\n"
               b"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n" % len(sdp) + sdp
               + b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nSession: 1F2E3D;timeout=60\r\n"
                 b"Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
               + b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 1F2E3D\r\nRange: npt=0.000-\r\n\r\n")
    return {
        "rtp_h265/x265-ap-fu-single.bin": join_packets(_limit(packets, 16_000)),
        "sdp/h265-sprop.sdp": sdp,
        "rtsp/h265-tcp.bin": replies + _cut(interleave(packets), STREAM_BYTES),
    }


def own_report() -> dict[str, bytes]:
    rec = rtpmod.Reception(90000)
    for seq in range(10):
        rec.update(seq, seq * 3600, 1.0 + seq * 0.04)
    return {"rtcp/receiver-report.bin": join_packets([rtpmod.receiver_report(b"\x01\x02\x03\x04",
                                                                               rec.block(SSRC, b"\0" * 4, 0.5))])}


def main() -> None:
    files = {**capture_sim(), **capture_vlc_like(), **capture_hevc(), **own_report()}
    for old in OUT.glob("*/*"):  # what an earlier capture wrote; the crash-* reproducers stay
        if not old.name.startswith("crash-"):
            old.unlink()
    for name, data in sorted(files.items()):
        path = OUT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"{len(data):>7,} B  {path.relative_to(REPO)}")
    print(f"{sum(map(len, files.values())):>7,} B  in all")


if __name__ == "__main__":
    main()
