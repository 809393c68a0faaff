"""Source: one camera's RTSP connection, with a thread of its own that opens and reopens it.

Two readers hand out whole frames (Annex B) with the same contract: the native RTSP/TCP reader
(:mod:`camera_hub.ingest.rtsp`, the default for ``rtsp://`` over TCP: about half the CPU of
FFmpeg's demuxer, see benchmarks/README.md) and FFmpeg's demuxer through PyAV for ``rtsps://``
and UDP. Each camera's thread opens its session; a native session is then read by the
worker's one :class:`~camera_hub.ingest.reactor.Reactor` thread, an FFmpeg one by the camera's
thread (blocking, GIL released). The event loop never blocks on a camera. FFmpeg's timeouts go
through its own ``timeout`` option (microseconds, every socket wait): PyAV's ``av.open(timeout=)``
installs a Python callback that takes the GIL on every network poll (DESIGN §6).

State machine: ``starting`` → ``up`` → ``degraded`` (still delivering, but decode errors or no
keyframe for ``no_keyframe_after_s``) → ``down`` with a reason (auth, not_found, refused,
timeout, eof, stalled, decode_errors, error), then capped exponential backoff with full jitter
and a new open through the process-wide :class:`OpenGate`. The URL (with its password) only
ever goes to the reader; errors are classified by type and their text masked before logging.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Literal

import av
import av.error

from camera_hub import metrics
from camera_hub.annexb import parameter_sets
from camera_hub.config import RtspUrl
from camera_hub.events import EncodedPacket, Sample, StreamInfo
from camera_hub.ingest.backoff import Backoff, OpenGate
from camera_hub.ingest.reactor import Reactor, shared_reactor
from camera_hub.ingest.reactor import Session as ReactorSession
from camera_hub.ingest.ring import PacketRing
from camera_hub.ingest.rtsp import RtspProtocolError, RtspReceiver, RtspStatusError
from camera_hub.ingest.sampler import DecodeError, Sampler
from camera_hub.ingest.status import State
from camera_hub.redact import mask_text

log = logging.getLogger(__name__)

DECODE_ERROR_WINDOW_S = 10.0
DECODE_ERRORS_DEGRADED = 2  # errors inside the window that make a camera degraded
STABLE_AFTER_S = 10.0  # a session up this long resets the backoff


@dataclass(frozen=True, slots=True)
class SourceOptions:
    transport: Literal["tcp", "udp"] = "tcp"
    # native: our own RTSP/TCP reader (camera_hub.ingest.rtsp), for rtsp:// over TCP; FFmpeg's
    # demuxer reads the rest (rtsps://, UDP) and is there to compare (benchmarks/ingest_capacity.py)
    receiver: Literal["native", "pyav"] = "native"
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    no_keyframe_after_s: float = 30.0
    analyzeduration_s: float = 0.5

    @property
    def socket_timeout_s(self) -> float:
        # FFmpeg's RTSP demuxer has one socket timeout for connect and reads alike
        return min(self.connect_timeout_s, self.read_timeout_s)

    def ffmpeg_options(self) -> dict[str, str]:
        return {
            "rtsp_transport": self.transport,
            "timeout": str(int(self.socket_timeout_s * 1e6)),
            "fpsprobesize": "0",  # probing for fps takes ~2.8 s per open; 0 brings it near 0.6 s
            "analyzeduration": str(int(self.analyzeduration_s * 1e6)),
            "allowed_media_types": "video",
        }


def classify(exc: BaseException, *, reading: bool) -> str:
    """The status reason for a reader's error (never its text: that may hold the URL)."""
    if isinstance(exc, RtspStatusError):
        return {401: "auth", 403: "auth", 404: "not_found"}.get(exc.status, "refused")
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return "auth"
    if isinstance(exc, av.error.HTTPNotFoundError):
        return "not_found"
    if isinstance(exc, av.error.HTTPError | ConnectionRefusedError):
        return "refused"
    if isinstance(exc, RtspProtocolError):
        return "error"
    if isinstance(exc, TimeoutError):
        return "stalled" if reading else "timeout"
    if isinstance(exc, EOFError | ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "eof"
    if isinstance(exc, av.error.InvalidDataError):
        return "decode_errors" if reading else "error"
    return "error"


class PyAvReader:
    """A session through FFmpeg's RTSP demuxer, handing out whole frames like the native reader.

    FFmpeg's RTP depacketiser hands over one packet per slice, and the first packet after an
    open may have no timestamp: packets are joined into a frame until the timestamp moves on.
    """

    def __init__(self, url: RtspUrl, options: SourceOptions) -> None:
        self._container = av.open(url.reveal(), options=options.ffmpeg_options())
        try:
            self._stream = self._container.streams.video[0]
        except IndexError:
            self._container.close()
            raise RtspProtocolError("no video stream") from None
        ctx = self._stream.codec_context
        self.info = StreamInfo(codec=ctx.name, width=ctx.width, height=ctx.height, extradata=ctx.extradata,
                               time_base=self._stream.time_base)

    def packets(self) -> Iterator[EncodedPacket]:
        tb = self._stream.time_base
        parts: list[bytes] = []
        pts = dts = None
        key, received = False, 0.0
        for pkt in self._container.demux(self._stream):
            if pkt.size == 0:  # the empty packet that marks the end of the stream
                continue
            if parts and ((pkt.pts is not None and pkt.pts == pts) or (pts is None and key and pkt.is_keyframe)):
                parts.append(bytes(pkt))
                continue
            if parts:
                yield EncodedPacket(b"".join(parts), pts, dts, key, tb, received)
            parts, pts, dts, key, received = [bytes(pkt)], pkt.pts, pkt.dts, pkt.is_keyframe, time.time()

    def close(self) -> None:
        self._container.close()


class Source:
    """Reads one camera until :meth:`stop`; samples go to ``on_sample`` (called in the source
    thread: it must be thread-safe), packets to ``ring``."""

    def __init__(self, camera_id: str, url: RtspUrl, *, sampler: Sampler, ring: PacketRing, gate: OpenGate,
                 backoff: Backoff, options: SourceOptions = SourceOptions(),
                 on_sample: Callable[[Sample], None] | None = None,
                 on_state: Callable[[Source], None] | None = None,
                 motion: Callable[[Sample], object] | None = None,
                 on_done: Callable[[], None] | None = None, reactor: Reactor | None = None) -> None:
        self.camera_id = camera_id
        self._url = url
        self.sampler = sampler
        self.ring = ring
        self.gate = gate
        self.backoff = backoff
        self.options = options
        self._on_sample = on_sample
        self._on_state = on_state
        self._motion = motion
        self._on_done = on_done
        self._reactor = reactor  # None: the process's shared one
        self._playing: ReactorSession | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.done = threading.Event()
        # status, read by the worker's status loop (plain attributes: written by one thread)
        self.state: State = "starting"
        self.reason = ""
        self.since = time.time()
        self.state_version = 0
        self.history: collections.deque[tuple[float, State, str]] = collections.deque(maxlen=32)
        self.reconnects = 0
        self.attempts: collections.deque[float] = collections.deque(maxlen=256)  # wall time of each open
        self.packets = 0
        self.bytes = 0
        self.samples = 0
        self.decode_errors = 0
        self.last_frame_at: float | None = None
        self.last_keyframe_at: float | None = None
        self.width: int | None = None
        self.height: int | None = None
        self.codec = ""
        self._error_times: collections.deque[float] = collections.deque(maxlen=16)
        self._opened = 0.0
        self._info = StreamInfo("h264", 0, 0, None, Fraction(1, 90000))  # the session's, once open

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"source-{self.camera_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end (at once for a native session, else at the next packet or socket
        timeout); wait on ``done``."""
        self._stop.set()
        if (playing := self._playing) is not None:
            (self._reactor or shared_reactor()).remove(playing)

    def _set_state(self, state: State, reason: str = "") -> None:
        if (state, reason) == (self.state, self.reason):
            return
        if state == "down" or (state == "degraded" and self.state != "degraded"):
            log.info("camera %s %s: %s", self.camera_id, state, reason)
        self.state, self.reason, self.since = state, reason, time.time()
        self.history.append((self.since, state, reason))
        self.state_version += 1
        if self._on_state is not None:
            self._on_state(self)

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                reason, up_for = self._session()
                if self._stop.is_set():
                    break
                if up_for >= STABLE_AFTER_S:
                    self.backoff.reset()
                if reason == "timeout" and (self.state, self.reason) == ("down", "stalled"):
                    reason = "stalled"  # the camera that went silent still does not answer
                self.reconnects += 1
                metrics.RECONNECTS.labels(camera=self.camera_id, reason=reason).inc()
                self._set_state("down", reason)
                self._stop.wait(self.backoff.next_delay())
        except Exception:  # never let a camera take the worker down
            log.exception("camera %s: source thread failed", self.camera_id)
            self._set_state("down", "error")
        finally:
            self.done.set()
            if self._on_done is not None:
                self._on_done()

    def _session(self) -> tuple[str, float]:
        """One open-and-read; returns why it ended and how long it was up."""
        with self.gate.hold(self._stop) as ok:
            if not ok:
                return "stopped", 0.0
            t0 = time.time()
            self.attempts.append(t0)  # a retry keeps "down" (and its since) until data flows
            try:
                reader = self._open()
            except Exception as exc:  # noqa: BLE001 - classified, never re-raised with the URL
                reason = classify(exc, reading=False)
                if reason in ("error", "eof") and time.time() - t0 >= 0.9 * self.options.socket_timeout_s:
                    reason = "timeout"  # FFmpeg reports an unanswered DESCRIBE as invalid data
                log.debug("camera %s open failed (%s): %s", self.camera_id, reason, mask_text(str(exc)))
                return reason, 0.0
        opened = time.time()
        if isinstance(reader, RtspReceiver):
            return self._read_native(reader), time.time() - opened
        try:
            return self._read(reader), time.time() - opened
        except Exception as exc:  # noqa: BLE001
            reason = classify(exc, reading=True)
            log.debug("camera %s read failed (%s): %s", self.camera_id, reason, mask_text(str(exc)))
            return reason, time.time() - opened
        finally:
            reader.close()

    def _open(self) -> RtspReceiver | PyAvReader:
        o = self.options
        if o.receiver == "native" and o.transport == "tcp" and self._url.reveal().startswith("rtsp://"):
            native = RtspReceiver(self._url.reveal(), connect_timeout_s=o.connect_timeout_s,
                                  read_timeout_s=o.read_timeout_s)
            try:
                native.open()
            except BaseException:
                native.close()
                raise
            return native
        return PyAvReader(self._url, o)

    def _begin(self, info: StreamInfo) -> None:
        self._info = info
        self.sampler.open(info)
        self.codec = info.codec
        self.width, self.height = info.width or None, info.height or None
        self.ring.set_info(info)
        self._opened = time.time()
        self.last_keyframe_at = None

    def _read_native(self, rx: RtspReceiver) -> str:
        """Hand the playing session to the reactor and wait for it to end."""
        assert rx.info is not None
        self._begin(rx.info)
        ended = threading.Event()
        why: list[BaseException | None] = []

        def on_end(exc: BaseException | None) -> None:
            why.append(exc)
            ended.set()

        reactor = self._reactor or shared_reactor()
        self._playing = reactor.add(rx, self._frame, on_end, self.options.read_timeout_s)
        if self._stop.is_set():
            reactor.remove(self._playing)
        ended.wait()
        self._playing = None
        if why[0] is None:
            return "stopped"
        reason = classify(why[0], reading=True)
        log.debug("camera %s read failed (%s): %s", self.camera_id, reason, mask_text(str(why[0])))
        return reason

    def _read(self, reader: PyAvReader) -> str:
        assert reader.info is not None
        self._begin(reader.info)
        for pkt in reader.packets():
            if self._stop.is_set():
                return "stopped"
            self._frame(pkt)
        return "eof"

    def _frame(self, pkt: EncodedPacket) -> None:
        """One whole frame into the ring, the sampler and the health checks."""
        now = pkt.received_at
        self.packets += 1
        self.bytes += len(pkt.data)
        self.last_frame_at = now
        if pkt.is_keyframe:
            self.last_keyframe_at = now
        self.ring.append(pkt)
        if self.sampler.wants(pkt.is_keyframe, now):
            self._decode(pkt, now)
        self._health(now)

    def _decode(self, pkt: EncodedPacket, now: float) -> None:
        c0 = time.thread_time()
        try:
            sample = self.sampler.decode(pkt, now)
        except (av.error.FFmpegError, DecodeError):
            self.decode_errors += 1
            self._error_times.append(now)
            return
        finally:
            metrics.DECODE_CPU.inc(time.thread_time() - c0)
        if sample is None:
            return
        h, w = sample.frame.shape[:2]
        if (w, h) != (self.width, self.height):  # first picture, or an in-band resolution change
            self.width, self.height = w, h
            extradata = parameter_sets(pkt.data, self.codec) or self._info.extradata
            self._info = replace(self._info, width=w, height=h, extradata=extradata)
            self.ring.set_info(self._info)
            self.ring.append(pkt)
        if self._motion is not None:
            c0 = time.thread_time()
            self._motion(sample)
            metrics.MOTION_CPU.inc(time.thread_time() - c0)
        self.samples += 1
        if self._on_sample is not None:
            self._on_sample(sample)

    def _health(self, now: float) -> None:
        recent_errors = sum(1 for t in self._error_times if now - t < DECODE_ERROR_WINDOW_S) \
            if self._error_times else 0
        since_key = now - (self.last_keyframe_at or self._opened)
        if recent_errors >= DECODE_ERRORS_DEGRADED:
            self._set_state("degraded", "decode_errors")
        elif since_key > self.options.no_keyframe_after_s:
            self._set_state("degraded", "no_keyframe")
        elif self.last_keyframe_at is not None:
            self._set_state("up", "")
