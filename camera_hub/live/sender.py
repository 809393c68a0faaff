"""The RTP send loop of a live viewer: aiortc's, with the work that is the same for every viewer
of a camera done once per frame instead of once per viewer and packet.

aiortc's loop (``RTCRtpSender._run_rtp``) does, for each viewer and frame: split the access unit
into NAL units and packetise it (``H264Encoder.pack``), then for each packet make an ``RtpPacket``,
read the clock twice (``datetime``), serialise the header and its extensions, SRTP-protect it and
send it down three coroutine layers (DTLS transport, ICE transport, aioice). Here:

- each frame is packetised once per camera (:attr:`~camera_hub.live.media.Frame.payloads`, the same
  STAP-A/FU-A payloads aiortc makes), shared by all its viewers;
- the header extensions (``mid``, ``abs-send-time``) are serialised once per frame: a frame's
  packets leave in one burst, so one send time serves them all;
- per packet only what differs per viewer: the 12-byte header (sequence number, SSRC), SRTP
  (libsrtp, each viewer has its own keys) and ``sendto`` on the ICE pair's socket.

Everything else stays aiortc's: RTCP (sender reports from the counters kept here, receiver
reports, NACK answered by RTX from the history kept here), DTLS, ICE and consent. The loop uses
aiortc's private sender attributes; :func:`install` checks they are there and otherwise leaves
aiortc's own loop in place (another aiortc version). The DTLS transport's own byte counters
(``getStats()`` "transport") do not count these packets; the sender's do.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import types
from typing import Any

from aioice.ice import StunProtocol
from aiortc import clock
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions
from aiortc.utils import random16, random32

log = logging.getLogger(__name__)

_S = "_RTCRtpSender__"
_ATTRS = ("rtp_started", "rtp_exited", "track", "rtp_history", "rtp_header_extensions_map", "mid",
          "ntp_timestamp", "rtp_timestamp", "octet_count", "packet_count", "rtx_payload_type",
          "rtx_sequence_number")
_HEADER = struct.Struct("!BBHLL")
_EXT = struct.Struct("!HH")
_OSN = struct.Struct("!H")


def install(sender: Any) -> bool:
    """Make ``sender`` (an ``RTCRtpSender`` whose track is a ViewerTrack, before it starts) run
    this loop. False, and aiortc's loop kept, when the sender lacks what the loop needs."""
    if not all(hasattr(sender, _S + a) for a in _ATTRS) or not hasattr(sender, "_ssrc") \
            or not hasattr(getattr(sender, _S + "track"), "next_frame"):
        log.warning("live view: this aiortc's RTCRtpSender is not the one the lean send loop knows; "
                    "using aiortc's own (more CPU per viewer)")
        return False
    sender._run_rtp = types.MethodType(_run_rtp, sender)
    sender._retransmit = types.MethodType(_retransmit, sender)
    return True


def _pair(transport: Any) -> tuple[Any, Any, Any] | None:
    """(SRTP session, the selected pair's socket, the pair) of a DTLS transport while it is
    connected; the socket is None when the pair is not a plain UDP one (a TURN relay has its own
    framing: the pair's protocol's ``send_data`` then)."""
    if transport.state != "connected" or transport._tx_srtp is None:
        return None
    pair = transport.transport._connection._nominated.get(1)
    if pair is None:
        return None
    sock = getattr(pair.protocol, "transport", None) if type(pair.protocol) is StunProtocol else None
    return transport._tx_srtp, sock, pair


async def _run_rtp(self: Any, codec: Any) -> None:
    getattr(self, _S + "rtp_started").set()
    track = getattr(self, _S + "track")
    history: dict[int, tuple[int, int, bytes]] = getattr(self, _S + "rtp_history")
    extensions = getattr(self, _S + "rtp_header_extensions_map")
    mid = getattr(self, _S + "mid")
    pt, ssrc = codec.payloadType, self._ssrc
    seq = random16() % 32768  # as aiortc: far from the wrap, which upsets some SRTP receivers
    origin = random32()
    octets = packets = 0
    try:
        while True:
            frame, ticks = await track.next_frame()
            if not self._enabled or not frame.payloads:
                continue
            found = _pair(self.transport)
            if found is None:
                raise ConnectionError("not connected")
            srtp, sock, pair = found
            addr = pair.remote_addr
            timestamp = (origin + ticks) & 0xFFFFFFFF
            ntp = clock.current_ntp_time()
            profile, values = extensions.set(HeaderExtensions(mid=mid, abs_send_time=(ntp >> 14) & 0xFFFFFF))
            b0 = 0x90 if values else 0x80  # version 2, and the extension bit
            ext = _EXT.pack(profile, len(values) >> 2) + values if values else b""
            head_len = 12 + len(ext)
            last = len(frame.payloads) - 1
            for i, payload in enumerate(frame.payloads):
                data = _HEADER.pack(b0, pt | (0x80 if i == last else 0), seq, timestamp, ssrc) + ext + payload
                history[seq % RTP_HISTORY_SIZE] = (seq, head_len, data)
                if sock is not None:
                    sock.sendto(srtp.protect(data), addr)
                else:
                    await pair.protocol.send_data(srtp.protect(data), pair.remote_addr)
                octets += len(payload)
                seq = (seq + 1) & 0xFFFF
            packets += last + 1
            # what RTCP sender reports and getStats read
            setattr(self, _S + "ntp_timestamp", ntp)
            setattr(self, _S + "rtp_timestamp", timestamp)
            setattr(self, _S + "octet_count", octets)
            setattr(self, _S + "packet_count", packets)
    except (asyncio.CancelledError, ConnectionError, MediaStreamError, OSError):
        pass
    except Exception:  # noqa: BLE001 - like aiortc's loop: rtp_exited must be set, or stop() hangs
        log.exception("live view: RTP send loop failed")
    finally:
        if getattr(self, _S + "track") is not None:
            getattr(self, _S + "track").stop()
        getattr(self, _S + "rtp_exited").set()


async def _retransmit(self: Any, sequence_number: int) -> None:
    """A NACKed packet again, as RTX (RFC 4588: the original sequence number in front of the
    payload, the RTX payload type, sequence and SSRC) when negotiated, else as it was."""
    kept = getattr(self, _S + "rtp_history").get(sequence_number % RTP_HISTORY_SIZE)
    found = _pair(self.transport)
    if kept is None or kept[0] != sequence_number or found is None:
        return
    _, head_len, data = kept
    rtx_pt = getattr(self, _S + "rtx_payload_type")
    if rtx_pt is not None:
        rtx_seq = getattr(self, _S + "rtx_sequence_number")
        setattr(self, _S + "rtx_sequence_number", (rtx_seq + 1) & 0xFFFF)
        data = (_HEADER.pack(data[0], (data[1] & 0x80) | rtx_pt, rtx_seq, *struct.unpack("!L", data[4:8]),
                             self._rtx_ssrc)
                + data[12:head_len] + _OSN.pack(sequence_number) + data[head_len:])
    srtp, sock, pair = found
    if sock is not None:
        sock.sendto(srtp.protect(data), pair.remote_addr)
    else:
        await pair.protocol.send_data(srtp.protect(data), pair.remote_addr)
