"""PacketRing: the last seconds of one camera's encoded packets, for the clip writer's pre-roll.

Packets are kept as whole GOPs (a keyframe and what follows it), so every window handed out
starts at a keyframe and can be remuxed without decoding. Trimming drops the oldest GOP while
the next one still covers ``seconds`` or while the ring is over ``max_bytes``. The source
thread appends; the event loop reads: a lock guards both.
"""

from __future__ import annotations

import threading
from collections import deque
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
    def __init__(self, seconds: float, max_bytes: int) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._gops: deque[_Gop] = deque()
        self._bytes = 0
        self._info: StreamInfo | None = None
        self._lock = threading.Lock()

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
                self._gops.clear()
                self._bytes = 0
                self._info = info

    def clear(self) -> None:
        with self._lock:
            self._gops.clear()
            self._bytes = 0

    def append(self, pkt: EncodedPacket) -> None:
        with self._lock:
            if pkt.is_keyframe:
                self._gops.append(_Gop())
            elif not self._gops:
                return  # never start a window mid-GOP
            gop = self._gops[-1]
            gop.packets.append(pkt)
            gop.nbytes += len(pkt.data)
            self._bytes += len(pkt.data)
            self._trim(pkt.received_at)

    def _trim(self, now: float) -> None:
        gops = self._gops
        while len(gops) > 1 and (gops[1].start <= now - self.seconds or self._bytes > self.max_bytes):
            self._bytes -= gops.popleft().nbytes
        if self._bytes > self.max_bytes:  # one GOP alone is too big: keep nothing until the next keyframe
            gops.clear()
            self._bytes = 0

    def window(self, t0: float, t1: float) -> tuple[StreamInfo, list[EncodedPacket]] | None:
        """Packets from the keyframe at or before ``t0`` (the oldest one kept if ``t0`` is older)
        up to ``t1`` (wall-clock receive times), or None when nothing is kept for that span."""
        with self._lock:
            if self._info is None or not self._gops:
                return None
            gops = self._gops
            first = 0
            for i, gop in enumerate(gops):
                if gop.start <= t0:
                    first = i
            out = [p for i, gop in enumerate(gops) if i >= first for p in gop.packets if p.received_at <= t1]
            return (self._info, out) if out else None

    def __len__(self) -> int:
        return sum(len(g.packets) for g in self._gops)
