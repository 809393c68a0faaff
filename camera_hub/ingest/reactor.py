"""Reactor: one thread per worker process reads every native RTSP session (epoll).

Why one thread and not one per camera: a blocking ``recv`` per camera costs a thread wake-up
and a GIL hand-over per frame; with hundreds of cameras that costs more than the bytes
(1.2 ms of CPU per stream-second at 50 cameras against 0.3 ms through one ``select`` loop,
measured on the simulator: benchmarks/README.md). The handshake stays in each camera's own
thread (it blocks, behind the worker's :class:`~camera_hub.ingest.backoff.OpenGate`); once the
session plays, its socket is handed here. Packets are delivered to the session's callback in
this thread, so the callback must be quick and must not block (the keyframe decode that it may
do is the one exception worth having: one picture per sampling interval).

A UDP session (:mod:`camera_hub.ingest.rtp`) has three sockets here: RTSP (keepalive replies,
the server hanging up), RTP and RTCP. Its read timeout counts RTP only. Any session whose bytes
complete no frame for the read timeout ends too (``NoVideoError``). Every :data:`SWEEP_S`
each session's timers run (:meth:`RtspReceiver.tick`: jitter buffer, receiver reports, the
deadline after an RTCP BYE).
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from camera_hub import metrics
from camera_hub.events import EncodedPacket
from camera_hub.ingest.rtsp import RECV_BYTES, NoVideoError, RtspReceiver

log = logging.getLogger(__name__)

SWEEP_S = 0.25  # how often silent sessions are looked for
# A UDP session whose server closed the RTSP connection ends this long after, unless its RTCP
# BYE comes first (VLC closes the connection a fraction of a millisecond after its BYE, and the
# two may be read in either order): the Source then knows the camera ended the stream.
HANGUP_GRACE_S = 0.3


@dataclass(eq=False)
class Session:
    rx: RtspReceiver
    on_packet: Callable[[EncodedPacket], None]
    on_end: Callable[[BaseException | None], None]  # None: removed on request
    read_timeout_s: float
    last_data: float = field(default_factory=time.monotonic)
    last_frame: float = field(default_factory=time.monotonic)  # an access unit delivered
    ended: bool = False
    socks: list[socket.socket] = field(default_factory=list)  # registered with the selector
    hung_up: float | None = None  # when the server closed the RTSP connection of a UDP session


class Reactor:
    def __init__(self, name: str = "rtsp-reactor") -> None:
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._todo: list[tuple[Session, bool]] = []  # (session, add?) for the reactor thread
        self._sessions: set[Session] = set()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def add(self, rx: RtspReceiver, on_packet: Callable[[EncodedPacket], None],
            on_end: Callable[[BaseException | None], None], read_timeout_s: float) -> Session:
        """Read ``rx`` (open and playing) from now on; ``on_end`` is called once, in the reactor
        thread, with the error that ended the session (``TimeoutError`` after ``read_timeout_s``
        without data, ``EOFError``, ...) or None after :meth:`remove`. The reactor closes ``rx``."""
        s = Session(rx, on_packet, on_end, read_timeout_s)
        self._post(s, True)
        return s

    def remove(self, s: Session) -> None:
        """End ``s`` (from any thread); idempotent."""
        self._post(s, False)

    def __len__(self) -> int:
        return len(self._sessions)

    def _post(self, s: Session, add: bool) -> None:
        with self._lock:
            self._todo.append((s, add))
        try:
            self._wake_w.send(b"\0")
        except BlockingIOError:  # the wake-up pipe is full: the reactor is awake anyway
            pass

    # ------------------------------------------------------------------ reactor thread
    def _run(self) -> None:
        next_sweep = time.monotonic() + SWEEP_S
        cpu_seen = time.thread_time()
        while True:
            for key, _ in self._sel.select(SWEEP_S):
                try:
                    if key.data is None:
                        self._take_todo()
                    elif key.data[1] == "rtsp":
                        self._read(key.data[0])
                    else:
                        self._read_udp(key.data[0], key.data[1] == "rtcp")
                except Exception:  # noqa: BLE001 - the reactor serves every camera: it never dies
                    log.exception("reactor: unexpected error")
                    if key.data is not None:
                        self._end(key.data[0], RuntimeError("reactor error"))
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + SWEEP_S
                cpu = time.thread_time()  # this thread's CPU (receive, and the decode it runs), for city_scale
                metrics.REACTOR_CPU.inc(cpu - cpu_seen)
                cpu_seen = cpu
                wall = time.time()
                for s in list(self._sessions):
                    if now - s.last_data > s.read_timeout_s:
                        self._end(s, TimeoutError(f"no data for {s.read_timeout_s:.0f} s"))
                    elif now - s.last_frame > s.read_timeout_s:
                        self._end(s, NoVideoError(f"data but no frame for {s.read_timeout_s:.0f} s"))
                    elif s.hung_up is not None and (s.rx.bye_at is not None or now - s.hung_up > HANGUP_GRACE_S):
                        self._end(s, EOFError("server closed the connection"))
                    else:
                        self._tick(s, now, wall)

    def _take_todo(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            todo, self._todo = self._todo, []
        for s, add in todo:
            if not add:
                self._end(s, None)
            elif not s.ended:
                s.rx.sock.setblocking(False)
                for sock, kind in ((s.rx.sock, "rtsp"), *zip(s.rx.udp or (), ("rtp", "rtcp"), strict=False)):
                    self._sel.register(sock, selectors.EVENT_READ, (s, kind))
                    s.socks.append(sock)
                self._sessions.add(s)
                s.last_data = s.last_frame = time.monotonic()
                self._deliver(s, b"")  # what came with the PLAY reply

    def _read(self, s: Session) -> None:
        if s.ended:  # removed by an earlier event of the same batch: its socket is closed
            return
        try:
            chunk = s.rx.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            self._end(s, exc)
            return
        if not chunk:
            if s.rx.udp is not None and s.hung_up is None:  # RTP and RTCP may still say why (BYE)
                s.hung_up = time.monotonic()
                self._sel.unregister(s.rx.sock)
                s.socks.remove(s.rx.sock)
                return
            self._end(s, EOFError("server closed the connection"))
            return
        if s.rx.udp is None:  # over UDP the RTSP connection carries only replies: RTP counts
            s.last_data = time.monotonic()
        self._deliver(s, chunk)

    def _read_udp(self, s: Session, rtcp: bool) -> None:
        if s.ended:
            return
        mono = time.monotonic()
        try:
            units, got_rtp = s.rx.read_udp(rtcp, time.time(), mono)
            if got_rtp:
                s.last_data = mono
            self._emit(s, units)
        except Exception as exc:  # noqa: BLE001 - one camera's trouble ends its session, not the reactor
            self._end(s, exc)

    def _tick(self, s: Session, mono: float, wall: float) -> None:
        try:
            self._emit(s, s.rx.tick(mono, wall))
        except Exception as exc:  # noqa: BLE001 - RtpByeError, or a consumer's failure
            self._end(s, exc)

    def _deliver(self, s: Session, chunk: bytes) -> None:
        try:
            self._emit(s, s.rx.feed(chunk, time.time()))
            s.rx.keepalive(s.last_data)
        except Exception as exc:  # noqa: BLE001 - one camera's trouble ends its session, not the reactor
            self._end(s, exc)

    @staticmethod
    def _emit(s: Session, units: list[EncodedPacket]) -> None:
        if units:
            s.last_frame = time.monotonic()
        for pkt in units:
            s.on_packet(pkt)

    def _end(self, s: Session, exc: BaseException | None) -> None:
        if s.ended:
            return
        s.ended = True
        if s in self._sessions:
            self._sessions.discard(s)
            for sock in s.socks:
                self._sel.unregister(sock)
        try:
            s.rx.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
        try:
            s.on_end(exc)
        except Exception:  # noqa: BLE001
            log.exception("session end callback failed")


_shared: Reactor | None = None
_shared_lock = threading.Lock()


def shared_reactor() -> Reactor:
    """The process's reactor, started on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Reactor()
        return _shared
