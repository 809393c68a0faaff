"""Native RTSP/TCP receiver: the handshake, interleaved RTP, H.264/H.265 depacketisation.

Why not FFmpeg's RTSP demuxer: with keyframe-only sampling, decoding costs one picture per
sampling interval and receiving the stream costs the rest. FFmpeg reads each camera in its own
blocking loop (a poll and two small reads per RTP packet, an AVPacket per slice, a thread
wake-up per packet); here :meth:`RtspReceiver.open` does the handshake in the camera's thread,
then :meth:`RtspReceiver.feed` turns whatever the socket held into whole access units in
Annex B (the form the ring, the clip writer and the decoder share), called by the worker's one
:class:`~camera_hub.ingest.reactor.Reactor` thread for every camera. Measured side by side in
``benchmarks/ingest_capacity.py``.

Scope: RTSP 1.0 over TCP (``rtsp://``), one video track, H.264 (RFC 6184: single NAL, STAP-A,
FU-A) and H.265 (RFC 7798: single NAL, AP, FU; no DONL), Basic and Digest (RFC 2617, with or
without ``qop=auth``) authentication, keepalive by OPTIONS at half the session timeout.
Anything else (``rtsps://``, RTP over UDP) goes through FFmpeg (:mod:`camera_hub.ingest.source`).
The password only goes into the Authorization header, never into an error or the request line.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from urllib.parse import unquote, urljoin, urlsplit

from camera_hub.annexb import START
from camera_hub.events import EncodedPacket, StreamInfo

USER_AGENT = "camera-hub"
RECV_BYTES = 256 * 1024
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


class RtspStatusError(Exception):
    """The server answered a request with a non-2xx status."""

    def __init__(self, method: str, status: int) -> None:
        super().__init__(f"RTSP {method} answered {status}")
        self.method, self.status = method, status


class RtspProtocolError(Exception):
    """The server said something this reader cannot use (no H.264/H.265 track, bad reply), or
    sent more than it may: a frame or an RTSP message past the bounds (MAX_AU_*, MAX_*_BYTES)."""


@dataclass(frozen=True, slots=True)
class Track:
    codec: str  # "h264" | "hevc"
    payload_type: int
    clock_rate: int
    control: str
    extradata: bytes | None  # Annex B parameter sets from the SDP's fmtp, if it gives them


def parse_sdp(sdp: str, base: str) -> Track:
    """The first H.264 or H.265 video track of a session description."""
    media: list[list[str]] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
    for lines in media:
        if not lines[0].startswith("m=video"):
            continue
        rtpmap = {m[1]: (m[2].upper(), int(m[3])) for ln in lines
                  if (m := re.match(r"a=rtpmap:([0-9]{1,9})\s+([\w.-]+)/([0-9]{1,9})(?![0-9])", ln))}
        for pt, (name, clock) in rtpmap.items():
            if name not in ("H264", "H265", "HEVC") or clock <= 0:
                continue
            fmtp = next((ln.split(None, 1)[1] for ln in lines if ln.startswith(f"a=fmtp:{pt} ")), "")
            params = dict(p.strip().partition("=")[::2] for p in fmtp.split(";") if "=" in p)
            control = next((ln[len("a=control:"):].strip() for ln in lines if ln.startswith("a=control:")), "")
            codec = "h264" if name == "H264" else "hevc"
            return Track(codec, int(pt), clock, _control_url(base, control), _sprop(codec, params))
    raise RtspProtocolError("no H.264 or H.265 video track in the session description")


def _control_url(base: str, control: str) -> str:
    if not control or control == "*":
        return base
    if re.match(r"^rtsps?://", control):
        return control
    return urljoin(base if base.endswith("/") else base + "/", control)


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


class _Auth:
    """Basic or Digest credentials for every request after the first 401."""

    def __init__(self, user: str | None, password: str | None) -> None:
        self.user, self._password = user, password
        self._scheme = ""
        self._params: dict[str, str] = {}
        self._nc = 0

    def challenge(self, header: str) -> bool:
        """Take a WWW-Authenticate challenge; False when there is nothing to answer it with."""
        if self.user is None or self._scheme:
            return False
        self._scheme = header.split(None, 1)[0].lower() if header else ""
        self._params = _auth_params(header)
        return self._scheme in ("basic", "digest")

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
        fields = f'username="{self.user}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
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

    Raises ``ConnectionRefusedError``, ``TimeoutError`` (connect/handshake/read),
    ``EOFError``, :class:`RtspStatusError`, :class:`RtspProtocolError`: the caller classifies.
    """

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0, read_timeout_s: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "rtsp":
            raise ValueError("the native receiver reads rtsp:// only")
        self._auth = _Auth(unquote(parts.username) if parts.username else None,
                           unquote(parts.password) if parts.password else None)
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
        self._first_ts: int | None = None
        self._last_ts = 0
        self._wraps = 0

    # ------------------------------------------------------------------ handshake
    def open(self) -> StreamInfo:
        self._sock = socket.create_connection((self._host, self._port), timeout=self._connect_timeout_s)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        headers, body = self._request("DESCRIBE", self.url, {"Accept": "application/sdp"})
        base = headers.get("content-base") or headers.get("content-location") or self.url
        track = self.track = parse_sdp(body.decode("utf-8", "replace"), base)
        headers, _ = self._request("SETUP", track.control, {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        session = headers.get("session", "")
        self._session = session.split(";")[0].strip() or None
        if m := re.search(r"timeout=([0-9]{1,9})(?![0-9])", session):
            self._keepalive_s = max(5.0, int(m[1]) / 2)
        if m := re.search(r"interleaved=([0-9]{1,3})(?![0-9])", headers.get("transport", "")):
            self.channel = int(m[1])
        self._request("PLAY", base if base.startswith("rtsp") else self.url, {"Range": "npt=0.000-"})
        self._sock.settimeout(self._read_timeout_s)
        self._next_keepalive = time.monotonic() + self._keepalive_s
        self.depacketizer = Depacketizer(track.codec)
        self.info = StreamInfo(codec=track.codec, width=0, height=0, extradata=track.extradata,
                               time_base=Fraction(1, track.clock_rate))
        return self.info

    def close(self) -> None:
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
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in head[1:])}
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

    def packets(self) -> Iterator[EncodedPacket]:
        """Blocking: whole access units as they arrive (a worker reads through the
        :class:`~camera_hub.ingest.reactor.Reactor` instead, many sessions on one thread)."""
        yield from self.feed(b"", time.time())  # what came with the PLAY reply
        while True:
            self.keepalive(time.monotonic())
            chunk = self.sock.recv(RECV_BYTES)
            if not chunk:
                raise EOFError("server closed the connection")
            yield from self.feed(chunk, time.time())

    def keepalive(self, mono: float) -> None:
        """Servers end a session that sends no request within its timeout (we send no RTCP)."""
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
                    hdr = pos + 16 + 4 * (b0 & 0x0F)
                    if b0 & 0x10 and hdr + 4 <= end:  # header extension
                        hdr += 4 + 4 * ((buf[hdr + 2] << 8) | buf[hdr + 3])
                    stop = end - (buf[end - 1] if b0 & 0x20 else 0)  # padding
                    au = depack.push(buf[hdr:stop] if hdr < stop else b"", (buf[pos + 6] << 8) | buf[pos + 7],
                                     int.from_bytes(buf[pos + 8:pos + 12], "big"), bool(b1 & 0x80))
                    if au is not None:
                        out.append(EncodedPacket(au[0], (pts := self._pts(au[1])), pts, au[2], tb, now))
            pos = end
        self._buf = buf[pos:] if pos < n else b""
        return out

    def _pts(self, ts: int) -> int:
        """RTP timestamp (32 bits, wrapping) → pts from 0 at the first frame."""
        if self._first_ts is None:
            self._first_ts = ts
        elif ts < self._last_ts and self._last_ts - ts > 1 << 31:
            self._wraps += 1
        self._last_ts = ts
        return ts + (self._wraps << 32) - self._first_ts

    def _skip_text(self, buf: bytes, pos: int) -> int | None:
        """At a non-"$" byte: skip an RTSP message (a keepalive's reply, a request from the
        server) or garbage, up to the next "$". Returns where the message ends (past ``buf`` when
        its body is still to come); None when its head is not all here yet. A body over
        MAX_BODY_BYTES raises RtspProtocolError."""
        if buf.startswith(b"RTSP/", pos) or re.match(rb"[A-Z_]+ \S+ RTSP/", buf[pos:pos + 256]):
            head_end = buf.find(b"\r\n\r\n", pos, pos + MAX_HEADER_BYTES + 4)
            if head_end < 0:
                return None if len(buf) - pos < MAX_HEADER_BYTES else len(buf)
            m = re.search(rb"(?i)\r\ncontent-length:([^\r\n]*)", buf[pos:head_end])
            return head_end + 4 + (_content_length(m[1]) if m else 0)
        nxt = buf.find(b"$", pos + 1)
        nxt = len(buf) if nxt < 0 else nxt
        self.garbage_bytes += nxt - pos
        return nxt
