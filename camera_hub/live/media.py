"""One fan-out per camera, one track per viewer: encoded H.264 handed to aiortc as it is.

Nothing is decoded or encoded: each frame is packetised for RTP once, for all the camera's viewers
(:attr:`Frame.payloads`: STAP-A for small NAL units, FU-A for large ones, as aiortc's
``H264Encoder.pack`` does). Either way the viewer's PLI/FIR is ignored (there is no encoder to ask
for a keyframe), so every viewer starts on a keyframe: the camera's last GOP, which the
:class:`~camera_hub.ingest.ring.PacketRing` hands over when the :class:`LiveCamera` subscribes,
with SPS/PPS put in front of every IDR that comes without them (from the SDP's
``sprop-parameter-sets``).

Threads: the fan-out runs in the thread that reads the camera (the ring calls it under its lock),
and so does the sending, once a viewer's lean send loop (:mod:`camera_hub.live.sender`) is
connected (:meth:`ViewerTrack.run_direct`): no hand-off to the event loop per frame, which cost
more than the sending itself (benchmarks/README.md, "Where the first viewer's CPU goes"). Until
then, and for aiortc's own send loop (``recv()``, an ``av.Packet`` in Annex B with ``pts`` and
``time_base``), frames wait in the viewer's bounded queue and the loop is woken for each.

Timing: a new viewer gets the GOP so far at once, then live frames as they arrive. Frames a
viewer's sender is more than one frame behind on (the GOP at the start, a burst after a stall)
go out 1 ms apart in RTP time, so the browser shows them quickly and then plays live with no
extra delay; the others keep the camera's frame spacing.

B-frames: WebRTC has no reordering, so a camera whose frames come out of presentation order is
refused (:class:`Unsupported`, HTTP 422) and its viewers are ended if it starts sending them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av
from aiortc.codecs.h264 import PACKET_MAX, H264Encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from camera_hub.annexb import is_annexb, nal_units
from camera_hub.events import EncodedPacket, StreamInfo
from camera_hub.ingest.ring import PacketRing
from camera_hub.live.protocol import BFRAMES_MESSAGE, HEVC_MESSAGE

log = logging.getLogger(__name__)

CLOCK = 90_000  # RTP video clock
TIME_BASE = Fraction(1, CLOCK)
CATCH_UP_TICKS = 90  # 1 ms between frames a viewer is behind on
DEFAULT_STEP = 3_600  # 40 ms: after a timestamp jump (the camera reconnected)
MAX_STEP = 5 * CLOCK
MAX_QUEUE_FRAMES = 600  # a viewer further behind drops what it holds and waits for the next keyframe
REORDER_WINDOW = CLOCK  # a timestamp going back by up to 1 s is reordering (B-frames); more is a restart
REORDERS_TO_REFUSE = 2  # within one GOP


class Unsupported(Exception):
    """The camera's stream cannot be played over WebRTC as it is (HTTP 422)."""


@dataclass(frozen=True)
class Frame:
    """One access unit ready for viewers: Annex B, parameter sets in front of every IDR."""

    data: bytes
    ticks: int  # presentation time on the 90 kHz clock
    key: bool
    received_at: float

    @functools.cached_property
    def payloads(self) -> tuple[bytes, ...]:
        """Its RTP payloads, made at the first viewer's send and shared by all the camera's viewers
        (camera_hub/live/sender.py)."""
        return packetize(self.data)


def packetize(data: bytes) -> tuple[bytes, ...]:
    """The RTP payloads of an Annex B access unit, as aiortc's H.264 sender makes them (RFC 6184
    packetization-mode 1: STAP-A for small NAL units, FU-A for large ones). An access unit of one
    NAL unit larger than a packet (most P-frames) goes straight to aiortc's FU-A: its way there (a
    generator, then the STAP-A checks) is dear when run once a frame, with cold caches."""
    start = data.find(b"\x00\x00\x01")
    if start != -1 and len(data) - start - 3 > PACKET_MAX and data.find(b"\x00\x00\x01", start + 3) == -1:
        return tuple(H264Encoder._packetize_fu_a(data[start + 3:]))
    return tuple(H264Encoder._packetize(H264Encoder._split_bitstream(data)))


def h264_nal_types(data: bytes) -> set[int]:
    return {n[0] & 0x1F for n in nal_units(data)}


def with_parameter_sets(data: bytes, extradata: bytes | None) -> bytes:
    """An H.264 keyframe with SPS and PPS in front (from ``extradata``, Annex B) when it has
    none of its own."""
    if not extradata or not is_annexb(extradata):
        return data
    types = h264_nal_types(data)
    if 7 in types and 8 in types:
        return data
    return extradata + data


def to_ticks(pkt: EncodedPacket) -> int:
    if pkt.pts is None:
        return int(pkt.received_at * CLOCK)
    tb = pkt.time_base
    return pkt.pts * tb.numerator * CLOCK // tb.denominator


def call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: object) -> None:
    """``fn(*args)`` on ``loop``, from any thread (the camera's, here); nothing once the loop is
    closed (the worker is stopping)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


class ViewerTrack(MediaStreamTrack):
    """What one viewer is sent: frames from its camera's fan-out, keyframe first.

    :meth:`put` is called by the fan-out, in the camera's thread (or the event loop, for the GOP
    a viewer joins on). With a sink (:meth:`run_direct`) the frame is sent there and then;
    otherwise it is queued and the event loop woken for :meth:`next_frame`."""

    kind = "video"

    def __init__(self, max_frames: int = MAX_QUEUE_FRAMES) -> None:
        super().__init__()
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self.max_frames = max_frames
        self._lock = threading.Lock()  # the queue, the stamps and the sink: the camera's thread and the loop
        self._frames: collections.deque[Frame] = collections.deque()
        self._ready = asyncio.Event()
        self._done = asyncio.Event()  # the track stopped, or the sink's connection went
        self._sink: Callable[[Frame, int], bool] | None = None
        self._need_key = True
        self._last_in: int | None = None
        self._out = 0
        self.first_sent_at: float | None = None  # monotonic
        self.sent = 0
        self.dropped = 0
        self.on_stop: Callable[[ViewerTrack], None] | None = None

    def put(self, frame: Frame) -> None:
        with self._lock:
            if self.readyState != "live":
                return
            if self._need_key:
                if not frame.key:
                    return
                self._need_key = False
            if self._sink is not None:
                self._send(frame)
                return
            if len(self._frames) >= self.max_frames:  # the sender stalled: start again at a keyframe
                self.dropped += len(self._frames)
                self._frames.clear()
                if not frame.key:
                    self._need_key = True
                    self.dropped += 1
                    return
            self._frames.append(frame)
        self._wake(self._ready)

    def _wake(self, event: asyncio.Event) -> None:
        """Set ``event`` from any thread (asyncio's events are the loop's alone)."""
        if self._loop is None:
            event.set()
            return
        call_soon(self._loop, event.set)

    def _stamp(self, frame: Frame) -> int:
        if self._last_in is None:
            step = 0
        elif len(self._frames) >= 2:  # behind: catch up
            step = CATCH_UP_TICKS
        else:
            delta = frame.ticks - self._last_in
            step = delta if 0 < delta <= MAX_STEP else DEFAULT_STEP
        self._last_in = frame.ticks
        self._out += step
        return self._out

    def _take(self, frame: Frame) -> int:
        """Count ``frame`` as sent (just taken off the queue, or never queued); its RTP time."""
        if self.first_sent_at is None:
            self.first_sent_at = time.monotonic()
        self.sent += 1
        return self._stamp(frame)

    def _send(self, frame: Frame) -> None:
        """Through the sink, under the lock; a sink that says its connection is gone is dropped."""
        assert self._sink is not None
        if not self._sink(frame, self._take(frame)):
            self._sink = None
            self._wake(self._done)

    async def run_direct(self, sink: Callable[[Frame, int], bool]) -> None:
        """Send every frame through ``sink(frame, rtp_ticks)`` from now on: those queued at once,
        then each in the thread that reads the camera, as the fan-out puts it. Returns when the
        track stops or ``sink`` returns False (its connection is gone); after that the sink is
        never called again."""
        with self._lock:
            if self.readyState != "live":
                return
            self._sink = sink
            while self._frames and self._sink is not None:
                self._send(self._frames.popleft())
        try:
            await self._done.wait()
        finally:
            with self._lock:  # waits for a send in progress in the camera's thread
                self._sink = None

    async def next_frame(self) -> tuple[Frame, int]:
        """The next frame and its RTP time (90 kHz, from 0), for a sender on the event loop."""
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            with self._lock:
                if self._frames:
                    frame = self._frames.popleft()
                    return frame, self._take(frame)
                self._ready.clear()
            await self._ready.wait()

    async def recv(self) -> av.Packet:
        """The next frame as aiortc's own sender takes it: Annex B in an ``av.Packet``."""
        frame, ticks = await self.next_frame()
        pkt = av.Packet(frame.data)
        pkt.pts = pkt.dts = ticks
        pkt.time_base = TIME_BASE
        return pkt

    def stop(self) -> None:
        if self.readyState == "live":
            super().stop()
            with self._lock:  # no send from the camera's thread after this
                self._sink = None
            self._ready.set()
            self._done.set()
            if self.on_stop is not None:
                self.on_stop(self)


class LiveCamera:
    """One camera's live fan-out. Subscribed to the camera's ring while it has viewers; keeps
    the current GOP (as :class:`Frame`) so that a viewer who joins starts on its keyframe."""

    def __init__(self, camera_id: str, ring: PacketRing, loop: asyncio.AbstractEventLoop,
                 on_unsupported: Callable[[LiveCamera, str], None] | None = None) -> None:
        self.camera_id = camera_id
        self.ring = ring
        self._loop = loop
        self._on_unsupported = on_unsupported
        self.viewers: set[ViewerTrack] = set()
        self.gop: list[Frame] = []
        self.info: StreamInfo | None = None
        self.unsupported: str | None = None
        self.frames_in = 0
        self._last_ticks: int | None = None
        self._reorders = 0
        self._subscribed = False
        # all of the above, in the camera's thread (the ring's listener) and the event loop
        self._lock = threading.Lock()
        self._early: list[EncodedPacket] | None = None  # what came while start() took the GOP

    # ------------------------------------------------------------------ ring side
    def start(self) -> None:
        """Subscribe to the ring: its last GOP now, every packet after it as it comes."""
        if self._subscribed:
            return
        with self._lock:
            self._early = []
        # not under our lock: the ring calls _from_ring under its own, which then takes ours
        info, gop = self.ring.subscribe(self._from_ring)
        with self._lock:
            self._subscribed = True
            self.info = info
            for pkt in [*gop, *self._early]:
                self._push(pkt)
            self._early = None

    def close(self) -> None:
        if self._subscribed:
            self.ring.unsubscribe(self._from_ring)
        with self._lock:
            self._subscribed = False
            viewers = list(self.viewers)
            self.viewers.clear()
        for v in viewers:
            v.stop()

    def _from_ring(self, pkt: EncodedPacket) -> None:
        """In the source's thread, under the ring's lock: to every viewer, from this thread."""
        with self._lock:
            if self._early is not None:
                self._early.append(pkt)
            else:
                self._push(pkt)

    def _push(self, pkt: EncodedPacket) -> None:
        """Under the lock."""
        if not self._subscribed:
            return
        self.frames_in += 1
        info = self.ring.info
        if info is not self.info:
            self.info = info
        if info is not None and info.codec != "h264":
            self._refuse(HEVC_MESSAGE if info.codec == "hevc" else f"codec {info.codec} cannot be played live")
            return
        ticks = to_ticks(pkt)
        if self._reordered(pkt, ticks):
            self._refuse(BFRAMES_MESSAGE)
            return
        if pkt.is_keyframe:
            frame = Frame(with_parameter_sets(pkt.data, info.extradata if info else None), ticks, True,
                          pkt.received_at)
            self.gop = [frame]
        elif self.gop:
            frame = Frame(pkt.data, ticks, False, pkt.received_at)
            self.gop.append(frame)
            if len(self.gop) > MAX_QUEUE_FRAMES:  # a camera with no keyframes: nobody can join anyway
                self.gop = []
        else:
            return  # no keyframe yet: nobody could decode this
        for v in self.viewers:
            v.put(frame)

    def _reordered(self, pkt: EncodedPacket, ticks: int) -> bool:
        last, self._last_ticks = self._last_ticks, ticks
        if pkt.is_keyframe:
            self._reorders = 0  # counted per GOP: a stray timestamp now and then is no B-frame stream
        if (pkt.dts is not None and pkt.pts is not None and pkt.pts != pkt.dts) or \
                (last is not None and not pkt.is_keyframe and 0 < last - ticks <= REORDER_WINDOW):
            self._reorders += 1
        return self._reorders >= REORDERS_TO_REFUSE

    def _refuse(self, why: str) -> None:
        if self.unsupported is None:
            self.unsupported = why
            log.info("camera %s: live view refused: %s", self.camera_id, why.split(",")[0])
            if self._on_unsupported is not None:
                call_soon(self._loop, self._on_unsupported, self, why)

    # ------------------------------------------------------------------ viewers
    def check(self) -> None:
        """Raise :class:`Unsupported` when the camera's stream cannot be played live."""
        info = self.info or self.ring.info
        if info is not None and info.codec != "h264":
            raise Unsupported(HEVC_MESSAGE if info.codec == "hevc" else f"codec {info.codec} cannot be played live")
        if self.unsupported is not None:
            raise Unsupported(self.unsupported)

    def add(self, viewer: ViewerTrack) -> None:
        with self._lock:
            self.viewers.add(viewer)
            for frame in self.gop:
                viewer.put(frame)

    def remove(self, viewer: ViewerTrack) -> None:
        with self._lock:
            self.viewers.discard(viewer)

    @property
    def has_keyframe(self) -> bool:
        return bool(self.gop)
