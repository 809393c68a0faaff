"""Frames from what an analyst points ``camera-hub detect`` at: images, video files, RTSP URLs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camera_hub.redact import mask_text, mask_url

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class SourceError(RuntimeError):
    """A source that cannot be read; the message is already free of credentials."""


@dataclass(frozen=True, slots=True)
class Frame:
    index: int  # frame number within the source (decoded order)
    t: float  # seconds into a file; wall clock (epoch seconds) for a live stream
    image: np.ndarray  # BGR


def is_stream(source: str) -> bool:
    return source.lower().startswith(("rtsp://", "rtsps://", "rtmp://", "http://", "https://"))


def shown(source: str) -> str:
    """How a source appears in output and errors: URLs with their password masked."""
    return mask_url(source) if is_stream(source) else source


def read_image(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SourceError(f"{path}: not a readable image")
    return img


def frames(source: str, every: float | None, *, max_frames: int | None = None,
           timeout_s: float = 10.0) -> Iterator[Frame]:
    """Sampled frames: an image yields itself; a video one frame each ``every`` seconds of its
    timeline (every frame when None); a stream likewise, with wall-clock times."""
    if not is_stream(source):
        path = Path(source)
        if not path.is_file():
            raise SourceError(f"{source}: no such file")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            yield Frame(0, 0.0, read_image(path))
            return
    yield from _video(source, every, max_frames, timeout_s)


def _video(source: str, every: float | None, max_frames: int | None, timeout_s: float) -> Iterator[Frame]:
    import av

    live = is_stream(source)
    # FFmpeg's own timeout option (microseconds): PyAV's timeout= callback costs CPU per poll
    options = {"rtsp_transport": "tcp", "timeout": str(int(timeout_s * 1e6))} if live else {}
    try:
        container = av.open(source, options=options)
    except (av.FFmpegError, OSError) as exc:
        raise SourceError(f"{shown(source)}: cannot open: {mask_text(str(exc))}") from None
    try:
        stream = container.streams.video[0]
        stream.thread_count = 1
        next_t: float | None = None
        emitted = 0
        t0 = None
        for i, frame in enumerate(container.decode(stream)):
            if frame.pts is not None and frame.time_base is not None:
                ts = float(frame.pts * frame.time_base)
            else:
                ts = i / float(stream.average_rate or 25)
            t0 = ts if t0 is None else t0
            ts -= t0
            if next_t is not None and ts < next_t:
                continue
            next_t = ts + every if every else None
            yield Frame(i, time.time() if live else round(ts, 3), frame.to_ndarray(format="bgr24"))
            emitted += 1
            if max_frames is not None and emitted >= max_frames:
                return
    except av.FFmpegError as exc:
        raise SourceError(f"{shown(source)}: read failed: {mask_text(str(exc))}") from None
    finally:
        container.close()
