"""Camera credentials on the wire (issue #12 item 8 and the low items): a password with reserved
characters reaches a Digest camera through both readers; the native reader refuses Basic unless
the camera allows it and prefers Digest when both are offered; no FFmpeg error carries the URL.
Real servers on 127.0.0.1: the simulator (Digest) and small hostile ones."""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import threading
import time
import traceback
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from urllib.parse import quote

import av
import av.error
import numpy as np
import pytest
import yaml
from ingest_helpers import city_doc
from test_rtsp_receiver import IDR, PPS, SPS, OneShotServer, rtp, stap_a

from camera_hub.config import RtspUrl, load_config
from camera_hub.ingest.backoff import Backoff, OpenGate
from camera_hub.ingest.reactor import Reactor
from camera_hub.ingest.ring import PacketRing
from camera_hub.ingest.rtsp import RtspReceiver, RtspStatusError
from camera_hub.ingest.sampler import Sampler
from camera_hub.ingest.source import PyAvReader, Source, SourceOptions, classify
from camera_hub.sim.rtsp_server import SimCameraSpec

PASSWORD = "x/y@z#w?v%u :t"  # every character that breaks a URL when written raw
SDP = b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:track1\r\n"


# ---------------------------------------------------------------------------- a password with / @ # ? % :
async def test_a_password_with_reserved_characters_reaches_a_digest_camera_through_both_readers(
        sim_server_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From the environment through the config to the simulator, which demands Digest. Before,
    the raw password split the URL (``x/y@z…``: the port became ``x``, or the host ``z``)."""
    server = await sim_server_factory([SimCameraSpec("cam-1", "smoke")], credentials=("admin", PASSWORD),
                                      width=160, height=96)
    monkeypatch.setenv("CAMERA_HUB_SECRET_CAM_PW", PASSWORD)
    doc = city_doc([{"id": "cam-1",
                     "main_url": f"rtsp://admin:${{CAMERA_HUB_SECRET_CAM_PW}}@127.0.0.1:{server.port}/cam-1/sub"}])
    (tmp_path / "city.yaml").write_text(yaml.safe_dump(doc))
    url = load_config(tmp_path / "city.yaml").cameras[0].ingest_url

    rx = RtspReceiver(url.reveal(), connect_timeout_s=3.0)
    try:
        info = await asyncio.to_thread(rx.open)
    finally:
        rx.close()
    assert info.codec == "h264"

    reader = await asyncio.to_thread(PyAvReader, url, SourceOptions(receiver="pyav", connect_timeout_s=3.0))
    try:
        assert (reader.info.codec, reader.info.width, reader.info.height) == ("h264", 160, 96)
    finally:
        reader.close()


# ---------------------------------------------------------------------------- Basic vs Digest
class ChallengeServer:
    """One RTSP connection: every request without an Authorization header gets 401 with
    ``challenges`` (one WWW-Authenticate header each), any other ``then``. Records the requests."""

    def __init__(self, challenges: list[str], *, then: int = 404) -> None:
        self.challenges, self.then, self.requests = challenges, then, []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"rtsp://user:pass@127.0.0.1:{self.port}/s"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        buf = b""
        with conn, self.sock:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        data = conn.recv(4096)
                    except OSError:  # the client reset the connection: it is done
                        return
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                text = head.decode()
                self.requests.append(text)
                cseq = re.search(r"CSeq: (\d+)", text)[1]
                if "Authorization:" in text and self.then != 401:
                    conn.sendall(f"RTSP/1.0 {self.then} Nope\r\nCSeq: {cseq}\r\n\r\n".encode())
                    continue
                offers = "".join(f"WWW-Authenticate: {c}\r\n" for c in self.challenges)
                conn.sendall(f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n{offers}\r\n".encode())


def test_a_camera_that_offers_only_basic_is_not_given_the_password() -> None:
    # a spoofed camera asking for Basic would read user:pass in clear text (base64)
    server = ChallengeServer(['Basic realm="cam"'])
    rx = RtspReceiver(server.url, connect_timeout_s=2.0)
    with pytest.raises(RtspStatusError) as err:
        rx.open()
    rx.close()
    server.thread.join(2.0)
    assert err.value.status == 401 and classify(err.value, reading=False) == "auth"
    assert "Basic" in str(err.value) and "allow_basic_auth" in str(err.value)
    assert server.requests and not any("Authorization" in r for r in server.requests)


def test_digest_is_chosen_when_the_camera_offers_basic_after_it() -> None:
    # cameras send both challenges as two headers; before, the last one (Basic) won
    server = ChallengeServer(['Digest realm="cam", nonce="abc123"', 'Basic realm="cam"'])
    rx = RtspReceiver(server.url, connect_timeout_s=2.0, allow_basic_auth=True)
    with pytest.raises(RtspStatusError) as err:
        rx.open()
    rx.close()
    server.thread.join(2.0)
    assert err.value.status == 404  # the server's answer to the authorised request
    auth = [r for r in server.requests if "Authorization" in r]
    assert len(auth) == 1 and 'Authorization: Digest username="user", realm="cam", nonce="abc123"' in auth[0]
    assert not any("Authorization: Basic" in r for r in server.requests)


@pytest.fixture(scope="module")
def reactor() -> Reactor:
    return Reactor(name="auth-reactor")


@pytest.mark.parametrize("allow", [False, True], ids=["default", "allowed"])
def test_a_sources_camera_config_decides_whether_basic_is_answered(reactor: Reactor, allow: bool) -> None:
    """Through a real Source: Basic only with ``allow_basic_auth`` (Camera → SourceOptions → the
    native reader). OneShotServer demands Basic, then plays one keyframe and closes."""
    stream = rtp(1, 1000, stap_a(SPS, PPS), False, 2) + rtp(2, 1000, IDR, True, 2)
    server = OneShotServer(stream)
    url = RtspUrl(f"rtsp://user:pass@127.0.0.1:{server.port}/s")
    src = Source("cam-basic", url, sampler=Sampler("cam-basic", 2.0), ring=PacketRing(1, 1 << 20), gate=OpenGate(1),
                 backoff=Backoff(30.0, 60.0), reactor=reactor,
                 options=SourceOptions(allow_basic_auth=allow, connect_timeout_s=2.0, read_timeout_s=2.0))
    src.start()
    try:
        deadline = time.monotonic() + 8.0
        while not any(state == "down" for _, state, _ in src.history) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        src.stop()
        assert src.done.wait(5.0)
    states = [(state, reason) for _, state, reason in src.history]
    if allow:
        assert states[:2] == [("up", ""), ("down", "eof")], states
    else:
        assert states[:1] == [("down", "auth")], states
        assert not any("Authorization" in r for r in server.requests)


# ---------------------------------------------------------------------------- FFmpeg errors
def keyframe_stream() -> bytes:
    """One real 64x64 H.264 keyframe as interleaved RTP (channel 0), so that FFmpeg opens."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt, enc.time_base = 64, 64, "yuv420p", Fraction(1, 10)
    frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
    frame.pts = 0
    data = b"".join(bytes(p) for p in [*enc.encode(frame), *enc.encode(None)])
    nals = [n for n in re.split(b"\x00\x00\x00\x01|\x00\x00\x01", data) if n]
    out = b""
    for i, nal in enumerate(nals):
        pkt = struct.pack(">BBHII", 0x80, (0x80 if i == len(nals) - 1 else 0) | 96, i, 0, 1234) + nal
        out += b"$\x00" + struct.pack(">H", len(pkt)) + pkt
    return out


class SilentServer:
    """One RTSP connection: DESCRIBE, SETUP, PLAY answered, one keyframe sent, then silence until
    the client leaves (FFmpeg's read times out)."""

    def __init__(self) -> None:
        self.stream = keyframe_stream()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        buf = b""
        with conn, self.sock:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        data = conn.recv(4096)
                    except OSError:  # the client reset the connection: it is done
                        return
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                method, cseq = head.split(b" ", 1)[0], re.search(rb"CSeq: (\d+)", head)[1].decode()
                ok = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n"
                if method == b"DESCRIBE":
                    conn.sendall(f"{ok}Content-Length: {len(SDP)}\r\n\r\n".encode() + SDP)
                elif method == b"SETUP":
                    conn.sendall(f"{ok}Session: s1;timeout=60\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1"
                                 "\r\n\r\n".encode())
                elif method == b"PLAY":
                    conn.sendall(f"{ok}\r\n".encode() + self.stream)
                else:
                    conn.sendall(f"{ok}\r\n".encode())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _auth_fails() -> tuple[int, Callable[[], object]]:
    server = ChallengeServer(['Digest realm="cam", nonce="abc123"'], then=401)  # a wrong password
    return server.port, lambda: server.thread.join(2.0)


def _silent() -> tuple[int, Callable[[], object]]:
    server = SilentServer()
    return server.port, lambda: server.thread.join(2.0)


@pytest.mark.parametrize(("make", "reading", "reason"), [
    (_auth_fails, False, "auth"),
    (lambda: (_free_port(), lambda: None), False, "refused"),
    (_silent, True, "stalled"),
], ids=["401-on-open", "refused-on-open", "timeout-while-reading"])
def test_no_ffmpeg_error_carries_the_url(make, reading: bool, reason: str) -> None:
    """FFmpeg puts the URL it was given in every error (``filename``, and so str and repr):
    whatever the pyav reader raises, on open or while reading, shows it masked."""
    port, done = make()
    url = RtspUrl(f"rtsp://admin:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/s")
    opts = SourceOptions(receiver="pyav", connect_timeout_s=0.5, read_timeout_s=0.5, analyzeduration_s=0.1)
    reader = None
    with pytest.raises(av.error.FFmpegError) as info:
        reader = PyAvReader(url, opts)
        for _ in reader.packets():
            pass
    if reader is not None:
        reader.close()
    done()
    err = info.value
    assert classify(err, reading=reading) == reason
    shown = [str(err), repr(err), str(err.args), str(err.filename), "".join(traceback.format_exception(err))]
    for text in shown:
        assert PASSWORD not in text and quote(PASSWORD, safe="") not in text and "x%2Fy" not in text, text
    assert f"rtsp://admin:***@127.0.0.1:{port}/s" in str(err)
