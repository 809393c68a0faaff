"""Sampler: which packets get decoded, and decoded frames as BGR Samples.

Default is keyframe-only: only keyframe packets that are due (one per ``interval_s``) reach the
decoder, which also skips non-key frames (``skip_frame = NONKEY``); decoding every frame is what
makes an NVR pay 8–10× more per camera. ``keyframes_only=False`` ("fps: N" mode) decodes every
packet and samples at ``interval_s = 1/N`` for rules that need motion between keyframes.
Keyframe-only samplers share one decoder per codec and picture size (:class:`KeyframeDecoder`):
a keyframe decodes on its own, so nothing of one camera's stream is needed for the next
camera's, and a private H.264 decoder holds ~1.4 MB (frame pools, tables) that 1,000 cameras
would pay 1,000 times (benchmarks/README.md, City scale). Each keyframe goes in behind its
camera's parameter sets, and the decoder is flushed after it. ``fps`` mode keeps a decoder per
camera (frames predict from each other). One reused reformatter for BGR per camera.

Which keyframe is decoded: one per ``interval_s``; with an analysis planner (``armed`` not None)
only while the planner has armed the sampler, which then decodes one and disarms.
"""

from __future__ import annotations

import threading
from fractions import Fraction

import av
import av.error
import numpy as np
from av.video.reformatter import VideoReformatter

from camera_hub.annexb import parameter_sets
from camera_hub.events import EncodedPacket, Sample, StreamInfo


class DecodeError(Exception):
    """A packet that should have given a picture did not."""


# keyframes arrive with network jitter: one a little early is still due
_DUE_SLACK = 0.9


def _new_context(codec: str, *, keyframes_only: bool, skip_loop_filter: bool) -> av.codec.context.CodecContext:
    ctx = av.CodecContext.create(codec, "r")
    if skip_loop_filter:
        ctx.options = {"skip_loop_filter": "all"}
    ctx.thread_count = 1  # one thread per decoder is cheaper than FFmpeg's threading with many cameras
    ctx.thread_type = "NONE"
    if keyframes_only:
        ctx.skip_frame = "NONKEY"
    return ctx


class KeyframeDecoder:
    """One decoder context shared by the keyframe-only samplers of a codec and size. Callers
    hold :attr:`lock` (the native receiver decodes on one reactor thread, so it is free; FFmpeg
    receivers' camera threads take turns)."""

    _pool: dict[tuple[str, int, int, bool], KeyframeDecoder] = {}
    _pool_lock = threading.Lock()

    def __init__(self, codec: str, skip_loop_filter: bool) -> None:
        self.lock = threading.Lock()
        self.ctx = _new_context(codec, keyframes_only=True, skip_loop_filter=skip_loop_filter)
        self.reformatter = VideoReformatter()  # its scaler context and buffers: ~0.17 MB a camera

    @classmethod
    def shared(cls, codec: str, width: int, height: int, skip_loop_filter: bool) -> KeyframeDecoder:
        key = (codec, width, height, skip_loop_filter)
        with cls._pool_lock:
            if key not in cls._pool:
                cls._pool[key] = cls(codec, skip_loop_filter)
            return cls._pool[key]

    def decode(self, data: bytes, pts: int | None, dts: int | None) -> list[av.VideoFrame]:
        """The picture(s) of one keyframe (Annex B, parameter sets in front); leaves no state."""
        packet = av.Packet(data)
        packet.pts, packet.dts = pts, dts
        with self.lock:
            try:
                frames = self.ctx.decode(packet)
                if not frames:  # a decoder with reorder delay holds the frame back: drain it now
                    frames = self.ctx.decode(None)
            finally:
                self.ctx.flush_buffers()
        return frames

    def bgr(self, frame: av.VideoFrame) -> np.ndarray:
        with self.lock:
            return _to_bgr(self.reformatter, frame)


def _to_bgr(reformatter: VideoReformatter, frame: av.VideoFrame) -> np.ndarray:
    # no scaling happens, so the fast scaler gives identical pixels at a third of the cost
    return reformatter.reformat(frame, format="bgr24", threads=1, interpolation="FAST_BILINEAR").to_ndarray()


class Sampler:
    def __init__(self, camera_id: str, interval_s: float, keyframes_only: bool = True,
                 skip_loop_filter: bool = True) -> None:
        self.camera_id = camera_id
        self.interval_s = interval_s
        self.keyframes_only = keyframes_only
        # A keyframe decoded alone can skip the deblocking filter: no later frame predicts from
        # it here, so nothing drifts. 30 % cheaper at 1080p for a picture within ~39 dB PSNR of
        # the filtered one (benchmarks/README.md). Never with every frame decoded: errors would
        # accumulate along the GOP.
        self.skip_loop_filter = skip_loop_filter and keyframes_only
        self.decoded = 0
        # None: one sample per interval_s. True/False: the analysis planner's word (set from the
        # event loop, cleared here once a sample is out; a plain attribute, atomic under the GIL)
        self.armed: bool | None = None
        self._ctx: av.codec.context.CodecContext | None = None
        self._shared: KeyframeDecoder | None = None
        self._codec = "h264"
        self._params = b""  # the session's parameter sets (Annex B), put in front of each keyframe
        self._last_t: float | None = None
        self._time_base: Fraction | None = None
        self._reformatter: VideoReformatter | None = None  # fps mode only (shared ones have theirs)

    def open(self, info: StreamInfo) -> None:
        """Decoding for a new session: codec and parameter sets (Annex B) from ``info``; without
        them they come from the keyframes themselves."""
        self._codec = info.codec
        self._params = info.extradata or b""
        self._last_t = None
        self._time_base = info.time_base
        if self.keyframes_only:
            self._shared = KeyframeDecoder.shared(info.codec, info.width, info.height, self.skip_loop_filter)
            return
        ctx = _new_context(info.codec, keyframes_only=False, skip_loop_filter=False)
        self._reformatter = self._reformatter or VideoReformatter()
        if info.extradata:
            ctx.extradata = info.extradata
        self._ctx = ctx

    def _due(self, now: float) -> bool:
        if self.armed is False:
            return False
        return self._last_t is None or now - self._last_t >= self.interval_s * _DUE_SLACK

    def wants(self, is_keyframe: bool, now: float) -> bool:
        """Must this packet go to the decoder? (Cheap: called for every packet.)"""
        return not self.keyframes_only or (is_keyframe and self._due(now))

    def decode(self, pkt: EncodedPacket, now: float) -> Sample | None:
        """Decode ``pkt`` (a whole frame); a Sample when a frame came out and one is due. Raises
        ``av.error.FFmpegError`` or :class:`DecodeError` on a corrupt packet."""
        if self._shared is not None:
            if params := parameter_sets(pkt.data, self._codec):
                self._params = params  # in-band ones win (and may change the resolution)
                data = pkt.data
            else:
                data = self._params + pkt.data
            frames = self._shared.decode(data, pkt.pts, pkt.dts)
        else:
            assert self._ctx is not None
            packet = av.Packet(pkt.data)
            packet.pts, packet.dts = pkt.pts, pkt.dts
            frames = self._ctx.decode(packet)
        self.decoded += len(frames)
        if (not frames and self.keyframes_only) or (frames and all(f.is_corrupt for f in frames)):
            # a keyframe that gives no picture: its slices are damaged (FFmpeg says nothing)
            raise DecodeError(f"camera {self.camera_id}: keyframe gave no picture")
        if not frames or not self._due(now):
            return None
        frame = frames[-1]
        self._last_t = now
        if self.armed:
            self.armed = False
        if self._shared is not None:
            bgr = self._shared.bgr(frame)
        else:
            assert self._reformatter is not None
            bgr = _to_bgr(self._reformatter, frame)
        tb = self._time_base
        return Sample(camera_id=self.camera_id, t=now, pts=frame.pts, frame=bgr, keyframe=bool(frame.key_frame),
                      stream_t=float(frame.pts * tb) if frame.pts is not None and tb else None)
