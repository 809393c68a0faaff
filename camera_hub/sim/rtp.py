"""RFC 6184 packetisation, done once per encoded scene, and the per-session stamping.

Each frame becomes one byte string holding all its RTP packets, each already framed for
RTSP interleaved transport (``$``, channel, length; RFC 2326 §10.12). Serving a frame to a
session is then: copy that string, write sequence number, timestamp and SSRC into each packet
header, and hand the result to the socket in one write.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

MTU = 1400  # RTP payload bytes per packet (before the 12-byte RTP header)
PAYLOAD_TYPE = 96
FU_A = 28
_SEQ_TS_SSRC = struct.Struct("!HII")  # at byte 2 of the RTP header
_RTP_AT = 4  # the RTP header starts after the 4-byte interleaved frame header


@dataclass(frozen=True, slots=True)
class RtpFrame:
    data: bytes  # interleaved-framed RTP packets, seq/timestamp/SSRC zero
    offsets: tuple[int, ...]  # where each packet's interleaved header starts
    keyframe: bool


def _packet(payload: bytes, marker: bool) -> bytes:
    rtp = bytes((0x80, PAYLOAD_TYPE | (0x80 if marker else 0))) + bytes(10) + payload
    return b"$\x00" + len(rtp).to_bytes(2, "big") + rtp


def packetize(nals: list[bytes], keyframe: bool, mtu: int = MTU) -> RtpFrame:
    """One access unit as RTP packets: small NAL units whole, large ones split into FU-A."""
    packets: list[bytes] = []
    for n, nal in enumerate(nals):
        last_nal = n == len(nals) - 1
        if len(nal) <= mtu:
            packets.append(_packet(nal, last_nal))
            continue
        header, body = nal[0], nal[1:]
        indicator = bytes(((header & 0xE0) | FU_A,))
        chunk = mtu - 2
        for start in range(0, len(body), chunk):
            first, last = start == 0, start + chunk >= len(body)
            fu_header = (0x80 if first else 0) | (0x40 if last else 0) | (header & 0x1F)
            packets.append(_packet(indicator + bytes((fu_header,)) + body[start:start + chunk], last_nal and last))
    offsets, pos = [], 0
    for p in packets:
        offsets.append(pos)
        pos += len(p)
    return RtpFrame(b"".join(packets), tuple(offsets), keyframe)


def stamp(frame: RtpFrame, seq: int, timestamp: int, ssrc: int, channel: int = 0) -> bytearray:
    """A session's copy of ``frame``: packets numbered from ``seq``, all with ``timestamp``."""
    buf = bytearray(frame.data)
    pack = _SEQ_TS_SSRC.pack_into
    ts = timestamp & 0xFFFFFFFF
    for k, off in enumerate(frame.offsets):
        pack(buf, off + _RTP_AT + 2, (seq + k) & 0xFFFF, ts, ssrc)
        if channel:
            buf[off + 1] = channel
    return buf


def corrupt(buf: bytearray, frame: RtpFrame) -> None:
    """Overwrite every slice packet's payload (after its NAL/FU headers) with random bytes.
    Parameter sets stay intact: the stream stays a stream whose pictures do not decode."""
    for off in frame.offsets:
        if buf[off + _RTP_AT + 12] & 0x1F in (7, 8):
            continue
        size = int.from_bytes(buf[off + 2:off + 4], "big")
        start, end = off + _RTP_AT + 12 + 2, off + _RTP_AT + size
        if end > start:
            buf[start:end] = os.urandom(end - start)
