"""Helpers for simulator tests: PyAV readers run in threads (PyAV blocks)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import av

OPEN_OPTIONS = {"rtsp_transport": "tcp", "timeout": "5000000", "analyzeduration": "500000", "fpsprobesize": "0"}


def open_av(url: str) -> av.container.InputContainer:
    return av.open(url, options=OPEN_OPTIONS)


@dataclass
class Reading:
    opened_at: float = 0.0
    packets: list[tuple[float, int | None, bool]] = field(default_factory=list)  # (arrival, pts, key)
    frames: list[tuple[float, int, int]] = field(default_factory=list)  # (arrival, width, height)
    decode_errors: int = 0
    ended: str | None = None  # why reading stopped early (EOF or error)


def read_stream(url: str, seconds: float, *, decode: bool = False, stop_after_frames: int | None = None) -> Reading:
    """Read ``url`` for ``seconds`` after it opens; packets (and decoded frames when asked)."""
    out = Reading()
    container = open_av(url)
    out.opened_at = time.monotonic()
    try:
        stream = container.streams.video[0]
        stream.thread_count = 1
        for packet in container.demux(stream):
            now = time.monotonic()
            if packet.size == 0:  # FFmpeg's end-of-stream flush packet: the server closed
                out.ended = "eof"
                break
            out.packets.append((now, packet.pts, packet.is_keyframe))
            if decode:
                try:
                    out.frames += [(now, f.width, f.height) for f in packet.decode()]
                except av.error.FFmpegError:
                    out.decode_errors += 1
            if now - out.opened_at > seconds or (stop_after_frames and len(out.frames) >= stop_after_frames):
                break
    except av.error.FFmpegError as exc:
        out.ended = f"error: {type(exc).__name__}"
    finally:
        container.close()
    return out
