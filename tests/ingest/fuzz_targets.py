"""Everything a camera sends, driven into the native reader the way production feeds it, with the
invariants of docs/security.md ("Fuzzing") checked after every step. Shared by the property
tests (tests/ingest/test_fuzz_camera_input.py, Hypothesis, in CI) and the coverage-guided
harness (benchmarks/fuzz_rtsp.py, Atheris, long runs).

A target takes the bytes a camera sends and returns what came of them (:class:`Outcome`). It
raises ``AssertionError`` when an invariant breaks and lets every exception but the documented
ones (:data:`CAMERA_ERRORS`) through: to a fuzzer both are crashes. Targets:

- ``rtsp``: the whole TCP byte stream of a camera, from the first reply on (401, DESCRIBE, SETUP,
  PLAY, then interleaved data), through a real TCP connection on 127.0.0.1 into
  :meth:`RtspReceiver.open` and then :meth:`RtspReceiver.feed`, the reactor's call. Twice:
  ``transport="auto"`` (TCP, or UDP after a refusal) and ``"udp"`` (with a receiver report sent).
- ``sdp``: a DESCRIBE reply's body into :func:`parse_sdp`, as ``open`` calls it.
- ``interleaved``: the bytes after PLAY into :meth:`RtspReceiver.feed`, whole and cut into
  reads of other sizes; both must give the same access units unless the stream holds garbage.
- ``rtp_h264`` / ``rtp_h265``: RTP packets (see :func:`split_packets`) into
  :meth:`RtspReceiver.feed_rtp` (RTP over UDP: jitter buffer, reception statistics, timers) and,
  framed, into :meth:`RtspReceiver.feed` (RTP over TCP).
- ``rtcp``: RTCP datagrams (same framing) after a little RTP from two senders, into the
  receiver as :meth:`RtspReceiver.read_udp` hands them on, and over TCP on the RTCP channel.

Invariants, after every call into the receiver:

- only :data:`CAMERA_ERRORS` escape (the Source reports them as a reason; anything else is a bug);
- what a session holds stays within its bounds: the handshake buffer before each read
  (:data:`HANDSHAKE_HELD`), the stream buffer between reads (:data:`STREAM_HELD`), the body still
  to skip (``MAX_BODY_BYTES``), the unfinished access unit (``MAX_AU_*``), the jitter buffer
  (``JITTER_PACKETS``), the retired senders;
- every access unit handed on is Annex B within the access-unit bounds;
- receiver reports go to a numeric address and a real port (a name would be looked up in the
  reactor thread, blocking every camera);
- every call returns (the callers' timeouts: pytest-timeout, libFuzzer's ``-timeout``).
"""

from __future__ import annotations

import ipaddress
import math
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction

from camera_hub.annexb import START
from camera_hub.events import EncodedPacket, StreamInfo
from camera_hub.ingest import rtp as rtpmod
from camera_hub.ingest import rtsp
from camera_hub.ingest.rtsp import Depacketizer, RtspProtocolError, RtspReceiver, RtspStatusError, parse_sdp

# What parsing a camera's bytes may raise (docs/security.md, "Camera input"): RtspProtocolError for
# anything malformed or past a bound, RtspStatusError for a refusal, EOFError (RtpByeError among
# them) when the camera hangs up or leaves. The fourth documented one, TimeoutError, is left out:
# here every camera's bytes end in EOF, so a timeout would mean a read that waits for nothing.
CAMERA_ERRORS: tuple[type[BaseException], ...] = (RtspProtocolError, RtspStatusError, EOFError)
# The handshake buffer before each read: a head, a body, and nothing else (RtspReceiver._response).
HANDSHAKE_HELD = rtsp.MAX_HEADER_BYTES + 4 + rtsp.MAX_BODY_BYTES
# The stream buffer between reads: one unfinished interleaved frame (16-bit length) or message
# head (under MAX_HEADER_BYTES), never more.
STREAM_HELD = max(4 + 0xFFFF, rtsp.MAX_HEADER_BYTES)
# An access unit handed on: its payload bytes, plus a start code per NAL unit.
AU_HELD = rtsp.MAX_AU_BYTES + len(START) * rtsp.MAX_AU_NALS
URL = "rtsp://user:pa%40ss@127.0.0.1:554/cam"
SSRC = b"\x0b\xad\xca\xfe"
SDP = {
    "h264": "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:track1\r\n",
    "hevc": "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\na=control:track1\r\n",
}
SDP_BASES = ("rtsp://127.0.0.1:554/cam", "rtsp://127.0.0.1:554/cam/", "")


@dataclass
class Outcome:
    units: list[EncodedPacket] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the documented errors that ended a session
    tracks: list[rtsp.Track] = field(default_factory=list)


# ---------------------------------------------------------------------------- invariants
def check_receiver(rx: RtspReceiver) -> None:
    """What one session holds between two calls is within the stated bounds."""
    assert len(rx._buf) <= STREAM_HELD, f"{len(rx._buf)} bytes held between reads"
    assert 0 <= rx._discard <= rtsp.MAX_BODY_BYTES, f"{rx._discard} bytes of body still to skip"
    if rx.depacketizer is not None:
        check_depacketizer(rx.depacketizer)
    if rx.jitter is not None:
        assert len(rx.jitter) <= rx.jitter.max_packets, f"{len(rx.jitter)} packets in the jitter buffer"
    assert len(rx._retired) <= rtsp.RETIRED_SSRCS


def check_depacketizer(d: Depacketizer) -> None:
    assert d._size <= rtsp.MAX_AU_BYTES and d._nals <= rtsp.MAX_AU_NALS and d._packets <= rtsp.MAX_AU_PACKETS, \
        (d._size, d._nals, d._packets)
    held = sum(map(len, d._parts))
    assert held <= d._size + len(START) * d._nals, f"{held} bytes held for {d._size} payload bytes"


def check_units(units: list[EncodedPacket], rx: RtspReceiver) -> None:
    assert rx.info is not None
    for u in units:
        assert u.data.startswith(START) and len(u.data) <= AU_HELD, len(u.data)
        assert isinstance(u.pts, int) and u.pts == u.dts and u.time_base == rx.info.time_base


def _numeric(host: str, family: int) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.version == (4 if family == socket.AF_INET else 6)


class _ReportSocket:
    """The RTCP socket of a UDP session: receiver reports must go to a numeric address of the
    socket's family and a real port; they are sent for real, to the same port on loopback."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        host, port = addr
        assert _numeric(host, self._sock.family), f"a receiver report to {host!r}: a name lookup in the reactor"
        assert isinstance(port, int) and 0 < port <= 0xFFFF, f"a receiver report to port {port!r}"
        return self._sock.sendto(data, ("127.0.0.1" if self._sock.family == socket.AF_INET else "::1", port))

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


# ---------------------------------------------------------------------------- receivers
_lock = threading.Lock()
_shared: dict[str, object] = {}


def _listener() -> socket.socket:
    with _lock:
        if "listener" not in _shared:
            _shared["listener"] = socket.create_server(("127.0.0.1", 0), backlog=64)
        return _shared["listener"]  # type: ignore[return-value]


def _udp_pair() -> tuple[socket.socket, socket.socket]:
    """One RTP/RTCP pair for every receiver built by :func:`playing` (RTCP into a sink nobody reads)."""
    with _lock:
        if "udp" not in _shared:
            rtp_sock, rtcp_sock = rtpmod.bind_pair(socket.AF_INET, "127.0.0.1", 40000, 49999)
            sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sink.bind(("127.0.0.1", 0))
            _shared["udp"], _shared["sink"] = (rtp_sock, _ReportSocket(rtcp_sock)), sink
        return _shared["udp"]  # type: ignore[return-value]


def playing(codec: str, transport: str = "tcp") -> RtspReceiver:
    """A receiver in the state :meth:`RtspReceiver.open` leaves after PLAY (over UDP: its RTP and
    RTCP sockets, the camera at 127.0.0.1). test_fuzz_camera_input checks it against a real open.
    Its keepalive is off: there is no RTSP connection to send it on."""
    rx = RtspReceiver(URL, transport=transport)
    track = rx.track = parse_sdp(SDP[codec], rx.url)
    rx.transport, rx.channel, rx.rtcp_channel = transport, 0, 1
    rx.depacketizer = Depacketizer(track.codec)
    rx.info = StreamInfo(codec=track.codec, width=0, height=0, extradata=track.extradata,
                         time_base=Fraction(1, track.clock_rate))
    rx._next_keepalive = math.inf
    if transport == "udp":
        rx._udp = _udp_pair()
        rx._sources = {"127.0.0.1"}
        sink = _shared["sink"]
        rx._server_rtcp = ("127.0.0.1", sink.getsockname()[1])  # type: ignore[attr-defined]
        rx.jitter, rx.reception = rtpmod.JitterBuffer(), rtpmod.Reception(track.clock_rate)
    return rx


class _Recv:
    """The TCP connection as the receiver sees it: before each read, what it holds is within its bounds."""

    def __init__(self, sock: socket.socket, rx: RtspReceiver) -> None:
        self._sock, self._rx = sock, rx

    def recv(self, n: int) -> bytes:
        assert len(self._rx._buf) <= HANDSHAKE_HELD, f"{len(self._rx._buf)} bytes held before a read"
        return self._sock.recv(n)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


class CameraReceiver(RtspReceiver):
    """The receiver, its TCP connect aside: the connection comes from a listener on 127.0.0.1
    whose far end already holds everything the camera sends, then EOF. A second connect (``auto``
    going to UDP after a refusal and a hang-up) gets an empty one. UDP ports as in production."""

    def __init__(self, data: bytes, **kwargs: object) -> None:
        super().__init__(URL, connect_timeout_s=30.0, read_timeout_s=30.0, **kwargs)  # type: ignore[arg-type]
        self._camera = data
        self._peers: list[tuple[socket.socket, threading.Thread | None]] = []

    def _connect(self) -> None:
        data, self._camera = self._camera, b""
        lst = _listener()
        client = socket.create_connection(lst.getsockname())
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer, _ = lst.accept()
        self._peers.append((peer, _send(peer, data)))
        self._sock, self._buf = _Recv(client, self), b""  # type: ignore[assignment]

    def _setup_udp(self, track: rtsp.Track) -> dict[str, str]:
        headers = super()._setup_udp(track)
        if self._udp is not None and not isinstance(self._udp[1], _ReportSocket):
            self._udp = (self._udp[0], _ReportSocket(self._udp[1]))  # type: ignore[assignment]
        return headers

    def close(self) -> None:
        super().close()
        for peer, writer in self._peers:
            if writer is not None:
                writer.join(10.0)
            peer.close()


def _send(peer: socket.socket, data: bytes) -> threading.Thread | None:
    """Write ``data`` then EOF: at once what the socket takes, the rest from a thread."""
    view, sent = memoryview(data), 0
    peer.setblocking(False)
    try:
        while sent < len(view):
            sent += peer.send(view[sent:])
    except BlockingIOError:
        pass
    if sent == len(view):
        peer.shutdown(socket.SHUT_WR)
        return None

    def rest() -> None:
        try:
            peer.setblocking(True)
            peer.sendall(view[sent:])
            peer.shutdown(socket.SHUT_WR)
        except OSError:  # the receiver gave up and closed
            pass

    t = threading.Thread(target=rest, daemon=True)
    t.start()
    return t


# ---------------------------------------------------------------------------- framing of inputs
def split_packets(data: bytes) -> list[bytes]:
    """The datagrams of an ``rtp_*``/``rtcp`` input: each behind a 16-bit big-endian length (the
    interleaved framing without ``$`` and channel); a last one cut short is taken as it is."""
    out, i, n = [], 0, len(data)
    while i + 2 <= n:
        size = (data[i] << 8) | data[i + 1]
        out.append(data[i + 2:i + 2 + size])
        i += 2 + size
    return out


def join_packets(packets: list[bytes]) -> bytes:
    return b"".join(struct.pack(">H", len(p)) + p for p in packets)


def interleave(packets: list[bytes], channel: int = 0) -> bytes:
    return b"".join(b"$" + bytes((channel,)) + struct.pack(">H", len(p)) + p for p in packets)


# ---------------------------------------------------------------------------- targets
def rtsp_target(data: bytes) -> Outcome:
    out = Outcome()
    for transport, basic in (("auto", False), ("udp", True)):
        _camera_session(data, transport, basic, out)
    return out


def _camera_session(data: bytes, transport: str, basic: bool, out: Outcome) -> None:
    rx = CameraReceiver(data, transport=transport, allow_basic_auth=basic)
    try:
        try:
            rx.open()
        except CAMERA_ERRORS as exc:
            out.errors.append(f"open: {type(exc).__name__}")
            return
        assert rx.track is not None and rx.transport in ("tcp", "udp")
        out.tracks.append(rx.track)
        check_receiver(rx)
        mono = time.monotonic()
        try:
            units = rx.feed(b"", time.time())  # what came with the PLAY reply, as the reactor starts
            check_receiver(rx)
            if rx.udp is not None:
                units += rx.tick(mono, time.time())  # the first receiver report goes out at once
            while chunk := rx.sock.recv(rtsp.RECV_BYTES):
                units += rx.feed(chunk, time.time())
                check_receiver(rx)
            units += rx.tick(mono + 1.0, time.time())
            check_receiver(rx)
        except CAMERA_ERRORS as exc:
            out.errors.append(f"stream: {type(exc).__name__}")
            check_receiver(rx)
            return
        check_units(units, rx)
        out.units += units
    finally:
        rx.close()


def sdp_target(data: bytes) -> Outcome:
    out = Outcome()
    text = data.decode("utf-8", "replace")  # as open() decodes the DESCRIBE body
    for base in SDP_BASES:
        try:
            track = parse_sdp(text, base)
        except RtspProtocolError:
            out.errors.append("RtspProtocolError")
            continue
        assert track.codec in ("h264", "hevc") and track.clock_rate > 0 and track.payload_type >= 0
        assert isinstance(track.control, str) and isinstance(track.aggregate, str)
        assert track.extradata is None or (track.extradata.startswith(START) and len(track.extradata) <= len(data))
        out.tracks.append(track)
    return out


READS = (1, 3, 7, 64, 1500, 4096, 65536)


def feed_stream(rx: RtspReceiver, stream: bytes, reads: tuple[int, ...] | None) -> tuple[list[EncodedPacket], str]:
    """``stream`` into ``rx.feed`` in one read, or in reads of the sizes ``reads`` cycles through;
    the units, and the documented error that ended it ("" if none)."""
    units: list[EncodedPacket] = []
    pos, k = 0, 0
    try:
        while True:
            size = max(1, len(stream)) if reads is None else reads[k % len(reads)]
            units += rx.feed(stream[pos:pos + size], 0.0)
            check_receiver(rx)
            pos, k = pos + size, k + 1
            if pos >= len(stream):
                break
    except CAMERA_ERRORS as exc:
        check_receiver(rx)
        check_units(units, rx)
        return units, type(exc).__name__
    check_units(units, rx)
    return units, ""


def interleaved_target(data: bytes) -> Outcome:
    out = Outcome()
    rx_whole, rx_cut = playing("h264"), playing("h264")
    whole, err_whole = feed_stream(rx_whole, data, None)
    cut, err_cut = feed_stream(rx_cut, data, READS)
    # Garbage is skipped to the next "$", and the end of a read is a place to look again: where a
    # stream with garbage in it finds its feet depends on the reads. One without must not.
    if not err_whole and not err_cut and rx_whole.garbage_bytes == 0:
        assert [(u.data, u.pts, u.is_keyframe) for u in whole] == [(u.data, u.pts, u.is_keyframe) for u in cut], \
            "the same bytes in other reads gave other access units"
    out.units, out.errors = whole, [e for e in (err_whole, err_cut) if e]
    return out


def rtp_target(codec: str, data: bytes) -> Outcome:
    packets = split_packets(data)
    out = Outcome()
    # RTP over UDP: datagram by datagram (1 ms apart), the timers every 16, then a second later
    rx = playing(codec, "udp")
    mono, units = 1000.0, []
    try:
        for i, p in enumerate(packets):
            mono += 0.001
            units += rx.feed_rtp(p, 0.0, mono)
            check_receiver(rx)
            if i % 16 == 15:
                units += rx.tick(mono, 0.0)
                check_receiver(rx)
        units += rx.tick(mono + 1.0, 0.0)
        check_receiver(rx)
    except CAMERA_ERRORS as exc:
        out.errors.append(f"udp: {type(exc).__name__}")
        check_receiver(rx)
    check_units(units, rx)
    out.units += units
    # RTP over TCP: the same packets framed on the RTP channel, in one read
    rx = playing(codec, "tcp")
    units, err = feed_stream(rx, interleave(packets), None)
    if err:
        out.errors.append(f"tcp: {err}")
    out.units += units
    return out


def rtp_h264_target(data: bytes) -> Outcome:
    return rtp_target("h264", data)


def rtp_h265_target(data: bytes) -> Outcome:
    return rtp_target("hevc", data)


OTHER_SSRC = b"\x00\x00\x00\x07"


def _prime() -> list[bytes]:
    """A little RTP first: two frames of sender 7 (then retired), two of sender :data:`SSRC`."""
    return [_rtp(1, 0, OTHER_SSRC), _rtp(2, 3600, OTHER_SSRC), _rtp(100, 9000, SSRC), _rtp(101, 12600, SSRC)]


def _rtp(seq: int, ts: int, ssrc: bytes, payload: bytes = b"\x65\x88\x84") -> bytes:
    return struct.pack(">BBHI", 0x80, 0x80 | 96, seq, ts) + ssrc + payload


def rtcp_target(data: bytes) -> Outcome:
    datagrams = split_packets(data)
    out = Outcome()
    for dg in datagrams:
        parsed = rtpmod.parse_rtcp(dg)
        assert sum(4 + len(body) for _, _, body in parsed) <= len(dg)
        assert all(0 <= pt <= 255 and 0 <= count <= 31 and len(body) % 4 == 0 for pt, count, body in parsed)
    # over UDP: as read_udp hands RTCP on, between RTP; then the timers (a BYE's deadline, a report)
    rx = playing("h264", "udp")
    mono, units = 1000.0, []
    try:
        for p in _prime():
            units += rx.feed_rtp(p, 0.0, mono)
        for dg in datagrams:
            mono += 0.01
            rx._rtcp(dg, mono)
            check_receiver(rx)
        for step in (0.5, 5.0):
            units += rx.tick(mono + step, 0.0)
            check_receiver(rx)
    except CAMERA_ERRORS as exc:
        out.errors.append(f"udp: {type(exc).__name__}")
    check_units(units, rx)
    # over TCP: on the RTCP channel, between the same RTP on the RTP channel
    rx = playing("h264", "tcp")
    units, err = feed_stream(rx, interleave(_prime()) + interleave(datagrams, 1), None)
    if err:
        out.errors.append(f"tcp: {err}")
    out.units += units
    return out


TARGETS = {
    "rtsp": rtsp_target,
    "sdp": sdp_target,
    "interleaved": interleaved_target,
    "rtp_h264": rtp_h264_target,
    "rtp_h265": rtp_h265_target,
    "rtcp": rtcp_target,
}
