"""Alert clips: the packet ring's pre-roll plus the post-roll, remuxed to MP4 without
re-encoding (``+faststart`` so a browser can start playing before the whole file arrived)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np

from camera_hub.annexb import is_annexb, is_parameter_set, join, nal_units
from camera_hub.events import EncodedPacket, StreamInfo


class ClipSource(Protocol):
    """What the ingest side's PacketRing offers for clips."""

    def window(self, t0: float, t1: float) -> tuple[StreamInfo, list[EncodedPacket]] | None: ...


def _length_prefixed_to_annexb(data: bytes) -> bytes:
    nals, i = [], 0
    while i + 4 <= len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        nals.append(data[i + 4:i + 4 + n])
        i += 4 + n
    return join(nals)


def _parameter_sets_from_extradata(codec: str, extradata: bytes | None) -> list[bytes]:
    """VPS/SPS/PPS from Annex-B, avcC or hvcC extradata."""
    if not extradata:
        return []
    if is_annexb(extradata):
        return [n for n in nal_units(extradata) if is_parameter_set(codec, n)]
    out, b = [], extradata
    try:
        if codec == "hevc":  # hvcC: 22 bytes of header, then arrays of NAL units
            i, arrays = 23, b[22]
            for _ in range(arrays):
                count = int.from_bytes(b[i + 1:i + 3], "big")
                i += 3
                for _ in range(count):
                    n = int.from_bytes(b[i:i + 2], "big")
                    out.append(b[i + 2:i + 2 + n])
                    i += 2 + n
        else:  # avcC: SPS count in byte 5, then the PPS count after the SPSs
            i = 6
            for group in range(2):
                count = (b[5] & 0x1F) if group == 0 else b[i - 1]
                for _ in range(count):
                    n = int.from_bytes(b[i:i + 2], "big")
                    out.append(b[i + 2:i + 2 + n])
                    i += 2 + n
                i += 1
    except IndexError:
        return []
    return [n for n in out if n]


def _as_annexb(info: StreamInfo, packets: list[EncodedPacket]) -> list[bytes]:
    """Every packet as Annex-B, the first keyframe carrying the parameter sets: the MP4 muxer
    builds its avcC/hvcC box from them (cameras that only announce them in SDP are covered)."""
    datas = [p.data if is_annexb(p.data) else _length_prefixed_to_annexb(p.data) for p in packets]
    if not any(is_parameter_set(info.codec, n) for n in nal_units(datas[0])):
        sets = _parameter_sets_from_extradata(info.codec, info.extradata)
        if not sets:
            raise ValueError("no parameter sets in the first keyframe nor in the stream's extradata")
        datas[0] = join(sets) + datas[0]
    return datas


def _tag_hvc1(path: Path) -> None:
    """Rename the HEVC sample entry hev1 → hvc1 (same layout), the tag Safari requires; PyAV has
    no way to set the muxer's codec tag for a stream without a codec context."""
    with open(path, "r+b") as f:
        head = f.read(1 << 20)
        i = 0
        while i + 8 <= len(head):
            size, kind = int.from_bytes(head[i:i + 4], "big"), head[i + 4:i + 8]
            if kind == b"moov":
                j = head.find(b"hev1", i, i + size)
                if j > 0:
                    f.seek(j)
                    f.write(b"hvc1")
                return
            if size < 8:
                return
            i += size


def _ts(value: int | None, tb: Fraction, fallback_s: float) -> float:
    return float(value * tb) if value is not None else fallback_s


def _decode_times(packets: list[EncodedPacket]) -> list[int | None]:
    """The packets' dts; for B-frames whose reader knew only presentation times (RTP carries no
    decode time: the native reader gives dts = pts, which then go backwards), rebuilt: the pts in
    order, each moved back by the most any frame is shown after it is decoded. Without this the
    muxer's rising dts pushed each B-frame's pts past the frame after it (shown out of order).
    Left alone when a step back is over a second (a new session in the window, not a B-frame)."""
    dts, pts = [p.dts for p in packets], [p.pts for p in packets]
    if None in pts or any(d is not None and d != q for d, q in zip(dts, pts, strict=True)):
        return dts
    top, back = pts[0], 0
    for q in pts:
        top = max(top, q)  # type: ignore[type-var]
        back = max(back, top - q)  # type: ignore[operator]
    if back == 0 or back * packets[0].time_base > 1:
        return dts
    order = sorted(pts)  # type: ignore[type-var]
    shift = max(o - q for o, q in zip(order, pts, strict=True))  # type: ignore[operator]
    return [o - shift for o in order]


def remux_to_mp4(info: StreamInfo, packets: list[EncodedPacket], path: Path) -> float:
    """Write ``packets`` (from the first keyframe on) to ``path`` as MP4; returns the duration in s.

    Writes to a temporary name first and renames, so a reader never sees half a file.
    """
    first = next((i for i, p in enumerate(packets) if p.is_keyframe), None)
    if first is None:
        raise ValueError("no keyframe in the clip window")
    packets = packets[first:]
    datas = _as_annexb(info, packets)

    tb = Fraction(1, 90000)
    t_start = _ts(packets[0].dts if packets[0].dts is not None else packets[0].pts, packets[0].time_base, 0.0)
    r0 = packets[0].received_at
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    stamps: list[tuple[int, int]] = []  # (dts, pts) in 1/90000 s, dts strictly rising as the muxer needs
    for p, d in zip(packets, _decode_times(packets), strict=True):
        dts_s = _ts(d if d is not None else p.pts, p.time_base, p.received_at - r0 + t_start) - t_start
        pts_s = _ts(p.pts, p.time_base, dts_s + t_start) - t_start
        dts = max(int(round(dts_s / tb)), stamps[-1][0] + 1 if stamps else 0)
        stamps.append((dts, max(int(round(pts_s / tb)), dts)))
    # each packet lasts until the next one; without durations the MP4 edit list would cut the last frame
    durations = [b[0] - a[0] for a, b in zip(stamps, stamps[1:], strict=False)]
    durations.append(durations[-1] if durations else 3000)
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_mux_stream(info.codec, width=info.width, height=info.height)
        stream.time_base = tb
        for p, data, (dts, pts), dur in zip(packets, datas, stamps, durations, strict=True):
            pkt = av.Packet(data)
            pkt.pts, pkt.dts, pkt.duration, pkt.time_base, pkt.stream = pts, dts, dur, tb, stream
            pkt.is_keyframe = p.is_keyframe
            out.mux(pkt)
    end_s = float((max(pts for _, pts in stamps) + durations[-1]) * tb)
    if info.codec == "hevc":
        _tag_hvc1(tmp)
    os.replace(tmp, path)
    return end_s


class NoClip(Exception):
    """Why an alert has no clip: ``no_video`` (nothing kept for its window: the camera was not
    read here, or had dropped) or ``no_keyframe``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def write_clip(source: ClipSource, t0: float, t1: float, path: Path) -> tuple[StreamInfo, list[EncodedPacket]]:
    """Write what ``source`` holds from the keyframe at or before ``t0`` up to ``t1`` (wall-clock
    receive times) to ``path``; returns the stream and the packets written (the first a keyframe)."""
    got = source.window(t0, t1)
    if got is None or not got[1]:
        raise NoClip("no_video")
    info, packets = got
    first = next((i for i, p in enumerate(packets) if p.is_keyframe), None)
    if first is None:
        raise NoClip("no_keyframe")
    remux_to_mp4(info, packets[first:], path)
    return info, packets[first:]


def keyframe_image(info: StreamInfo, packets: list[EncodedPacket], t: float) -> np.ndarray | None:
    """The picture of the last keyframe at or before ``t`` (else the first), decoded (BGR), or
    None when it does not decode."""
    keys = [p for p in packets if p.is_keyframe]
    if not keys:
        return None
    key = max((p for p in keys if p.received_at <= t), key=lambda p: p.received_at, default=keys[0])
    ctx = av.CodecContext.create(info.codec, "r")
    try:
        for frame in ctx.decode(av.Packet(_as_annexb(info, [key])[0])) + ctx.decode(None):
            return frame.to_ndarray(format="bgr24")
    except (av.FFmpegError, ValueError):
        return None
    return None
