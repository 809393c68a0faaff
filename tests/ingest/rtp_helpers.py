"""H.264 media and a real RTSP server that sends RTP over UDP, for the UDP transport tests.

:class:`UdpCamera` behaves as VLC's RTSP output does (tests/interop/test_vlc_interop.py checks
the real one): it answers a SETUP for RTP over TCP with ``461 Unsupported transport``, describes
the stream with absolute control URLs, a ``Content-Base`` without a trailing slash and an fmtp
line that ends in ``;``, and sends RTCP with SSRC 0. What it streams is up to the test: each
session's ``play`` callback gets a :class:`UdpSession` with real UDP sockets.
"""

from __future__ import annotations

import base64
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np


@dataclass
class Frame:
    nals: list[bytes]  # without start codes
    pts: int  # in frames
    key: bool


def h264_frames(n: int = 30, *, bframes: int = 2, keyint: int = 10, width: int = 160, height: int = 96) -> list[Frame]:
    """``n`` libx264 frames in decode (send) order, a box moving 4 px a frame, SPS and PPS before
    every IDR (as VLC sends them)."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt, enc.time_base = width, height, "yuv420p", Fraction(1, 10)
    enc.options = {"preset": "veryfast", "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:"
                                                       f"bframes={bframes}:repeat-headers=1"}
    packets, rng = [], np.random.default_rng(13)
    for i in range(n):
        img = np.full((height, width, 3), 60, np.uint8) + rng.integers(0, 30, (height, width, 3), np.uint8)
        img[20:60, 4 * i % (width - 30):4 * i % (width - 30) + 30] = 230  # noise: frames of a few hundred bytes
        vf = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        vf.pts = i
        packets += enc.encode(vf)
    packets += enc.encode(None)
    return [Frame([nal.rstrip(b"\x00") for nal in bytes(p).split(b"\x00\x00\x01")[1:]], int(p.pts), p.is_keyframe)
            for p in packets]


def sprop(frames: list[Frame]) -> str:
    sps = next(n for f in frames for n in f.nals if n[0] & 0x1F == 7)
    pps = next(n for f in frames for n in f.nals if n[0] & 0x1F == 8)
    return f"{base64.b64encode(sps).decode()},{base64.b64encode(pps).decode()}"


def rtp_packet(seq: int, ts: int, payload: bytes, marker: bool, ssrc: int, pt: int = 96) -> bytes:
    return struct.pack(">BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def packetize(frames: list[Frame], *, ssrc: int, seq: int = 0, ts0: int = 0, mtu: int = 600,
              ticks: int = 9000) -> list[tuple[int, bytes]]:
    """RTP packets of ``frames`` (single NAL units, FU-A past ``mtu``): (frame index, datagram)."""
    out: list[tuple[int, bytes]] = []
    for i, f in enumerate(frames):
        ts = ts0 + f.pts * ticks
        pieces: list[bytes] = []
        for nal in f.nals:
            if len(nal) <= mtu:
                pieces.append(nal)
                continue
            body = nal[1:]
            for j in range(0, len(body), mtu):
                fu = (nal[0] & 0x1F) | (0x80 if j == 0 else 0) | (0x40 if j + mtu >= len(body) else 0)
                pieces.append(bytes([(nal[0] & 0xE0) | 28, fu]) + body[j:j + mtu])
        for k, piece in enumerate(pieces):
            out.append((i, rtp_packet(seq, ts, piece, k == len(pieces) - 1, ssrc)))
            seq += 1
    return out


def rtcp_bye(ssrc: int = 0) -> bytes:
    """A compound packet as VLC sends at the end of its track: SR, SDES, BYE, all with SSRC 0."""
    sr = struct.pack(">BBHIIIIII", 0x80, 200, 6, ssrc, 0xE0000000, 0x12345678, 0, 0, 0)
    sdes = struct.pack(">BBHI", 0x81, 202, 2, ssrc) + b"\x01\x02vl"  # CNAME "vl", no padding needed
    return sr + sdes + struct.pack(">BBHI", 0x81, 203, 1, ssrc)


@dataclass
class UdpSession:
    client: tuple[str, int, int]  # host, RTP port, RTCP port
    rtp: socket.socket
    rtcp: socket.socket
    conn: socket.socket
    reports: list[bytes] = field(default_factory=list)  # RTCP from the client
    closed: threading.Event = field(default_factory=threading.Event)

    def send(self, datagram: bytes, rtcp: bool = False) -> None:
        host, rtp_port, rtcp_port = self.client
        try:
            (self.rtcp if rtcp else self.rtp).sendto(datagram, (host, rtcp_port if rtcp else rtp_port))
        except OSError:  # the test is over and closed the camera
            pass

    def hangup(self) -> None:
        """Close the RTSP connection (VLC does, right after its BYE)."""
        try:
            self.conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class UdpCamera:
    """A real RTSP server on 127.0.0.1 for any number of sessions, RTP over UDP only (``tcp``:
    RTP over TCP refused with ``tcp_status``, 461). After each PLAY, ``play(session)`` runs in a
    thread of its own. Records every request line and the transport it set up."""

    def __init__(self, frames: list[Frame], play: Callable[[UdpSession], None], *, tcp_status: int = 461) -> None:
        self.frames, self.play, self.tcp_status = frames, play, tcp_status
        self.requests: list[str] = []
        self.sessions: list[UdpSession] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"rtsp://127.0.0.1:{self.port}/x"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for s in self.sessions:
            s.hangup()
            s.rtp.close()
            s.rtcp.close()

    def sdp(self) -> bytes:
        return (f"v=0\r\no=- 1 1 IN IP4 vm\r\ns=Unnamed\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=tool:vlc 3.0.24\r\n"
                f"a=recvonly\r\na=control:{self.url}\r\nm=video 0 RTP/AVP 96\r\nb=RR:0\r\n"
                f"a=rtpmap:96 H264/90000\r\n"
                f"a=fmtp:96 packetization-mode=1;profile-level-id=64000c;sprop-parameter-sets={sprop(self.frames)};\r\n"
                f"a=control:{self.url}/trackID=0\r\n").encode()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._requests(conn)
        except OSError:  # the client hung up, or the test closed the camera
            pass

    def _requests(self, conn: socket.socket) -> None:
        buf, session = b"", None
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        data = conn.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        if session is not None:
                            session.closed.set()
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                text = head.decode()
                self.requests.append(text.split("\r\n")[0])
                method, cseq = text.split()[0], re.search(r"CSeq: (\d+)", text)[1]
                ok = f"RTSP/1.0 200 OK\r\nServer: test\r\nCSeq: {cseq}\r\n"
                if method == "DESCRIBE":
                    sdp = self.sdp()
                    conn.sendall(f"{ok}Content-Base: {self.url}\r\nContent-Type: application/sdp\r\n"
                                 f"Content-Length: {len(sdp)}\r\n\r\n".encode() + sdp)
                elif method == "SETUP" and "RTP/AVP/TCP" in text:
                    conn.sendall(f"RTSP/1.0 {self.tcp_status} Unsupported transport\r\nCSeq: {cseq}\r\n\r\n".encode())
                elif method == "SETUP":
                    m = re.search(r"client_port=(\d+)-(\d+)", text)
                    rtp, rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET,
                                                                                             socket.SOCK_DGRAM)
                    rtp.bind(("127.0.0.1", 0))
                    rtcp.bind(("127.0.0.1", rtp.getsockname()[1] + 1))  # the next port: free in practice
                    session = UdpSession(("127.0.0.1", int(m[1]), int(m[2])), rtp, rtcp, conn)
                    self.sessions.append(session)
                    threading.Thread(target=self._reports, args=(session,), daemon=True).start()
                    conn.sendall(f"{ok}Transport: RTP/AVP/UDP;unicast;client_port={m[1]}-{m[2]};"
                                 f"server_port={rtp.getsockname()[1]}-{rtcp.getsockname()[1]};ssrc=E96059F1;mode=play\r\n"
                                 f"Session: 7c839074ea990200;timeout=60\r\n\r\n".encode())
                elif method == "PLAY":
                    conn.sendall(f"{ok}Session: 7c839074ea990200;timeout=60\r\n\r\n".encode())
                    assert session is not None
                    threading.Thread(target=self.play, args=(session,), daemon=True).start()
                else:  # OPTIONS (keepalive), TEARDOWN
                    conn.sendall(f"{ok}\r\n".encode())

    def _reports(self, session: UdpSession) -> None:
        session.rtcp.settimeout(0.2)
        while not self._stop:
            try:
                data, _ = session.rtcp.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            session.reports.append(data)


def stream(session: UdpSession, packets: list[tuple[int, bytes]], *, fps: float = 50.0,
           order: Callable[[int, list[bytes]], list[bytes]] | None = None) -> None:
    """Send ``packets`` frame by frame, ``1/fps`` apart; ``order(frame index, datagrams)`` may
    reorder or drop a frame's datagrams."""
    frames: dict[int, list[bytes]] = {}
    for i, d in packets:
        frames.setdefault(i, []).append(d)
    for i in sorted(frames):
        for d in (order(i, frames[i]) if order else frames[i]):
            session.send(d)
        time.sleep(1 / fps)
