"""PacketRing: one camera's recent encoded packets, for the clip writer's pre-roll.

Two parts. The last ``seconds`` are kept at full rate as whole GOPs (a keyframe and what
follows it), so every window handed out starts at a keyframe and can be remuxed without
decoding. Behind them, a **time-lapse** keeps one keyframe every ``lapse_every_s`` back to
``lapse_s``: an alert's clip must reach back to its onset, and a camera sampled every 15 s may
see its onset that much late; a keyframe every few seconds costs a fraction of the full rate
(≈ 28 KB a keyframe at 360p against ≈ 40 KB/s), which is what fits 1,000 cameras in memory.
The evidence recorder (:mod:`camera_hub.evidence`) takes over on disk once a rule gets going.

Trimming moves the oldest GOP's keyframe to the time-lapse while the next GOP still covers
``seconds``; the byte bound ``max_bytes`` (both parts) drops time-lapse keyframes first, then
whole GOPs. The source thread appends; the event loop reads: a lock guards both.

Live view (:mod:`camera_hub.live`) subscribes: :meth:`PacketRing.subscribe` hands over the last
GOP and, under the same lock, registers a callback that then gets every packet appended, so a
viewer starts on a keyframe and misses or repeats nothing between the two.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from camera_hub.events import EncodedPacket, StreamInfo


@dataclass(slots=True)
class _Gop:
    packets: list[EncodedPacket] = field(default_factory=list)
    nbytes: int = 0

    @property
    def start(self) -> float:
        return self.packets[0].received_at


class PacketRing:
    def __init__(self, seconds: float, max_bytes: int, *, lapse_s: float = 0.0, lapse_every_s: float = 4.0) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.lapse_s, self.lapse_every_s = lapse_s, lapse_every_s
        self._gops: deque[_Gop] = deque()
        self._lapse: deque[EncodedPacket] = deque()  # keyframes older than the full-rate part
        self._bytes = 0
        self._info: StreamInfo | None = None
        self._lock = threading.Lock()
        self._listeners: list[Callable[[EncodedPacket], None]] = []

    @property
    def nbytes(self) -> int:
        return self._bytes

    @property
    def info(self) -> StreamInfo | None:
        return self._info

    def set_info(self, info: StreamInfo) -> None:
        """Declare what the following packets are; a change (new resolution or codec) empties
        the ring, as a clip cannot mix two streams."""
        with self._lock:
            if info != self._info:
                self._clear()
                self._info = info

    def clear(self) -> None:
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._gops.clear()
        self._lapse.clear()
        self._bytes = 0

    def append(self, pkt: EncodedPacket) -> None:
        with self._lock:
            for fn in self._listeners:  # never blocking: live view sends to its viewers from here (non-blocking UDP)
                fn(pkt)
            if pkt.is_keyframe:
                self._gops.append(_Gop())
            elif not self._gops:
                return  # never start a window mid-GOP
            gop = self._gops[-1]
            gop.packets.append(pkt)
            gop.nbytes += len(pkt.data)
            self._bytes += len(pkt.data)
            self._trim(pkt.received_at)

    def subscribe(self, fn: Callable[[EncodedPacket], None]) -> tuple[StreamInfo | None, list[EncodedPacket]]:
        """Call ``fn(packet)`` (in the appending thread, under the ring's lock) for every packet
        appended from now on; returns the stream info and the last GOP kept (from its keyframe),
        taken under the same lock."""
        with self._lock:
            self._listeners = [*self._listeners, fn]
            return self._info, list(self._gops[-1].packets) if self._gops else []

    def unsubscribe(self, fn: Callable[[EncodedPacket], None]) -> None:
        with self._lock:
            self._listeners = [f for f in self._listeners if f != fn]  # == : bound methods are made anew

    def _trim(self, now: float) -> None:
        gops, lapse = self._gops, self._lapse
        while len(gops) > 1 and gops[1].start <= now - self.seconds:
            self._retire(gops.popleft(), now)
        while lapse and lapse[0].received_at < now - self.lapse_s:
            self._bytes -= len(lapse.popleft().data)
        while self._bytes > self.max_bytes and lapse:
            self._bytes -= len(lapse.popleft().data)
        while self._bytes > self.max_bytes and len(gops) > 1:
            self._bytes -= gops.popleft().nbytes
        if self._bytes > self.max_bytes:  # one GOP alone is too big: keep nothing until the next keyframe
            self._clear()

    def _retire(self, gop: _Gop, now: float) -> None:
        """A GOP leaves the full-rate part: its keyframe joins the time-lapse if one is due."""
        key = gop.packets[0]
        self._bytes -= gop.nbytes
        due = not self._lapse or key.received_at - self._lapse[-1].received_at >= self.lapse_every_s - 1e-6
        if self.lapse_s > self.seconds and due and key.received_at >= now - self.lapse_s:
            self._lapse.append(key)
            self._bytes += len(key.data)

    def window(self, t0: float, t1: float) -> tuple[StreamInfo, list[EncodedPacket]] | None:
        """Packets from the keyframe at or before ``t0`` (the oldest one kept if ``t0`` is older)
        up to ``t1`` (wall-clock receive times): time-lapse keyframes, then full-rate GOPs; None
        when nothing is kept for that span."""
        with self._lock:
            if self._info is None or not self._gops:
                return None
            keys = [*self._lapse, *(g.packets[0] for g in self._gops)]
            first = max((i for i, k in enumerate(keys) if k.received_at <= t0), default=0)
            lapse = [k for k in list(self._lapse)[first:] if k.received_at <= t1]
            skip = max(0, first - len(self._lapse))
            full = [p for i, gop in enumerate(self._gops) if i >= skip for p in gop.packets if p.received_at <= t1]
            out = lapse + full
            return (self._info, out) if out else None

    def keyframes_after(self, t: float) -> tuple[StreamInfo, list[EncodedPacket]] | None:
        """The keyframes received after ``t`` (time-lapse and each GOP's first): what an
        evidence recording appends each second, without copying the full-rate packets."""
        with self._lock:
            if self._info is None:
                return None
            keys = [k for k in self._lapse if k.received_at > t]
            keys += [g.packets[0] for g in self._gops if g.packets[0].received_at > t]
            return self._info, keys

    def __len__(self) -> int:
        return len(self._lapse) + sum(len(g.packets) for g in self._gops)
