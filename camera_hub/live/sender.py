"""The RTP sending of a live viewer: aiortc's, with the work that is the same for every viewer
of a camera done once per frame instead of once per viewer and packet, and done in the thread that
reads the camera instead of an event loop task woken for every frame.

aiortc's loop (``RTCRtpSender._run_rtp``) does, for each viewer and frame: wake its task, split the
access unit into NAL units and packetise it (``H264Encoder.pack``), then for each packet make an
``RtpPacket``, read the clock twice (``datetime``), serialise the header and its extensions,
SRTP-protect it and send it down three coroutine layers (DTLS transport, ICE transport, aioice).
Here, once the viewer is connected (:meth:`~camera_hub.live.media.ViewerTrack.run_direct`):

- each frame is sent from the camera's fan-out, in the thread that read it: waking the event
  loop for each frame (and passing the GIL to it) cost more than the sending;
- each frame is packetised once per camera (:attr:`~camera_hub.live.media.Frame.payloads`, the same
  STAP-A/FU-A payloads aiortc makes), shared by all its viewers;
- the header extensions (``mid``, ``abs-send-time``) are serialised by aiortc once per viewer and
  the send time written in once per frame: a frame's packets leave in one burst, so one send time
  serves them all;
- per packet only what differs per viewer: the 12-byte header (sequence number, SSRC), SRTP
  (libsrtp, each viewer has its own keys) and ``sendto`` on the ICE pair's UDP socket (the socket
  itself, non-blocking: asyncio's transport is the loop's alone; a full socket buffer loses the
  packet, as the network would, and the viewer's NACK brings it back).

Everything else stays aiortc's, on the event loop: RTCP (sender reports from the counters kept
here, receiver reports, NACK answered by RTX from the history kept here), DTLS, ICE and consent.
The SRTP session is the one thing both threads use: :func:`_locked_srtp` puts a lock around it.
This uses aiortc's private sender attributes; :func:`install` checks they are there and otherwise
leaves aiortc's own loop in place (another aiortc version). The DTLS transport's own byte counters
(``getStats()`` "transport") do not count these packets; the sender's do.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time
import types
from typing import Any

from aioice.ice import StunProtocol
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions
from aiortc.utils import random16, random32

from camera_hub.live.media import Frame

log = logging.getLogger(__name__)

_S = "_RTCRtpSender__"
_ATTRS = ("rtp_started", "rtp_exited", "track", "rtp_history", "rtp_header_extensions_map", "mid",
          "ntp_timestamp", "rtp_timestamp", "octet_count", "packet_count", "rtx_payload_type",
          "rtx_sequence_number")
_HEADER = struct.Struct("!BBHLL")
_EXT = struct.Struct("!HH")
_OSN = struct.Struct("!H")
_CONNECTED = State.CONNECTED
_NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)


def install(sender: Any) -> bool:
    """Make ``sender`` (an ``RTCRtpSender`` whose track is a ViewerTrack, before it starts) send
    this way. False, and aiortc's loop kept, when the sender lacks what this needs."""
    if not all(hasattr(sender, _S + a) for a in _ATTRS) or not hasattr(sender, "_ssrc") \
            or not hasattr(getattr(sender, _S + "track"), "run_direct") or not hasattr(sender.transport, "_state"):
        log.warning("live view: this aiortc's RTCRtpSender is not the one the lean send loop knows; "
                    "using aiortc's own (more CPU per viewer)")
        return False
    sender._run_rtp = types.MethodType(_run_rtp, sender)
    sender._retransmit = types.MethodType(_retransmit, sender)
    return True


class _LockedSrtp:
    """A libsrtp session used from two threads: RTP from the camera's (which holds :attr:`lock`
    for a whole frame and calls :attr:`session` itself), RTCP and RTX from the loop."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.lock = threading.Lock()

    def protect(self, data: bytes) -> bytes:
        with self.lock:
            return self.session.protect(data)

    def protect_rtcp(self, data: bytes) -> bytes:
        with self.lock:
            return self.session.protect_rtcp(data)


def _locked_srtp(transport: Any) -> None:
    """On the event loop, before any send from another thread."""
    if transport._tx_srtp is not None and not isinstance(transport._tx_srtp, _LockedSrtp):
        transport._tx_srtp = _LockedSrtp(transport._tx_srtp)


def _pair(transport: Any) -> tuple[Any, socket.socket, Any] | None:
    """(SRTP session, the selected pair's UDP socket, the remote address) of a DTLS transport
    while it is connected. Live view has no TURN server, so the pair is a host one: its protocol
    is aioice's plain UDP one, whose asyncio transport holds the socket. (aioice nominates one
    pair, and live view has no ICE restarts: the pair a viewer connects on is its pair.)"""
    if transport._state is not _CONNECTED or transport._tx_srtp is None:
        return None
    pair = transport.transport._connection._nominated.get(1)
    if pair is None or type(pair.protocol) is not StunProtocol:
        return None
    sock = getattr(getattr(pair.protocol, "transport", None), "_sock", None)
    if not isinstance(sock, socket.socket):
        return None
    return transport._tx_srtp, sock, pair.remote_addr


def _extension_template(extensions: Any, mid: str | None) -> tuple[bytearray, int | None]:
    """The header extension block aiortc would write for this sender (``mid`` and abs-send-time,
    RFC 8285), serialised by aiortc once; and where its three abs-send-time bytes are, to be
    filled in per frame (None when abs-send-time was not negotiated)."""
    profile, low = extensions.set(HeaderExtensions(mid=mid, abs_send_time=0))
    if not low:
        return bytearray(), None
    _, high = extensions.set(HeaderExtensions(mid=mid, abs_send_time=0xFFFFFF))
    block = bytearray(_EXT.pack(profile, len(low) >> 2) + low)
    differ = [i for i, (x, y) in enumerate(zip(low, high, strict=True)) if x != y]
    return block, (_EXT.size + differ[0]) if differ else None


class _Stream:
    """One viewer's RTP stream: its sequence numbers, timestamp origin and counters, and the
    transport found when it connected. :meth:`send` runs in the camera's thread (the fan-out's,
    under the viewer's lock), once per frame: what it does each time is kept small, as the first
    viewer's cost is mostly the frame's one pass through this code with cold caches."""

    def __init__(self, sender: Any, codec: Any, found: tuple[Any, socket.socket, Any]) -> None:
        self.sender = sender
        self.dtls = sender.transport
        self.srtp, self.sock, self.addr = found
        self.history: dict[int, tuple[int, int, bytes]] = getattr(sender, _S + "rtp_history")
        self.ext, self.abs_at = _extension_template(getattr(sender, _S + "rtp_header_extensions_map"),
                                                    getattr(sender, _S + "mid"))
        self.b0 = 0x90 if self.ext else 0x80  # version 2, and the extension bit
        self.pt, self.ssrc = codec.payloadType, sender._ssrc
        self.seq = random16() % 32768  # as aiortc: far from the wrap, which upsets some SRTP receivers
        self.origin = random32()
        self.octets = self.packets = 0

    def send(self, frame: Frame, ticks: int) -> bool:
        """Send ``frame`` at RTP time ``ticks``; False when the connection is gone."""
        sender = self.sender
        if self.dtls._state is not _CONNECTED:
            return False
        if not sender._enabled or not frame.payloads:
            return True
        timestamp = (self.origin + ticks) & 0xFFFFFFFF
        ntp = int((time.time() + _NTP_EPOCH_OFFSET) * (1 << 32))  # aiortc's clock.current_ntp_time(), less work
        if self.abs_at is not None:
            self.ext[self.abs_at:self.abs_at + 3] = ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
        ext = bytes(self.ext)
        head_len = 12 + len(ext)
        b0, pt, ssrc, srtp, sock, addr = self.b0, self.pt, self.ssrc, self.srtp, self.sock, self.addr
        last = len(frame.payloads) - 1
        seq, history = self.seq, self.history
        protect = srtp.session.protect
        try:
            with srtp.lock:  # once a frame, not once a packet
                for i, payload in enumerate(frame.payloads):
                    data = _HEADER.pack(b0, pt | (0x80 if i == last else 0), seq, timestamp, ssrc) + ext + payload
                    history[seq % RTP_HISTORY_SIZE] = (seq, head_len, data)
                    try:
                        sock.sendto(protect(data), addr)
                    except BlockingIOError:  # a full socket buffer: lost, as on the wire
                        pass
                    self.octets += len(payload)
                    seq = (seq + 1) & 0xFFFF
        except OSError:  # the socket closed under us
            return False
        finally:
            self.seq = seq
        self.packets += last + 1
        # what RTCP sender reports and getStats read (on the loop: plain attributes, whole values)
        setattr(sender, _S + "ntp_timestamp", ntp)
        setattr(sender, _S + "rtp_timestamp", timestamp)
        setattr(sender, _S + "octet_count", self.octets)
        setattr(sender, _S + "packet_count", self.packets)
        return True


async def _run_rtp(self: Any, codec: Any) -> None:
    """aiortc starts this when DTLS is connected; it ends with the track or the connection."""
    getattr(self, _S + "rtp_started").set()
    track = getattr(self, _S + "track")
    try:
        _locked_srtp(self.transport)
        found = _pair(self.transport)
        if found is None:
            raise ConnectionError("not connected, or not over a host UDP pair")
        await track.run_direct(_Stream(self, codec, found).send)
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
    srtp, sock, addr = found
    try:
        sock.sendto(srtp.protect(data), addr)
    except OSError:  # a full buffer, or the socket closing: the viewer asks again or is gone
        pass
