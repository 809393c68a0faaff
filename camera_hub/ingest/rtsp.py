"""Native RTSP receiver: the handshake, RTP over TCP (interleaved) or UDP, H.264/H.265 depacketisation.

Why not FFmpeg's RTSP demuxer: with keyframe-only sampling, decoding costs one picture per
sampling interval and receiving the stream costs the rest. FFmpeg reads each camera in its own
blocking loop (a poll and two small reads per RTP packet, an AVPacket per slice, a thread
wake-up per packet); here :meth:`RtspReceiver.open` does the handshake in the camera's thread,
then :meth:`RtspReceiver.feed` turns whatever the socket held into whole access units in
Annex B (the form the ring, the clip writer and the decoder share), called by the worker's one
:class:`~camera_hub.ingest.reactor.Reactor` thread for every camera. Measured side by side in
``benchmarks/ingest_capacity.py``.

Scope: RTSP 1.0 (``rtsp://``), one video track, H.264 (RFC 6184: single NAL, STAP-A,
FU-A) and H.265 (RFC 7798: single NAL, AP, FU; no DONL), Digest (RFC 2617, with or without
``qop=auth``) authentication, and Basic only where the camera's config allows it (it sends the
password in clear text), keepalive by OPTIONS at half the session timeout, PLAY from where the
SDP's ``a=range`` says the stream is (``npt=now-`` for a live one; :func:`_play_range`).
RTP over TCP (interleaved) or over UDP (:mod:`camera_hub.ingest.rtp`: client ports from a range, a
jitter buffer, RTCP receiver reports); with ``transport="auto"`` TCP first, and UDP when the
camera refuses it (461 Unsupported Transport). A new sender (SSRC) re-syncs the depacketiser; an
RTCP BYE not followed by RTP within ``bye_timeout_s`` ends the session (:class:`RtpByeError`).
``rtsps://`` goes through FFmpeg (:mod:`camera_hub.ingest.source`).
The password only goes into the Authorization header, never into an error or the request line;
the URL's user and password are percent-decoded (config.py writes them encoded).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import random
import re
import selectors
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from urllib.parse import unquote, urljoin, urlsplit

from camera_hub.annexb import START
from camera_hub.events import EncodedPacket, StreamInfo
from camera_hub.ingest import rtp as rtpmod

USER_AGENT = "camera-hub"
# One read. Below the worker's mmap threshold (camera_hub/runtime.py, 128 KiB): Python allocates the
# whole size before the kernel fills a few KB of it, and a larger read would be a fresh mapping,
# page faults and an unmapping on every one of ~30,000 reads a second at 1,000 cameras.
RECV_BYTES = 64 * 1024
MAX_HEADER_BYTES = 64 * 1024  # an RTSP reply head longer than this is not an RTSP server
# Bounds against a hostile or broken camera (docs/security.md). In each of these attacks data keeps
# flowing, so no read timeout fires: past a bound the session ends with RtspProtocolError, which the
# Source reports as down, reason "error".
# An RTSP message body: a DESCRIBE's SDP (a few hundred bytes to a few KiB), a reply or request
# between interleaved frames (usually none). A body inside the stream is skipped as it arrives,
# never held; the bound stops a Content-Length of gigabytes from swallowing the stream for ever.
MAX_BODY_BYTES = 64 * 1024
# One access unit (a frame), in RTP payload bytes: a 3840x2160 4:2:0 8-bit picture is 12.4 MB raw,
# so 8 MiB holds a 4K IDR compressed only 1.5:1, where cameras' 4K IDRs are 0.3-2 MB.
MAX_AU_BYTES = 8 * 1024 * 1024
# NAL units in one access unit: slices (cameras send 1 to a few dozen; one per macroblock row of a
# 4K picture is 135), SEI, AUD, parameter sets. Each is a piece the decoder and clip writer walk.
MAX_AU_NALS = 4096
# RTP packets in one access unit: one per NAL unit, or FU fragments, which cameras cut at the MTU
# (~1400 bytes); this allows 512-byte ones up to MAX_AU_BYTES. Each packet's payload is held as a
# piece of its own until the unit ends (~40 bytes of object besides the payload), so this bounds
# that overhead too: a unit of 2-byte fragments ends after ~20,000 packets, not 4 million.
MAX_AU_PACKETS = MAX_AU_NALS + MAX_AU_BYTES // 512
H264_KEY = frozenset({5})  # IDR (and, see recovery_point, I-frames after a recovery point SEI)
H265_KEY = frozenset(range(16, 22))  # IRAP: BLA, IDR, CRA
TRANSPORTS = ("auto", "tcp", "udp")
# SETUP answers that mean "not this transport": 461 Unsupported Transport (VLC, live555); some
# cameras say 400, 406 or 501 instead. With transport "auto" each makes the receiver try UDP.
TRANSPORT_REFUSED = frozenset({400, 406, 461, 501})
UDP_PORTS = (50000, 59999)  # client RTP/RTCP ports (settings.ingest.rtp_udp_ports)
UDP_BATCH = 64  # datagrams read from one socket per readiness event (fairness between cameras)
RETIRED_SSRCS = 8  # old senders remembered, so that their stragglers cannot take the stream back


_REQUEST_LINE = re.compile(rb"[A-Z_]+ \S+ RTSP/")  # a request from the server (SET_PARAMETER, ANNOUNCE)
# What a read may end in that could still become "RTSP/" or a request line (at most 255 bytes held)
_MESSAGE_PREFIX = re.compile(rb"[A-Z_]+(?: \S*(?: R?T?S?P?)?)?")


class RtspStatusError(Exception):
    """The server answered a request with a non-2xx status."""

    def __init__(self, method: str, status: int, detail: str = "") -> None:
        super().__init__(f"RTSP {method} answered {status}" + (f": {detail}" if detail else ""))
        self.method, self.status = method, status


class RtspProtocolError(Exception):
    """The server said something this reader cannot use (no H.264/H.265 track, bad reply), or
    sent more than it may: a frame or an RTSP message past the bounds (MAX_AU_*, MAX_*_BYTES)."""


class NoVideoError(TimeoutError):
    """Data keeps coming but no frame completes within the read timeout (RTCP only, garbage,
    another payload type, a frame never ended): the session ends as if silent (reason
    ``no_video``), so the camera goes down and its offline rule can fire instead of staying
    ``starting`` or ``up`` for ever."""


class RtpByeError(EOFError):
    """The sender left (RTCP BYE) and no RTP of a new sender came within ``bye_timeout_s``
    (VLC ends its track at each loop of its file and starts a new one that an existing session
    does not get). The Source reconnects at once (reason ``bye``)."""


@dataclass(frozen=True, slots=True)
class Track:
    codec: str  # "h264" | "hevc"
    payload_type: int
    clock_rate: int
    control: str
    extradata: bytes | None  # Annex B parameter sets from the SDP's fmtp, if it gives them
    aggregate: str = ""  # the session-level a=control (PLAY goes there), "" when the SDP has none
    play_range: str = "npt=0.000-"  # PLAY's Range: where the SDP's a=range says the media starts


def parse_sdp(sdp: str, base: str) -> Track:
    """The first H.264 or H.265 video track of a session description. Control URLs may be
    relative to ``base`` (Content-Base, with or without a trailing slash) or absolute; an fmtp
    line may end in ``;`` (VLC), or hold no parameters. PLAY's Range comes from ``a=range``
    (:func:`_play_range`). Raises :class:`RtspProtocolError` and nothing else, whatever the
    camera wrote (tests/ingest/test_fuzz_camera_input.py)."""
    media: list[list[str]] = []
    session: list[str] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
        else:
            session.append(line)
    aggregate = next((ln[len("a=control:"):].strip() for ln in session if ln.startswith("a=control:")), "")
    aggregate = "" if aggregate in ("", "*") else _control_url(base, aggregate)
    for lines in media:
        if not lines[0].startswith("m=video"):
            continue
        rtpmap = {m[1]: (m[2].upper(), int(m[3])) for ln in lines
                  if (m := re.match(r"a=rtpmap:([0-9]{1,9})\s+([\w.-]+)/([0-9]{1,9})(?![0-9])", ln))}
        for pt, (name, clock) in rtpmap.items():
            if name not in ("H264", "H265", "HEVC") or clock <= 0:
                continue
            fmtp = next((ln[len(f"a=fmtp:{pt} "):] for ln in lines if ln.startswith(f"a=fmtp:{pt} ")), "")
            params = dict(p.strip().partition("=")[::2] for p in fmtp.split(";") if "=" in p)
            control = next((ln[len("a=control:"):].strip() for ln in lines if ln.startswith("a=control:")), "")
            codec = "h264" if name == "H264" else "hevc"
            return Track(codec, int(pt), clock, _control_url(base, control), _sprop(codec, params), aggregate,
                         _play_range(lines) or _play_range(session) or "npt=0.000-")
    raise RtspProtocolError("no H.264 or H.265 video track in the session description")


def _play_range(lines: list[str]) -> str:
    """PLAY's Range for the media that ``lines`` (of the SDP) describe: ``npt=now-`` for a live
    one (``a=range:npt=now-``), its start for one that starts past 0 (``a=range:npt=0.2-``: a
    stream with B-frames); "" when they say neither (PLAY then asks for ``npt=0.000-``, as FFmpeg
    and live555 do). GStreamer's server answers 503 to a Range it cannot seek to: ``npt=0.000-``
    for a stream that another client is already reading (its SDP says ``now-``) or one that
    starts at 0.2 s."""
    for ln in lines:
        if m := re.match(r"a=range:\s*npt\s*=\s*(now|[0-9]{1,9}(?:\.[0-9]{1,9})?)\s*-", ln.strip()):
            return "npt=now-" if m[1] == "now" else f"npt={m[1]}-" if float(m[1]) > 0 else ""
    return ""


def _control_url(base: str, control: str) -> str:
    if not control or control == "*":
        return base
    if re.match(r"^rtsps?://", control):
        return control
    try:
        return urljoin(base if base.endswith("/") else base + "/", control)
    except ValueError:  # "rtsp://[bad/" as Content-Base or control: urljoin's "Invalid IPv6 URL"
        raise RtspProtocolError("a control URL or Content-Base that is not a URL") from None


def _sprop(codec: str, params: dict[str, str]) -> bytes | None:
    keys = ["sprop-parameter-sets"] if codec == "h264" else ["sprop-vps", "sprop-sps", "sprop-pps"]
    nals = []
    for key in keys:
        for item in params.get(key, "").split(","):
            if item.strip():
                try:
                    nals.append(base64.b64decode(item.strip()))
                except ValueError:
                    return None
    return b"".join(START + n for n in nals if n) or None


def _address(text: str, family: int) -> str | None:
    """A SETUP reply's ``source=`` as an address of the connection's family, or None. Never a
    name: receiver reports go there from the reactor thread, which must not wait for a lookup
    (``source=ca.fe`` was one; fuzzing found it)."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(ip) if ip.version == (6 if family == socket.AF_INET6 else 4) else None


def _content_length(value: bytes) -> int:
    """A message's Content-Length: at most :data:`MAX_BODY_BYTES`, else RtspProtocolError."""
    value = value.strip()
    if not value:
        return 0
    if not re.fullmatch(rb"[0-9]{1,12}", value):
        raise RtspProtocolError("an RTSP message with a malformed Content-Length")
    if (length := int(value)) > MAX_BODY_BYTES:
        raise RtspProtocolError(f"an RTSP message body of {length} bytes (at most {MAX_BODY_BYTES})")
    return length


def _auth_params(header: str) -> dict[str, str]:
    return {m[1].lower(): m[2] if m[2] is not None else m[3]
            for m in re.finditer(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', header)}


def _headers(lines: list[str]) -> dict[str, str]:
    """Header fields by lower-case name. Every WWW-Authenticate is kept, one per line: cameras send
    Digest and Basic as two headers, and the last one must not hide the other."""
    headers: dict[str, str] = {}
    for k, _, v in (ln.partition(":") for ln in lines):
        key, value = k.strip().lower(), v.strip()
        headers[key] = f"{headers[key]}\n{value}" if key == "www-authenticate" and key in headers else value
    return headers


BASIC_REFUSED = "the camera offers only Basic auth (password in clear text); allow_basic_auth is off for it"


class _Auth:
    """Digest (or, if allowed, Basic) credentials for every request after the first 401."""

    def __init__(self, user: str | None, password: str | None, *, allow_basic: bool = False) -> None:
        self.user, self._password = user, password
        self._allow_basic = allow_basic
        self.basic_refused = False  # the last challenge offered only Basic, which is not allowed
        self._scheme = ""
        self._params: dict[str, str] = {}
        self._nc = 0

    def challenge(self, header: str) -> bool:
        """Take the WWW-Authenticate challenges (one per line), Digest first; False when there is
        nothing to answer them with. Basic only when allowed: a spoofed camera that offers only
        Basic would otherwise be handed the password."""
        if self.user is None or self._scheme:
            return False
        offers = {c.split(None, 1)[0].lower(): c for c in header.split("\n") if c.strip()}
        if "digest" in offers:
            self._scheme = "digest"
        elif "basic" in offers and self._allow_basic:
            self._scheme = "basic"
        else:
            self.basic_refused = "basic" in offers
            return False
        self._params = _auth_params(offers[self._scheme])
        return True

    def header(self, method: str, uri: str) -> str | None:
        if self.user is None or not self._scheme:
            return None
        password = self._password or ""
        if self._scheme == "basic":
            return "Basic " + base64.b64encode(f"{self.user}:{password}".encode()).decode()
        realm, nonce = self._params.get("realm", ""), self._params.get("nonce", "")

        def md5(s: str) -> str:
            return hashlib.md5(s.encode()).hexdigest()  # noqa: S324 - RFC 2617 says MD5

        ha1, ha2 = md5(f"{self.user}:{realm}:{password}"), md5(f"{method}:{uri}")
        quoted_user = self.user.replace("\\", "\\\\").replace('"', '\\"')  # a quoted-string (RFC 7616)
        fields = f'username="{quoted_user}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
        if "auth" in self._params.get("qop", "").split(","):
            self._nc += 1
            nc, cnonce = f"{self._nc:08x}", os.urandom(8).hex()
            response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            fields += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
        else:
            response = md5(f"{ha1}:{nonce}:{ha2}")
        if "opaque" in self._params:
            fields += f', opaque="{self._params["opaque"]}"'
        return f'Digest {fields}, response="{response}", algorithm=MD5'


def recovery_point(sei: bytes) -> bool:
    """Does this H.264 SEI NAL unit (header byte included) carry a recovery point (payload type
    6)? Cameras with open GOPs send their I-frames as non-IDR slices marked so; FFmpeg counts
    them as keyframes, and so must we. Emulation-prevention bytes are not removed: they can only
    shift the walk past a payload that holds 00 00 03, after which it may miss a later message."""
    i, n = 1, len(sei)
    while i < n and sei[i] != 0x80:  # 0x80: the RBSP trailing bits
        ptype = size = 0
        while i < n and sei[i] == 0xFF:
            ptype, i = ptype + 255, i + 1
        if i >= n:
            return False
        ptype, i = ptype + sei[i], i + 1
        while i < n and sei[i] == 0xFF:
            size, i = size + 255, i + 1
        if i >= n:
            return False
        size, i = size + sei[i], i + 1
        if ptype == 6:
            return True
        i += size
    return False


class Depacketizer:
    """RTP payloads → whole access units (Annex B). A unit ends at the marker bit or when the
    timestamp moves on; one with a lost packet (sequence gap) is dropped, not handed on broken.
    A unit past :data:`MAX_AU_BYTES`, :data:`MAX_AU_NALS` or :data:`MAX_AU_PACKETS` (a camera that
    never ends a frame) is dropped and :meth:`push` raises :class:`RtspProtocolError`: what it
    holds never exceeds those bounds by more than one packet."""

    def __init__(self, codec: str) -> None:
        self.hevc = codec == "hevc"
        self.keys = H265_KEY if self.hevc else H264_KEY
        self.lost = 0  # access units dropped for a sequence gap
        self.lost_packets = 0  # RTP packets that never came (sequence gaps; a restart is not counted)
        self._parts: list[bytes] = []  # the unit so far, Annex B, joined at its end
        self._size = 0  # payload bytes in _parts
        self._nals = 0
        self._packets = 0
        self._ts: int | None = None
        self._key = False
        self._broken = False
        self._next_seq: int | None = None
        self._in_fu = False

    def push(self, payload: bytes, seq: int, ts: int, marker: bool) -> tuple[bytes, int, bool] | None:
        """One RTP payload; returns (data, rtp timestamp, is_keyframe) when a unit completes."""
        done = None
        if ts != self._ts:
            if self._parts:
                done = self._finish()  # the previous unit had no marker
            self._packets = 0
        if self._next_seq is not None and seq != self._next_seq:
            if (gap := (seq - self._next_seq) & 0xFFFF) < rtpmod.MAX_DROPOUT:
                self.lost_packets += gap
            self._broken = True
            self._in_fu = False
        self._next_seq = (seq + 1) & 0xFFFF
        self._ts = ts
        if payload:
            self._add(payload)
            self._size += len(payload)
        self._packets += 1
        if self._size > MAX_AU_BYTES or self._nals > MAX_AU_NALS or self._packets > MAX_AU_PACKETS:
            what = (f"{self._size} bytes" if self._size > MAX_AU_BYTES else
                    f"{self._nals} NAL units" if self._nals > MAX_AU_NALS else f"{self._packets} packets")
            self._broken = True
            self._finish()
            raise RtspProtocolError(f"an access unit of over {what} without an end")
        if marker:
            return self._finish() or done
        return done

    def reset(self) -> None:
        """A new sender (SSRC): drop the unit in progress and forget the sequence number."""
        self._parts, self._size, self._nals, self._packets = [], 0, 0, 0
        self._ts, self._key, self._broken, self._next_seq, self._in_fu = None, False, False, None, False

    def _finish(self) -> tuple[bytes, int, bool] | None:
        parts, key, broken, ts = self._parts, self._key, self._broken, self._ts
        self._parts, self._key, self._broken, self._in_fu = [], False, False, False
        self._size = self._nals = self._packets = 0
        if broken or not parts or ts is None:
            if parts or broken:
                self.lost += 1
            return None
        return b"".join(parts), ts, key

    def _nal(self, nal_type: int, nal: bytes) -> None:
        if nal_type in self.keys or (nal_type == 6 and not self.hevc and recovery_point(nal)):
            self._key = True

    def _type(self, nal: bytes) -> int:
        return (nal[0] >> 1) & 0x3F if self.hevc else nal[0] & 0x1F

    def _add(self, p: bytes) -> None:
        """One payload. H.264 and H.265 differ in header size (1 or 2 bytes), type numbers and
        how a fragment rebuilds its NAL header; the packet forms are the same."""
        hevc = self.hevc
        hdr = 2 if hevc else 1
        if len(p) < hdr:
            return
        t = self._type(p)
        if t == (48 if hevc else 24):  # aggregation packet (AP / STAP-A): 16-bit size, NAL, ...
            i = hdr
            while i + 2 <= len(p):
                size = (p[i] << 8) | p[i + 1]
                nal = p[i + 2:i + 2 + size]
                if nal:
                    self._nal(self._type(nal), nal)
                    self._parts += (START, nal)
                    self._nals += 1
                i += 2 + size
        elif t == (49 if hevc else 28):  # fragmentation unit (FU / FU-A)
            if len(p) <= hdr:
                self._broken = True
                return
            fu = p[hdr]
            if fu & 0x80:
                kind = fu & (0x3F if hevc else 0x1F)
                head = bytes(((p[0] & 0x81) | (kind << 1), p[1])) if hevc else bytes(((p[0] & 0xE0) | kind,))
                self._nal(kind, head + p[hdr + 1:])
                self._parts += (START, head, p[hdr + 1:])
                self._nals += 1
                self._in_fu = True
            elif self._in_fu:
                self._parts.append(p[hdr + 1:])
            else:
                self._broken = True  # a fragment whose start was lost
            if fu & 0x40:
                self._in_fu = False
        elif hevc or 1 <= t <= 23:  # a single NAL unit
            self._nal(t, p)
            self._parts += (START, p)
            self._nals += 1


class RtspReceiver:
    """One RTSP session: :meth:`open` (DESCRIBE, SETUP, PLAY), then :meth:`packets`.

    ``transport``: "tcp" (RTP interleaved in the RTSP connection), "udp" (RTP and RTCP on a pair
    of client ports from ``udp_ports``), or "auto": TCP, and UDP when the camera refuses TCP with
    one of :data:`TRANSPORT_REFUSED` (:attr:`tcp_refused` says which). After :meth:`open`,
    :attr:`transport` is the one in use.

    Raises ``ConnectionRefusedError``, ``TimeoutError`` (connect/handshake/read),
    ``EOFError`` (:class:`RtpByeError` after a sender's BYE), :class:`RtspStatusError`,
    :class:`RtspProtocolError`, ``OSError`` (no free UDP port pair): the caller classifies.
    """

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0, read_timeout_s: float = 5.0,
                 allow_basic_auth: bool = False, transport: str = "auto",
                 udp_ports: tuple[int, int] = UDP_PORTS, bye_timeout_s: float = 2.0) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}")
        parts = urlsplit(url)
        if parts.scheme != "rtsp":
            raise ValueError("the native receiver reads rtsp:// only")
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in (user or "") + (password or "")):
            raise ValueError("the URL's user or password holds a control character")  # header injection
        self._auth = _Auth(user, password, allow_basic=allow_basic_auth)
        self._host, self._port = parts.hostname or "", parts.port or 554
        self.url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # no credentials
        self._connect_timeout_s, self._read_timeout_s = connect_timeout_s, read_timeout_s
        self._sock: socket.socket | None = None
        self._buf = b""
        self._cseq = 0
        self._session: str | None = None
        self._keepalive_s = 30.0
        self._next_keepalive = 0.0
        self.track: Track | None = None
        self.channel = 0
        self.info: StreamInfo | None = None
        self.depacketizer: Depacketizer | None = None
        self.garbage_bytes = 0  # bytes skipped to find the interleaved framing again
        self._discard = 0  # what is still to come of an RTSP message body inside the stream
        # transport
        self.transport_wanted = transport
        self.transport = ""  # "tcp" | "udp" once set up
        self.tcp_refused = 0  # the status that refused RTP over TCP ("auto" then went to UDP)
        self.rtcp_channel = 1
        self._udp_ports, self._bye_timeout_s = udp_ports, bye_timeout_s
        self._udp: tuple[socket.socket, socket.socket] | None = None  # RTP, RTCP (UDP only)
        self._sources: set[str] = set()  # RTP/RTCP datagrams are taken from these hosts only
        self._server_rtcp: tuple[str, int] | None = None
        self.jitter: rtpmod.JitterBuffer | None = None  # UDP only
        self.reception: rtpmod.Reception | None = None
        self._own_ssrc = rtpmod.own_ssrc()
        self._next_rr = 0.0  # the first receiver report goes out at once (it opens NAT on the way)
        self._lsr, self._sr_at = b"\0\0\0\0", None  # the last sender report: its NTP middle, when
        # the sender: a new SSRC re-syncs the depacketiser; the old ones' stragglers are dropped
        self._ssrc: bytes | None = None
        self._retired: deque[bytes] = deque(maxlen=RETIRED_SSRCS)
        self.ssrc_changes = 0
        self.byes = 0  # RTCP BYEs of the current sender
        self.bye_at: float | None = None  # monotonic time of the current sender's BYE, until RTP goes on
        self.foreign = 0  # datagrams from other hosts than the server, dropped
        self.stray = 0  # packets of a retired sender, dropped
        self.on_event: Callable[[str], None] | None = None  # "ssrc_change" | "bye", in the reading thread
        # pts: the signed steps between RTP timestamps added up
        self._last_ts: int | None = None
        self._pts_last = self._pts_max = self._step = 0
        self._rebase = False

    # ------------------------------------------------------------------ handshake
    def open(self) -> StreamInfo:
        self._connect()
        headers, body = self._request("DESCRIBE", self.url, {"Accept": "application/sdp"})
        base = headers.get("content-base") or headers.get("content-location") or self.url
        track = self.track = parse_sdp(body.decode("utf-8", "replace"), base)
        headers = self._setup(track)
        session = headers.get("session", "")
        self._session = session.split(";")[0].strip() or None
        if m := re.search(r"timeout=([0-9]{1,9})(?![0-9])", session):
            self._keepalive_s = max(5.0, int(m[1]) / 2)
        if self.transport == "tcp" and (
                m := re.search(r"interleaved=([0-9]{1,3})(?:-([0-9]{1,3}))?(?![0-9])", headers.get("transport", ""))):
            self.channel = int(m[1])
            self.rtcp_channel = int(m[2]) if m[2] else self.channel + 1
        self._request("PLAY", track.aggregate or (base if base.startswith("rtsp") else self.url),
                      {"Range": track.play_range})
        self.sock.settimeout(self._read_timeout_s)
        self._next_keepalive = time.monotonic() + self._keepalive_s
        self.depacketizer = Depacketizer(track.codec)
        if self.transport == "udp":
            self.jitter, self.reception = rtpmod.JitterBuffer(), rtpmod.Reception(track.clock_rate)
        self.info = StreamInfo(codec=track.codec, width=0, height=0, extradata=track.extradata,
                               time_base=Fraction(1, track.clock_rate))
        return self.info

    def _connect(self) -> None:
        self._sock = socket.create_connection((self._host, self._port), timeout=self._connect_timeout_s)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""

    def _setup(self, track: Track) -> dict[str, str]:
        """SETUP over TCP or UDP as :attr:`transport_wanted` says; "auto": TCP, then UDP when the
        camera refuses TCP (:data:`TRANSPORT_REFUSED`). Returns the reply's headers."""
        if self.transport_wanted != "udp":
            try:
                headers, _ = self._request("SETUP", track.control,
                                           {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
                self.transport = "tcp"
                return headers
            except RtspStatusError as exc:
                if self.transport_wanted == "tcp" or exc.status not in TRANSPORT_REFUSED:
                    raise
                self.tcp_refused = exc.status
        try:
            return self._setup_udp(track)
        except (EOFError, ConnectionError):
            if not self.tcp_refused:
                raise
            self._close_udp()  # a server that hangs up after its refusal: once more, on a new connection
            self.sock.close()
            self._connect()
            return self._setup_udp(track)

    def _setup_udp(self, track: Track) -> dict[str, str]:
        sock = self.sock
        peer = sock.getpeername()[0]
        self._sources = {peer}
        self._udp = rtpmod.bind_pair(sock.family, sock.getsockname()[0], *self._udp_ports)
        port = self._udp[0].getsockname()[1]
        headers, _ = self._request("SETUP", track.control,
                                   {"Transport": f"RTP/AVP;unicast;client_port={port}-{port + 1}"})
        reply = headers.get("transport", "")
        if "interleaved=" in reply:
            raise RtspProtocolError("asked for RTP over UDP, the server set up TCP")
        if (m := re.search(r"source=([0-9A-Fa-f:.]{2,45})(?![0-9A-Fa-f:.])", reply)) and (
                source := _address(m[1], sock.family)):
            peer = source  # a media server apart from the RTSP one
            self._sources.add(peer)
        if (m := re.search(r"server_port=([0-9]{1,5})(?:-([0-9]{1,5}))?", reply)) and 0 < int(m[1]) < 65535 and (
                0 < (rtcp := int(m[2]) if m[2] else int(m[1]) + 1) <= 0xFFFF):
            self._server_rtcp = (peer, rtcp)
        self.transport = "udp"
        return headers

    def _close_udp(self) -> None:
        udp, self._udp = self._udp, None
        for s in udp or ():
            s.close()

    def close(self) -> None:
        self._close_udp()
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            if self._session:
                sock.settimeout(0.2)
                sock.sendall(self._head("TEARDOWN", self.url, {}))
        except OSError:
            pass
        finally:
            sock.close()

    def _head(self, method: str, uri: str, extra: dict[str, str]) -> bytes:
        self._cseq += 1
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self._cseq}", f"User-Agent: {USER_AGENT}"]
        if self._session:
            lines.append(f"Session: {self._session}")
        if auth := self._auth.header(method, uri):
            lines.append(f"Authorization: {auth}")
        lines += [f"{k}: {v}" for k, v in extra.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _request(self, method: str, uri: str, extra: dict[str, str]) -> tuple[dict[str, str], bytes]:
        assert self._sock is not None
        deadline = time.monotonic() + self._connect_timeout_s
        for _ in range(2):  # once more after a 401 with the credentials
            self._sock.sendall(self._head(method, uri, extra))
            status, headers, body = self._response(deadline)
            if status == 401 and self._auth.challenge(headers.get("www-authenticate", "")):
                continue
            if status == 401 and self._auth.basic_refused:
                raise RtspStatusError(method, 401, BASIC_REFUSED)
            if not 200 <= status < 300:
                raise RtspStatusError(method, status)
            return headers, body
        raise RtspStatusError(method, 401)

    def _response(self, deadline: float) -> tuple[int, dict[str, str], bytes]:
        """The next reply, skipping interleaved data that arrives before it. What it holds is
        bounded: a head of MAX_HEADER_BYTES, a body of MAX_BODY_BYTES, one read more."""
        assert self._sock is not None
        while True:
            if self._buf[:1] == b"$" and len(self._buf) >= 4:
                end = 4 + int.from_bytes(self._buf[2:4], "big")
                if len(self._buf) >= end:
                    self._buf = self._buf[end:]
                    continue
            elif (head_end := self._buf.find(b"\r\n\r\n", 0, MAX_HEADER_BYTES + 4)) >= 0:
                head = self._buf[:head_end].decode("utf-8", "replace").split("\r\n")
                headers = _headers(head[1:])
                length = _content_length(headers.get("content-length", "").encode())
                if len(self._buf) >= head_end + 4 + length:
                    body = self._buf[head_end + 4:head_end + 4 + length]
                    self._buf = self._buf[head_end + 4 + length:]
                    m = re.match(r"RTSP/\d\.\d\s+(\d{3})", head[0])
                    if m is None:
                        raise RtspProtocolError("not an RTSP reply")
                    return int(m[1]), headers, body
            elif len(self._buf) > MAX_HEADER_BYTES:
                raise RtspProtocolError("no RTSP reply")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no RTSP reply in time")
            self._sock.settimeout(left)
            chunk = self._sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self._buf += chunk

    # ------------------------------------------------------------------ streaming
    @property
    def sock(self) -> socket.socket:
        assert self._sock is not None, "not open"
        return self._sock

    @property
    def udp(self) -> tuple[socket.socket, socket.socket] | None:
        """The RTP and RTCP sockets of a UDP session (None over TCP)."""
        return self._udp

    def packets(self) -> Iterator[EncodedPacket]:
        """Blocking: whole access units as they arrive (a worker reads through the
        :class:`~camera_hub.ingest.reactor.Reactor` instead, many sessions on one thread)."""
        yield from self.feed(b"", time.time())  # what came with the PLAY reply
        if self._udp is None:
            while True:
                self.keepalive(time.monotonic())
                chunk = self.sock.recv(RECV_BYTES)
                if not chunk:
                    raise EOFError("server closed the connection")
                yield from self.feed(chunk, time.time())
        with selectors.DefaultSelector() as sel:
            for kind, s in (("rtsp", self.sock), ("rtp", self._udp[0]), ("rtcp", self._udp[1])):
                sel.register(s, selectors.EVENT_READ, kind)
            last = time.monotonic()
            while True:
                for key, _ in sel.select(0.25):
                    if key.data == "rtsp":
                        chunk = self.sock.recv(RECV_BYTES)
                        if not chunk:
                            raise EOFError("server closed the connection")
                        yield from self.feed(chunk, time.time())
                    else:
                        units, got = self.read_udp(key.data == "rtcp", time.time(), time.monotonic())
                        last = time.monotonic() if got else last
                        yield from units
                mono = time.monotonic()
                if mono - last > self._read_timeout_s:
                    raise TimeoutError(f"no RTP for {self._read_timeout_s:g} s")
                yield from self.tick(mono, time.time())

    def read_udp(self, rtcp: bool, now: float, mono: float) -> tuple[list[EncodedPacket], bool]:
        """Up to :data:`UDP_BATCH` datagrams off the RTP (or RTCP) socket: the access units they
        complete, and whether RTP came from the server (for the read timeout). Datagrams from
        other hosts are dropped (:attr:`foreign`): anyone can send to an open UDP port."""
        assert self._udp is not None
        sock, out, got = self._udp[1 if rtcp else 0], [], False
        for _ in range(UDP_BATCH):
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionRefusedError:  # an ICMP "port unreachable" for a report we sent
                continue
            if addr[0] not in self._sources:
                self.foreign += 1
            elif rtcp:
                if self._server_rtcp is None:
                    self._server_rtcp = (addr[0], addr[1])
                self._rtcp(data, mono)
            else:
                got = True
                out += self.feed_rtp(data, now, mono)
        return out, got

    def feed_rtp(self, data: bytes, now: float, mono: float) -> list[EncodedPacket]:
        """One RTP datagram → the access units it completes, through the jitter buffer."""
        track, jitter, reception = self.track, self.jitter, self.reception
        assert track is not None and jitter is not None and reception is not None
        n = len(data)
        if n < 12 or data[0] >> 6 != 2 or data[1] & 0x7F != track.payload_type:
            return []
        b0, b1, ssrc = data[0], data[1], data[8:12]
        if ssrc != self._ssrc and not self._sender(ssrc):
            return []
        hdr = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10 and hdr + 4 <= n:  # header extension
            hdr += 4 + 4 * ((data[hdr + 2] << 8) | data[hdr + 3])
        stop = n - (data[n - 1] if b0 & 0x20 else 0)  # padding
        seq, ts = (data[2] << 8) | data[3], int.from_bytes(data[4:8], "big")
        reception.update(seq, ts, mono)
        out: list[EncodedPacket] = []
        for item in jitter.push(seq, (data[hdr:stop] if hdr < stop else b"", seq, ts, bool(b1 & 0x80)), mono):
            self._unit(item, now, out)  # type: ignore[arg-type]
        if out and self.bye_at is not None and mono - self.bye_at > self._bye_timeout_s / 2:
            self.bye_at = None  # the sender's RTP goes on well after its BYE: it did not leave
        return out

    def _unit(self, item: tuple[bytes, int, int, bool], now: float, out: list[EncodedPacket]) -> None:
        assert self.depacketizer is not None and self.info is not None
        if (au := self.depacketizer.push(*item)) is not None:
            pts = self._pts(au[1])
            out.append(EncodedPacket(au[0], pts, pts, au[2], self.info.time_base, now))

    def tick(self, mono: float, now: float) -> list[EncodedPacket]:
        """The session's timers (the reactor calls this every quarter second): packets that waited
        out a gap in the jitter buffer, RTCP receiver reports, the keepalive, and the deadline
        after a BYE (raises :class:`RtpByeError`)."""
        out: list[EncodedPacket] = []
        if self.jitter is not None and len(self.jitter):
            for item in self.jitter.expire(mono):
                self._unit(item, now, out)  # type: ignore[arg-type]
        if self.bye_at is not None and mono - self.bye_at > self._bye_timeout_s:
            raise RtpByeError(f"no RTP for {self._bye_timeout_s:g} s after the sender's RTCP BYE")
        if self._udp is not None and mono >= self._next_rr:
            self._next_rr = mono + rtpmod.RTCP_INTERVAL_S * random.uniform(0.5, 1.5)
            self._report(mono)
        self.keepalive(mono)
        return out

    def _report(self, mono: float) -> None:
        """An RTCP receiver report to the server's RTCP port (UDP)."""
        if self._udp is None or self._server_rtcp is None:
            return
        block = None
        if self.reception is not None and self.reception.started and self._ssrc is not None:
            block = self.reception.block(self._ssrc, self._lsr, None if self._sr_at is None else mono - self._sr_at)
        try:
            self._udp[1].sendto(rtpmod.receiver_report(self._own_ssrc, block), self._server_rtcp)
        except OSError:  # unreachable now: the next one may get through
            pass

    def _sender(self, ssrc: bytes) -> bool:
        """A packet whose SSRC is not the current sender's: the first sender; a retired one
        (dropped, False); or a new one, which re-syncs: the depacketiser and jitter buffer start
        over at its sequence, pts go on from where they were."""
        if self._ssrc is None:
            self._ssrc = ssrc
            return True
        if ssrc in self._retired:
            self.stray += 1
            return False
        self._retired.append(self._ssrc)
        self._ssrc = ssrc
        self.ssrc_changes += 1
        self.bye_at = None
        assert self.depacketizer is not None
        self.depacketizer.reset()
        if self.jitter is not None and self.reception is not None:
            self.jitter.reset()
            self.reception = rtpmod.Reception(self.reception.clock_rate)
        self._lsr, self._sr_at = b"\0\0\0\0", None
        self._last_ts, self._rebase = None, True
        self._event("ssrc_change")
        return True

    def _rtcp(self, data: bytes, mono: float) -> None:
        """A compound RTCP packet from the server: its sender reports (for the LSR of ours) and
        BYE, which starts the :attr:`bye_at` deadline. Each is taken as the current sender's when
        it names that SSRC or one never seen in RTP: VLC sends its RTCP with SSRC 0. One naming
        a retired sender is that sender's farewell, ignored."""
        for pt, count, body in rtpmod.parse_rtcp(data):
            if pt == 200 and len(body) >= 24 and self._current(body[:4]):
                self._lsr, self._sr_at = rtpmod.ntp_middle(body), mono
            elif pt == 203 and self._ssrc is not None and self.bye_at is None and any(
                    self._current(body[4 * i:4 * i + 4]) for i in range(min(count, len(body) // 4))):
                self.byes += 1
                self.bye_at = mono
                self._event("bye")

    def _current(self, ssrc: bytes) -> bool:
        return ssrc == self._ssrc or ssrc not in self._retired

    def _event(self, kind: str) -> None:
        if self.on_event is not None:
            try:
                self.on_event(kind)
            except Exception:  # noqa: BLE001, S110 - a status callback must not end the session
                pass

    def keepalive(self, mono: float) -> None:
        """Servers end a session that sends no request within its timeout (over TCP we send no
        RTCP; over UDP receiver reports go too, but not every server counts them)."""
        if mono >= self._next_keepalive:
            self._next_keepalive = mono + self._keepalive_s
            try:
                self.sock.send(self._head("OPTIONS", self.url, {}))  # a few bytes
            except BlockingIOError:  # send buffer full (it never is in practice): next time
                self._next_keepalive = mono + 1.0

    def feed(self, chunk: bytes, now: float) -> list[EncodedPacket]:
        """Bytes off the socket → the access units they complete, stamped ``now``.

        What stays for the next call is one unfinished interleaved frame (at most 65,539 bytes,
        by the framing's 16-bit length) or RTSP message head (MAX_HEADER_BYTES); a message body is
        skipped as it arrives. So each call copies a bounded remainder plus ``chunk``, never a
        buffer that grows with the stream. Raises RtspProtocolError past a bound."""
        depack, info, track = self.depacketizer, self.info, self.track
        assert depack is not None and info is not None and track is not None
        buf = self._buf + chunk if self._buf else chunk
        channel, pt, tb = self.channel, track.payload_type, info.time_base
        rtcp_channel, ssrc = self.rtcp_channel, self._ssrc
        out: list[EncodedPacket] = []
        pos, n = 0, len(buf)
        if self._discard:
            pos = min(self._discard, n)
            self._discard -= pos
        while n - pos >= 4:
            if buf[pos] != 0x24:  # "$"
                skip = self._skip_text(buf, pos)
                if skip is None:
                    break
                if skip > n:  # a message body still on its way: dropped as it comes
                    self._discard, pos = skip - n, n
                    break
                pos = skip
                continue
            end = pos + 4 + ((buf[pos + 2] << 8) | buf[pos + 3])
            if end > n:
                break
            if buf[pos + 1] == channel and end - pos >= 16:
                b0, b1 = buf[pos + 4], buf[pos + 5]
                if b0 >> 6 == 2 and b1 & 0x7F == pt:
                    if ssrc is None or not buf.startswith(ssrc, pos + 12):  # (no copy: per packet)
                        if not self._sender(buf[pos + 12:pos + 16]):
                            pos = end
                            continue
                        ssrc = self._ssrc
                    hdr = pos + 16 + 4 * (b0 & 0x0F)
                    if b0 & 0x10 and hdr + 4 <= end:  # header extension
                        hdr += 4 + 4 * ((buf[hdr + 2] << 8) | buf[hdr + 3])
                    stop = end - (buf[end - 1] if b0 & 0x20 else 0)  # padding
                    au = depack.push(buf[hdr:stop] if hdr < stop else b"", (buf[pos + 6] << 8) | buf[pos + 7],
                                     int.from_bytes(buf[pos + 8:pos + 12], "big"), bool(b1 & 0x80))
                    if au is not None:
                        out.append(EncodedPacket(au[0], (pts := self._pts(au[1])), pts, au[2], tb, now))
            elif buf[pos + 1] == rtcp_channel and end - pos >= 12:
                self._rtcp(buf[pos + 4:end], time.monotonic())
            pos = end
        self._buf = buf[pos:] if pos < n else b""
        if out and self.bye_at is not None and time.monotonic() - self.bye_at > self._bye_timeout_s / 2:
            self.bye_at = None  # the sender's RTP goes on well after its BYE: it did not leave
        return out

    def _pts(self, ts: int) -> int:
        """RTP timestamp (32 bits, wrapping) → pts, 0 at the first frame: the signed 32-bit steps
        between timestamps added up, so a wrap and B-frames' backward steps both come out right.
        After a new sender (whose timestamps start anywhere) pts go on one frame past the largest."""
        last = self._last_ts
        if last is None:
            pts = self._pts_max + (self._step or 3600) if self._rebase else 0
            self._rebase = False
        else:
            step = ((ts - last + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            pts = self._pts_last + step
            if step > 0:
                self._step = step
        self._last_ts, self._pts_last = ts, pts
        if pts > self._pts_max:
            self._pts_max = pts
        return pts

    def _skip_text(self, buf: bytes, pos: int) -> int | None:
        """At a non-"$" byte: skip an RTSP message (a keepalive's reply, a request from the
        server) or garbage, up to the next "$". Returns where the message ends (past ``buf`` when
        its body is still to come); None when its head is not all here yet, or ``buf`` ends in what
        may be the first bytes of one ("RTS"): taken for garbage, the rest of its head would be
        skipped to the next "$", which may be in its body, read as frames from then on (found by
        test_fuzz_camera_input's reads of other sizes). A body over MAX_BODY_BYTES raises
        RtspProtocolError."""
        start = buf[pos:pos + 256]
        if start.startswith(b"RTSP/") or _REQUEST_LINE.match(start):
            head_end = buf.find(b"\r\n\r\n", pos, pos + MAX_HEADER_BYTES + 4)
            if head_end < 0:
                return None if len(buf) - pos < MAX_HEADER_BYTES else len(buf)
            m = re.search(rb"(?i)\r\ncontent-length:([^\r\n]*)", buf[pos:head_end])
            return head_end + 4 + (_content_length(m[1]) if m else 0)
        if len(start) < 256 and _MESSAGE_PREFIX.fullmatch(start):
            return None  # a reply's or request's first bytes, cut off by the read: wait for the rest
        nxt = buf.find(b"$", pos + 1)
        nxt = len(buf) if nxt < 0 else nxt
        self.garbage_bytes += nxt - pos
        return nxt
