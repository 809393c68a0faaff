"""A minimal blocking RTSP/TCP client: the handshake, then raw interleaved RTP packets.

For tests and benchmarks that need to see the wire (status codes, sequence numbers, NAL types)
or to read many streams without paying for a demuxer. Not for production ingest.
"""

from __future__ import annotations

import hashlib
import re
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class RtpPacket:
    channel: int
    marker: bool
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes

    @property
    def nal_type(self) -> int:
        """NAL unit type carried (for FU-A, the fragmented unit's type)."""
        t = self.payload[0] & 0x1F
        return self.payload[1] & 0x1F if t == 28 else t


class RtspClient:
    def __init__(self, url: str, timeout: float = 5.0, rcvbuf: int | None = None) -> None:
        parts = urlsplit(url)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((parts.hostname or "127.0.0.1", parts.port or 554))
        self.buf = bytearray()
        self.cseq = 0
        self.session: str | None = None
        self.challenge: dict[str, str] | None = None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RtspClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------- wire
    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("server closed the connection")
        self.buf += data

    def _authorization(self, method: str, uri: str) -> str | None:
        if self.challenge is None or self.user is None:
            return None
        realm, nonce = self.challenge.get("realm", ""), self.challenge.get("nonce", "")

        def md5(s: str) -> str:
            return hashlib.md5(s.encode()).hexdigest()  # noqa: S324 - RFC 2617

        response = md5(f"{md5(f'{self.user}:{realm}:{self.password}')}:{nonce}:{md5(f'{method}:{uri}')}")
        return f'Digest username="{self.user}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{response}"'

    def request(self, method: str, uri: str | None = None, headers: dict[str, str] | None = None,
                retry_auth: bool = True) -> Response:
        uri = uri or self.url
        self.cseq += 1
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self.cseq}", "User-Agent: camera-hub-test"]
        if self.session:
            lines.append(f"Session: {self.session}")
        auth = self._authorization(method, uri)
        if auth:
            lines.append(f"Authorization: {auth}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        resp = self._read_response()
        if resp.status == 401 and retry_auth and self.user is not None and self.challenge is None:
            header = resp.headers.get("www-authenticate", "")
            self.challenge = {m[1].lower(): m[2] for m in re.finditer(r'(\w+)="([^"]*)"', header)}
            return self.request(method, uri, headers, retry_auth=False)
        return resp

    def _read_response(self) -> Response:
        while True:
            self._skip_interleaved()
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0 and self.buf[:1] != b"$":
                break
            self._fill()
        head = bytes(self.buf[:end]).decode("utf-8", "replace").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in head[1:])}
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < end + 4 + length:
            self._fill()
        body = bytes(self.buf[end + 4:end + 4 + length])
        del self.buf[:end + 4 + length]
        return Response(int(head[0].split()[1]), headers, body)

    def _skip_interleaved(self) -> None:
        while self.buf[:1] == b"$" and len(self.buf) >= 4:
            size = int.from_bytes(self.buf[2:4], "big")
            if len(self.buf) < 4 + size:
                return
            del self.buf[:4 + size]

    def play(self) -> Response:
        """DESCRIBE, SETUP (TCP interleaved 0-1), PLAY; raises if any step fails."""
        for step in ("DESCRIBE", "SETUP", "PLAY"):
            if step == "SETUP":
                resp = self.request("SETUP", self.url.rstrip("/") + "/trackID=0",
                                    {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
                self.session = resp.headers.get("session", "").split(";")[0] or None
            else:
                resp = self.request(step, headers={"Accept": "application/sdp"} if step == "DESCRIBE" else None)
            if resp.status != 200:
                raise ConnectionError(f"{step} answered {resp.status}")
        return resp

    def read_packet(self) -> RtpPacket:
        """The next interleaved RTP packet (raises TimeoutError, EOFError)."""
        while True:
            while len(self.buf) < 4:
                self._fill()
            if self.buf[:1] != b"$":  # a response to a keepalive: skip it
                self._read_response()
                continue
            size = int.from_bytes(self.buf[2:4], "big")
            while len(self.buf) < 4 + size:
                self._fill()
            pkt = bytes(self.buf[4:4 + size])
            channel = self.buf[1]
            del self.buf[:4 + size]
            return RtpPacket(channel, bool(pkt[1] & 0x80), int.from_bytes(pkt[2:4], "big"),
                             int.from_bytes(pkt[4:8], "big"), int.from_bytes(pkt[8:12], "big"), pkt[12:])

    def drain(self) -> int:
        """Read whatever is there (for load tests); bytes read, 0 on timeout. Raises EOFError."""
        try:
            data = self.sock.recv(262144)
        except TimeoutError:
            return 0
        if not data:
            raise EOFError("server closed the connection")
        return len(data)
