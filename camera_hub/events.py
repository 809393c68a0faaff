"""The records handed along the one-way data flow
source → sampler → detector → tracker → rules → alerts. Plain dataclasses, no behaviour:
each stage imports these and nothing of the stage before it."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import numpy as np

Box = tuple[float, float, float, float]  # x1, y1, x2, y2


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    """One compressed video packet as received (kept by the PacketRing for clips)."""

    data: bytes
    pts: int | None
    dts: int | None
    is_keyframe: bool
    time_base: Fraction
    received_at: float  # wall clock, seconds since the epoch


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a clip writer needs to remux packets without decoding them."""

    codec: str  # "h264" | "hevc"
    width: int
    height: int
    extradata: bytes | None
    time_base: Fraction


@dataclass(slots=True)
class Sample:
    """A decoded frame picked by the sampler for analysis."""

    camera_id: str
    t: float  # wall clock capture time (seconds since the epoch)
    pts: int | None
    frame: np.ndarray  # BGR, HxWx3 uint8
    keyframe: bool
    motion: float | None = None  # MotionGate score, 0..1 share of changed pixels
    # the frame's own timestamp in seconds (pts × time base: the camera's clock, free of receive
    # jitter; its origin is arbitrary and changes with each RTSP session)
    stream_t: float | None = None


@dataclass(frozen=True, slots=True)
class Detection:
    label: str
    score: float
    box: Box  # pixels of the analysed frame


@dataclass(slots=True)
class Track:
    track_id: int
    label: str
    box: Box  # pixels
    score: float
    first_seen: float
    last_seen: float
    hits: int = 1


EpisodeKind = Literal["start", "update", "end"]
AlertType = Literal["vending", "crowding", "tamper", "camera_offline"]


@dataclass(frozen=True, slots=True)
class Episode:
    """What a rule emits. One episode = one alert: ``start`` creates it, ``update`` amends it,
    ``end`` closes it. ``key`` identifies the episode (same key for all three kinds)."""

    kind: EpisodeKind
    type: AlertType
    camera_id: str
    zone_id: str
    started_at: float  # onset of the condition (wall clock)
    t: float  # time of this event
    score: float = 0.0
    count: int = 0
    boxes: tuple[tuple[float, float, float, float, str, float], ...] = ()  # 0..1, with label and score
    detail: str = ""  # e.g. tamper reason: covered | defocused | moved | dark; offline reason
    frame: np.ndarray | None = field(default=None, compare=False, repr=False)  # for the snapshot

    @property
    def key(self) -> str:
        return f"{self.camera_id}|{self.zone_id}|{self.type}|{self.started_at:.3f}"
