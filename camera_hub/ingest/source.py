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
timeout, eof, stalled, no_video, decode_errors, error), then capped exponential backoff with full jitter
and a new open through the process-wide :class:`OpenGate`. A session the camera ended with an
RTCP BYE (reason ``bye``: the sender left and no new one came) is reopened at once, without
going down, when it had delivered frames.

Transport (``SourceOptions.transport``): ``auto`` (the default) reads RTP over TCP and, when the
camera refuses that (461 Unsupported Transport), over UDP: logged once, kept for the next opens,
shown in :attr:`Source.transport` and :attr:`Source.transport_note`. A stream whose timestamps go
backwards in send order has B-frames (:attr:`Source.b_frames`, logged once). The URL (with its password) only
ever goes to the reader; errors are classified by type and their text masked before logging, and
FFmpeg's errors are re-raised without the URL it puts in them.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from camera_hub.ingest.rtsp import (
    UDP_PORTS,
    NoVideoError,
    RtpByeError,
    RtspProtocolError,
    RtspReceiver,
    RtspStatusError,
)
from camera_hub.ingest.sampler import DecodeError, Sampler
from camera_hub.ingest.status import State
from camera_hub.redact import mask_text, mask_url

log = logging.getLogger(__name__)

DECODE_ERROR_WINDOW_S = 10.0
DECODE_ERRORS_DEGRADED = 2  # errors inside the window that make a camera degraded
STABLE_AFTER_S = 10.0  # a session up this long resets the backoff
BYE_REOPEN_S = 0.2  # the pause before reopening a session the camera ended with BYE
MAX_GOP_S = 30.0  # keyframes further apart than this are a gap in the stream, not its GOP


@dataclass(frozen=True, slots=True)
class SourceOptions:
    # auto: RTP over TCP, over UDP when the camera refuses TCP (native reader; FFmpeg reads "auto"
    # as TCP); tcp, udp: that one only
    transport: Literal["auto", "tcp", "udp"] = "auto"
    # native: our own RTSP reader (camera_hub.ingest.rtsp) for rtsp://; FFmpeg's demuxer reads
    # rtsps:// and is there to compare (benchmarks/ingest_capacity.py)
    receiver: Literal["native", "pyav"] = "native"
    udp_ports: tuple[int, int] = UDP_PORTS  # the native reader's client RTP/RTCP ports (UDP)
    bye_timeout_s: float = 2.0  # after a sender's RTCP BYE, reopen when no new sender came by then
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    no_keyframe_after_s: float = 30.0
    analyzeduration_s: float = 0.5
    # the native reader answers a Basic auth challenge (clear text) only when the camera allows it
    # (Camera.allow_basic_auth); FFmpeg has no such switch: rtsps:// and UDP cameras still answer it
    allow_basic_auth: bool = False

    @property
    def socket_timeout_s(self) -> float:
        # FFmpeg's RTSP demuxer has one socket timeout for connect and reads alike
        return min(self.connect_timeout_s, self.read_timeout_s)

    def ffmpeg_options(self) -> dict[str, str]:
        return {
            "rtsp_transport": "tcp" if self.transport == "auto" else self.transport,
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
    if isinstance(exc, NoVideoError):
        return "no_video"
    if isinstance(exc, TimeoutError):
        return "stalled" if reading else "timeout"
    if isinstance(exc, RtpByeError):
        return "bye"
    if isinstance(exc, EOFError | ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "eof"
    if isinstance(exc, av.error.InvalidDataError):
        return "decode_errors" if reading else "error"
    return "error"


@contextmanager
def _url_masked() -> Iterator[None]:
    """FFmpeg's errors carry the URL, password and all (their ``filename`` and text): re-raise
    each as the same class (the Source classifies by class) with the URL masked and no log."""
    try:
        yield
    except av.error.FFmpegError as exc:
        name = mask_url(exc.filename) if isinstance(exc.filename, str) else None
        raise type(exc)(exc.errno, mask_text(str(exc.strerror or "")), name) from None


class PyAvReader:
    """A session through FFmpeg's RTSP demuxer, handing out whole frames like the native reader.

    FFmpeg's RTP depacketiser hands over one packet per slice, and the first packet after an
    open may have no timestamp: packets are joined into a frame until the timestamp moves on.
    Every FFmpeg error it raises has the URL masked (:func:`_url_masked`).
    """

    def __init__(self, url: RtspUrl, options: SourceOptions) -> None:
        with _url_masked():
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
        with _url_masked():
            for pkt in self._container.demux(self._stream):
                if pkt.size == 0:  # the empty packet that marks the end of the stream
                    continue
                if parts and ((pkt.pts is not None and pkt.pts == pts)
                              or (pts is None and key and pkt.is_keyframe)):
                    parts.append(bytes(pkt))
                    continue
                if parts:
                    yield EncodedPacket(b"".join(parts), pts, dts, key, tb, received)
                parts, pts, dts, key, received = [bytes(pkt)], pkt.pts, pkt.dts, pkt.is_keyframe, time.time()

    def close(self) -> None:
        with _url_masked():
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
        self.keyframe_interval_s: float | None = None  # moving average (the analysis planner's GOP)
        self.width: int | None = None
        self.height: int | None = None
        self.codec = ""
        self._error_times: collections.deque[float] = collections.deque(maxlen=16)
        self._opened = 0.0
        self._info = StreamInfo("h264", 0, 0, None, Fraction(1, 90000))  # the session's, once open
        # transport and stream shape, for the status
        self.transport = ""  # "tcp" | "udp": the session's (last session's while down)
        self.transport_note = ""  # why not what was asked for, e.g. "tcp refused (461)"
        self.b_frames = False  # timestamps went backwards in send order (B-frames): said once
        self.bye_reopens = 0  # sessions reopened after the camera's RTCP BYE
        self._tcp_refused = 0  # "auto" learnt that this camera refuses RTP over TCP (the status)
        self._max_pts: int | None = None
        # RTP counters of the ended sessions, and the session being read: one attribute, swapped
        # in one assignment, so that the status loop never counts a session twice or not at all
        self._rtp: tuple[collections.Counter[str], RtspReceiver | None] = (collections.Counter(), None)

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
                if reason == "bye" and self.state in ("up", "degraded") and self.last_frame_at is not None \
                        and self.last_frame_at >= self._opened:
                    # the camera ended its stream (a restarted encoder, VLC's next loop): it is not
                    # failing, so reopen at once and stay up unless the reopen fails
                    self.reconnects += 1
                    self.bye_reopens += 1
                    metrics.RECONNECTS.labels(camera=self.camera_id, reason=reason).inc()
                    (log.info if self.bye_reopens == 1 else log.debug)(
                        "camera %s: the camera ended its RTP stream (RTCP BYE); reopening", self.camera_id)
                    self.backoff.reset()
                    self._stop.wait(BYE_REOPEN_S)
                    continue
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
                if reason not in ("auth", "not_found"):
                    self._tcp_refused = 0  # "auto" tries TCP first again: the camera may have changed
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
        if o.receiver == "native" and self._url.reveal().startswith("rtsp://"):
            transport = "udp" if o.transport == "auto" and self._tcp_refused else o.transport
            native = RtspReceiver(self._url.reveal(), connect_timeout_s=o.connect_timeout_s,
                                  read_timeout_s=o.read_timeout_s, allow_basic_auth=o.allow_basic_auth,
                                  transport=transport, udp_ports=o.udp_ports, bye_timeout_s=o.bye_timeout_s)
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
        self._max_pts = None

    def _transport_of(self, rx: RtspReceiver) -> None:
        self.transport = rx.transport
        if rx.tcp_refused:
            if not self._tcp_refused and not self.transport_note:
                log.warning("camera %s: RTP over TCP refused (RTSP %d): reading RTP over UDP",
                            self.camera_id, rx.tcp_refused)
            self._tcp_refused = rx.tcp_refused
            self.transport_note = f"tcp refused ({rx.tcp_refused})"
        elif rx.transport == "tcp":
            self.transport_note = ""

    def _rtp_event(self, kind: str) -> None:
        """From the reactor thread: a new sender (SSRC) or a BYE. Counted; said at debug level
        (a looping VLC says both on every loop)."""
        log.debug("camera %s: RTP %s", self.camera_id, kind)

    def rtp_stats(self) -> dict[str, int]:
        """RTP counters of this camera's sessions so far: ``lost`` (packets), ``reordered``,
        ``late``, ``ssrc_changes``, ``byes``, ``foreign`` (datagrams from other hosts)."""
        past, rx = self._rtp
        out = collections.Counter(past)
        if rx is not None:
            out.update(_rx_stats(rx))
        return dict(out)

    def _read_native(self, rx: RtspReceiver) -> str:
        """Hand the playing session to the reactor and wait for it to end."""
        assert rx.info is not None
        self._begin(rx.info)
        self._transport_of(rx)
        rx.on_event = self._rtp_event
        self._rtp = (self._rtp[0], rx)
        try:
            return self._play_native(rx)
        finally:
            total = collections.Counter(self._rtp[0])
            total.update(_rx_stats(rx))  # (not +, which drops the zeros)
            self._rtp = (total, None)

    def _play_native(self, rx: RtspReceiver) -> str:
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
        if reason in ("eof", "stalled") and rx.bye_at is not None:
            reason = "bye"  # the camera said BYE, then hung up or went silent (VLC closes the connection)
        log.debug("camera %s read failed (%s): %s", self.camera_id, reason, mask_text(str(why[0])))
        return reason

    def _read(self, reader: PyAvReader) -> str:
        assert reader.info is not None
        self._begin(reader.info)
        self.transport = "tcp" if self.options.transport == "auto" else self.options.transport
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
            if self.last_keyframe_at is not None and 0 < (gap := now - self.last_keyframe_at) < MAX_GOP_S:
                k = self.keyframe_interval_s
                self.keyframe_interval_s = gap if k is None else k + 0.2 * (gap - k)
            self.last_keyframe_at = now
        if pkt.pts is not None:
            if self._max_pts is None or pkt.pts > self._max_pts:
                self._max_pts = pkt.pts
            elif pkt.pts < self._max_pts and not self.b_frames:
                self.b_frames = True
                log.warning("camera %s: the stream has B-frames (timestamps go backwards in send order): "
                            "keyframes are sampled as usual; clips get decode times rebuilt from them",
                            self.camera_id)
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


def _rx_stats(rx: RtspReceiver) -> dict[str, int]:
    jitter = rx.jitter
    return {"lost": rx.depacketizer.lost_packets if rx.depacketizer is not None else 0,
            "reordered": jitter.reordered if jitter is not None else 0,
            "late": jitter.late if jitter is not None else 0,
            "ssrc_changes": rx.ssrc_changes, "byes": rx.byes, "foreign": rx.foreign}
