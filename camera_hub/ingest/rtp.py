"""RTP over UDP for the native receiver (:mod:`camera_hub.ingest.rtsp`): client port pairs from
a configured range, a small bounded jitter buffer, RTCP (receiver reports out; sender reports and
BYE in). RFC 3550: the reception statistics follow its appendix A.1, A.3 and A.8.

Why a jitter buffer at all: over UDP, packets of one frame can arrive out of order (two paths, a
switch's queues), and the depacketiser drops a frame at the first sequence gap. The buffer holds
packets that arrive ahead of a gap for at most :data:`JITTER_DELAY_S` or :data:`JITTER_PACKETS`
packets, then gives up on the missing ones (counted as lost by the depacketiser). Over TCP
nothing is reordered and this module is not used.
"""

from __future__ import annotations

import errno
import os
import random
import socket
import struct

# A sequence number this far ahead of the expected one is a restart of the sender (a new
# sequence), not a loss; one that far behind is a stale duplicate (RFC 3550 A.1's MAX_DROPOUT).
MAX_DROPOUT = 3000
# The jitter buffer's bounds per camera: at most this many packets held (~180 KB of 1,400-byte
# payloads), none longer than this. A frame at 25 fps lasts 40 ms; 200 ms covers the reordering
# seen on real networks without holding a stream back noticeably (keyframes are sampled every 2 s).
JITTER_PACKETS = 128
JITTER_DELAY_S = 0.2
# Receiver reports: RFC 3550's minimum interval (5 s), randomised by 0.5-1.5 (its section 6.3.1).
RTCP_INTERVAL_S = 5.0
# Each UDP socket's kernel receive buffer: a 4K camera's IDR (1-2 MB) arrives in a burst of a few
# milliseconds while the reactor may be decoding another camera's keyframe. The kernel caps it at
# net.core.rmem_max (docs/operations.md); it is the only per-camera buffer that is not ours.
UDP_RCVBUF = 2 * 1024 * 1024
CNAME = b"camera-hub"


def bind_pair(family: int, host: str, low: int, high: int, *, rng: random.Random | None = None
              ) -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on ``host``: RTP on an even port and RTCP on the next one (RFC 3550
    section 11), both in [low, high]. Tries every even port once, starting at a random one (several worker
    processes on one host share the range). Raises ``OSError(EADDRINUSE)`` when none is free."""
    first = low + (low & 1)
    pairs = max(0, (high - first + 1) // 2)
    if pairs == 0:
        raise OSError(errno.EINVAL, f"no even UDP port in {low}-{high}")
    start = (rng or random).randrange(pairs)
    for i in range(pairs):
        port = first + 2 * ((start + i) % pairs)
        socks: list[socket.socket] = []
        try:
            for p in (port, port + 1):
                s = socket.socket(family, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((host, p))
        except OSError:
            for s in socks:
                s.close()
            continue
        for s in socks:
            s.setblocking(False)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
            except OSError:
                pass
        return socks[0], socks[1]
    raise OSError(errno.EADDRINUSE, f"no free UDP port pair in {low}-{high}")


class JitterBuffer:
    """Puts RTP packets back in sequence order. :meth:`push` returns the packets that are now in
    order (usually just the one pushed); packets after a gap wait until the gap fills, or until
    the oldest has waited ``max_delay_s`` or ``max_packets`` are held, when the gap is given up
    (the depacketiser sees the sequence jump and drops the frame it broke). A packet behind what
    was already handed on (late past the wait, or a duplicate) is dropped and counted."""

    def __init__(self, max_packets: int = JITTER_PACKETS, max_delay_s: float = JITTER_DELAY_S) -> None:
        self.max_packets, self.max_delay_s = max_packets, max_delay_s
        self._next: int | None = None  # the sequence number to hand on next
        self._held: dict[int, tuple[float, object]] = {}  # seq -> (arrival, item)
        self.reordered = 0  # packets that arrived after a later one and were put back in order
        self.late = 0  # packets dropped: behind what was already handed on, or duplicates
        self.skipped = 0  # sequence numbers given up on (the depacketiser counts them as lost too)

    def __len__(self) -> int:
        return len(self._held)

    def reset(self) -> None:
        """A new sender (SSRC): forget the sequence (what was held belonged to the old one)."""
        self._next = None
        self._held.clear()

    def push(self, seq: int, item: object, mono: float) -> list[object]:
        nxt = self._next
        if nxt is None or (not self._held and seq == nxt):  # the usual case: in order, nothing held
            self._next = (seq + 1) & 0xFFFF
            return [item]
        ahead = (seq - nxt) & 0xFFFF
        if seq in self._held or 0x10000 - MAX_DROPOUT < ahead:  # a duplicate, or behind: too late
            self.late += 1
            return []
        if ahead >= MAX_DROPOUT:  # far ahead or far behind: the sender restarted its sequence
            out = [it for _, (_, it) in sorted(self._held.items(), key=lambda kv: (kv[0] - nxt) & 0xFFFF)]
            self._held.clear()
            self._next = (seq + 1) & 0xFFFF
            return [*out, item]
        if ahead == 0:  # it fills the gap that held the others back
            self.reordered += 1
            self._next = (seq + 1) & 0xFFFF
            return [item, *self._drain()]
        self._held[seq] = (mono, item)
        return self.expire(mono)

    def expire(self, mono: float) -> list[object]:
        """Give up on gaps that held packets too long or too many; what is now in order."""
        out: list[object] = []
        while self._held and (len(self._held) > self.max_packets
                              or min(t for t, _ in self._held.values()) <= mono - self.max_delay_s):
            nxt = self._next
            assert nxt is not None
            first = min(self._held, key=lambda s: (s - nxt) & 0xFFFF)
            self.skipped += (first - nxt) & 0xFFFF
            self._next = first
            out += self._drain()
        return out

    def _drain(self) -> list[object]:
        out = []
        while self._next is not None and self._next in self._held:
            out.append(self._held.pop(self._next)[1])
            self._next = (self._next + 1) & 0xFFFF
        return out


class Reception:
    """RFC 3550 reception statistics of one sender, for the receiver report's block."""

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.started = False
        self.base_seq = self.max_seq = self.cycles = 0
        self.received = self.expected_prior = self.received_prior = 0
        self.jitter = 0.0
        self._transit: float | None = None

    def update(self, seq: int, ts: int, arrival_s: float) -> None:
        if not self.started:
            self.started, self.base_seq, self.max_seq = True, seq, seq
            self.cycles = self.received = self.expected_prior = self.received_prior = 0
        delta = (seq - self.max_seq) & 0xFFFF
        if delta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += 0x10000
            self.max_seq = seq
        elif delta <= 0x10000 - 100:  # a jump: the sender restarted; start counting anew
            self.started = False
            self.update(seq, ts, arrival_s)
            return
        self.received += 1
        transit = arrival_s * self.clock_rate - ts
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < 1 << 31:  # not a 32-bit wrap of the timestamp
                self.jitter += (d - self.jitter) / 16.0
        self._transit = transit

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def lost(self) -> int:
        """Cumulative packets lost (expected less received; 0 while duplicates outnumber losses)."""
        return max(0, self.extended_max - self.base_seq + 1 - self.received) if self.started else 0

    def block(self, ssrc: bytes, lsr: bytes, since_sr_s: float | None) -> bytes:
        """One report block (24 bytes); updates the interval counts for the fraction lost."""
        expected = self.extended_max - self.base_seq + 1
        exp_int, rec_int = expected - self.expected_prior, self.received - self.received_prior
        self.expected_prior, self.received_prior = expected, self.received
        lost_int = exp_int - rec_int
        fraction = 0 if exp_int <= 0 or lost_int <= 0 else min(255, (lost_int << 8) // exp_int)
        cumulative = min(self.lost, 0x7FFFFF)
        dlsr = 0 if since_sr_s is None else min(0xFFFFFFFF, int(since_sr_s * 65536))
        return (ssrc + struct.pack(">III", (fraction << 24) | cumulative, self.extended_max & 0xFFFFFFFF,
                                   min(int(self.jitter), 0xFFFFFFFF)) + lsr + struct.pack(">I", dlsr))


def receiver_report(own_ssrc: bytes, block: bytes | None) -> bytes:
    """A compound RTCP packet: RR (with ``block`` when a sender was heard) and SDES CNAME."""
    blocks = block or b""
    rr = struct.pack(">BBH", 0x80 | (1 if block else 0), 201, (4 + len(blocks)) // 4) + own_ssrc + blocks
    item = bytes((1, len(CNAME))) + CNAME
    chunk = own_ssrc + item + b"\x00" * (4 - len(item) % 4)  # an end item, padded to 32 bits
    sdes = struct.pack(">BBH", 0x81, 202, len(chunk) // 4) + chunk
    return rr + sdes


def own_ssrc() -> bytes:
    return os.urandom(4)


def parse_rtcp(data: bytes) -> list[tuple[int, int, bytes]]:
    """The packets of a compound RTCP packet: (packet type, count field, body after the 4-byte
    header). Stops at the first malformed one."""
    out: list[tuple[int, int, bytes]] = []
    i, n = 0, len(data)
    while i + 4 <= n:
        b0, pt = data[i], data[i + 1]
        end = i + 4 + 4 * ((data[i + 2] << 8) | data[i + 3])
        if b0 >> 6 != 2 or end > n:
            break
        out.append((pt, b0 & 0x1F, data[i + 4:end]))
        i = end
    return out


def ntp_middle(body: bytes) -> bytes:
    """A sender report body's NTP timestamp, middle 32 bits (the RR's LSR field)."""
    return body[6:10]
