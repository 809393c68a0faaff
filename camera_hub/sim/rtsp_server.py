"""The camera simulator: every simulated camera as its own RTSP path, from one asyncio process.

RTSP 1.0 over TCP with interleaved RTP (RFC 2326 §10.12), H.264 packetised per RFC 6184. Each
scene is encoded and packetised once; serving is a copy of a frame's packets with sequence
number, timestamp and SSRC written in, one socket write per frame per session, and one
scheduler task paces every session (no timer per packet or per session). Faults can be
injected per camera (drop, stall, refuse, restart, garbage, resize, no_keyframes, credentials).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import logging
import random
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from camera_hub.sim.encode import EncodedScene, Progress, encode_scene, frame_boxes
from camera_hub.sim.rtp import RtpFrame, corrupt, packetize, stamp
from camera_hub.sim.scenes import SceneScript, load_script

log = logging.getLogger(__name__)

FAULT_KINDS = ("drop", "stall", "refuse", "restart", "garbage", "resize", "no_keyframes", "credentials", "clear")
RESTART_REFUSE_S = 2.0
SLOW_READER_BYTES = 512 * 1024  # unsent bytes above which frames are dropped for that reader
SLOW_READER_CLOSE_S = 10.0  # a reader that stays that far behind this long is disconnected
SEND_BUFFER_BYTES = 256 * 1024  # kernel send buffer per reader (a camera has little memory)
REALM = "Camera Hub simulator"
SESSION_TIMEOUT_S = 60
CONNECTION_LOG_MAX = 100_000  # connection events kept (GET /log?since=N); ~100 bytes each
CLOCK_RATE = 90_000


@dataclass(frozen=True)
class SimCameraSpec:
    camera_id: str  # URL path segment: rtsp://host:port/<camera_id>/<stream>
    scene: str  # scene script name (e.g. "street_vending") or a path to a script file
    offset_s: float = 0.0  # where in the scene loop this camera starts at server start


@dataclass(frozen=True)
class ConnEvent:
    t: float  # wall clock
    camera_id: str
    stream: str
    session: str
    peer: str
    event: str  # "play" | "close"


@dataclass(frozen=True)
class GroundTruthEpisode:
    type: str  # "vending" | "crowding" | "tamper" | "night"
    zone_id: str
    start: float  # epoch seconds
    end: float
    boxes: list[tuple[str, tuple[float, float, float, float]]]  # (label, 0..1 box)
    reason: str | None = None  # tamper: "covered" | "moved"

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "zone_id": self.zone_id, "start": self.start, "end": self.end,
                "reason": self.reason, "boxes": [{"label": lb, "box": list(b)} for lb, b in self.boxes]}


# ------------------------------------------------------------------------------- tracks
@dataclass(eq=False)
class _Track:
    """One encoded scene at one size, packetised."""

    encoded: EncodedScene
    frames: list[RtpFrame]
    boxes: list[list[tuple[str, tuple[int, int, int, int]]]] | None = None  # per frame, loaded on demand

    @classmethod
    def build(cls, encoded: EncodedScene) -> _Track:
        return cls(encoded, [packetize(n, k) for n, k in zip(encoded.frames, encoded.keyframes, strict=True)])

    def fmtp(self) -> str:
        e = self.encoded
        sprop = f"{base64.b64encode(e.sps).decode()},{base64.b64encode(e.pps).decode()}"
        return f"packetization-mode=1;profile-level-id={e.profile_level_id};sprop-parameter-sets={sprop}"


def _half(size: tuple[int, int]) -> tuple[int, int]:
    return max(2, size[0] // 4 * 2), max(2, size[1] // 4 * 2)


# ------------------------------------------------------------------------------- cameras and sessions
@dataclass
class _Fault:
    kind: str
    until: float | None  # loop time


@dataclass(eq=False)
class _Camera:
    spec: SimCameraSpec
    script: SceneScript
    offset_frames: int
    fault: _Fault | None = None
    sessions: set[_Session] = field(default_factory=set)

    def fault_kind(self, now: float) -> str | None:
        f = self.fault
        if f is None:
            return None
        if f.until is not None and now >= f.until:
            self.fault = None
            return None
        return f.kind


@dataclass(eq=False)
class _Session:
    id: str
    conn: _RtspConnection
    camera: _Camera
    stream: str
    channel: int
    ssrc: int
    seq: int
    ts_base: int
    track: _Track | None = None
    resized: bool = False  # serving the "resize" fault's other size
    next_g: int = 0  # next frame to send, counted from server start (the camera's timeline)
    playing: bool = False
    need_key: bool = False
    slow_since: float | None = None
    logged_play: bool = False


class SimServer:
    """Serves ``cameras`` as ``rtsp://host:port/<camera_id>/<main|sub>``; see SIM_CONTRACT.md."""

    def __init__(self, cameras: list[SimCameraSpec], *, host: str = "127.0.0.1", port: int = 0,
                 control_port: int | None = 0, credentials: tuple[str, str] | None = None,
                 width: int = 640, height: int = 360, fps: int = 10, gop: int = 20,
                 cache_dir: Path | None = None, main_size: tuple[int, int] | None = None,
                 eager_main: bool | Callable[[SimCameraSpec], bool] = False,
                 progress: Progress | None = None, stamp_frames: bool = False) -> None:
        ids = [c.camera_id for c in cameras]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate camera ids")
        for cid in ids:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", cid):
                raise ValueError(f"camera id {cid!r} cannot be a URL path segment")
        self.specs = list(cameras)
        self.host, self.port, self.control_port = host, port, control_port
        self.credentials = credentials
        self.width, self.height, self.fps, self.gop = width, height, fps, gop
        self.cache_dir = cache_dir
        self.main_size = main_size
        self.eager_main = eager_main
        self.progress = progress
        self.stamp_frames = stamp_frames  # each frame's index burnt in (camera_hub/sim/stamp.py)
        self.started_at = 0.0
        # bounded: a simulator serving 1,000 cameras through hours of faults logs ~12 MB an hour
        self.connection_log: deque[ConnEvent] = deque(maxlen=CONNECTION_LOG_MAX)
        self.log_dropped = 0  # entries dropped off the front: the absolute index of the first kept
        self._cameras: dict[str, _Camera] = {}
        self._tracks: dict[tuple[str, int, int], _Track] = {}
        self._encoding: dict[tuple[str, int, int], asyncio.Task[_Track]] = {}
        self._playing: set[_Session] = set()
        self._conns: set[_RtspConnection] = set()
        self._server: asyncio.Server | None = None
        self._control: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0  # loop time of frame 0

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        scripts: dict[str, SceneScript] = {}
        for spec in self.specs:
            if spec.scene not in scripts:
                scripts[spec.scene] = load_script(spec.scene)
        for spec in self.specs:
            script = scripts[spec.scene]
            frames = max(1, round(script.loop_s * self.fps))
            offset = round(spec.offset_s * self.fps) % frames
            self._cameras[spec.camera_id] = _Camera(spec, script, offset)
        wanted = {(s.scene, self.width, self.height) for s in self.specs}
        for spec in self.specs:
            if self.eager_main is True or (callable(self.eager_main) and self.eager_main(spec)):
                wanted.add((spec.scene, *self._main_size(scripts[spec.scene])))
        for key in sorted(wanted):
            await self._get_track(scripts[key[0]], key[0], key[1], key[2])
        self.started_at = time.time()  # before the first client can connect
        self._t0 = self._loop.time()
        self._server = await self._loop.create_server(lambda: _RtspConnection(self), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.control_port is not None:
            from camera_hub.sim.control import handle_control

            self._control = await asyncio.start_server(lambda r, w: handle_control(self, r, w), self.host,
                                                       self.control_port)
            self.control_port = self._control.sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick_forever(), name="sim-scheduler")
        log.info("simulator serving %d cameras on rtsp://%s:%d/", len(self._cameras), self.host, self.port)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        for server in (self._server, self._control):
            if server is not None:
                server.close()
        for conn in list(self._conns):
            conn.close()
        for server in (self._server, self._control):
            if server is not None:
                await server.wait_closed()
        self._server = self._control = None
        for task in self._encoding.values():
            task.cancel()

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- public API
    def url(self, camera_id: str, stream: str = "sub", *, with_credentials: bool = True) -> str:
        if camera_id not in self._cameras and camera_id not in {s.camera_id for s in self.specs}:
            raise KeyError(camera_id)
        auth = ""
        if with_credentials and self.credentials:
            from urllib.parse import quote

            auth = f"{quote(self.credentials[0], safe='')}:{quote(self.credentials[1], safe='')}@"
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host  # listening on all: reach it locally
        return f"rtsp://{auth}{host}:{self.port}/{camera_id}/{stream}"

    @property
    def camera_ids(self) -> list[str]:
        return [s.camera_id for s in self.specs]

    def scene_of(self, camera_id: str) -> str:
        return self._cameras[camera_id].script.name

    def fault_of(self, camera_id: str) -> str | None:
        return self._cameras[camera_id].fault_kind(self._now())

    def sessions_of(self, camera_id: str) -> int:
        return sum(1 for s in self._cameras[camera_id].sessions if s.playing)

    def fault(self, camera_id: str, kind: str, duration_s: float | None = None) -> None:
        """Inject a fault on one camera (all its streams); see FAULT_KINDS and the contract.
        Safe to call from any thread (it is applied on the server's event loop)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        if camera_id not in self._cameras:
            raise KeyError(camera_id)
        if duration_s is not None and duration_s <= 0:
            raise ValueError("duration_s must be positive")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is not None and running is not self._loop:
            self._loop.call_soon_threadsafe(self._apply_fault, camera_id, kind, duration_s)
        else:
            self._apply_fault(camera_id, kind, duration_s)

    def _apply_fault(self, camera_id: str, kind: str, duration_s: float | None) -> None:
        cam = self._cameras[camera_id]
        now = self._now()
        until = None if duration_s is None else now + duration_s
        log.info("fault %s on %s for %s", kind, camera_id, "ever" if duration_s is None else f"{duration_s} s")
        if kind == "clear":
            cam.fault = None
            return
        if kind in ("drop", "restart", "credentials"):  # a password change reboots the camera's sessions
            for session in list(cam.sessions):
                session.conn.close()
        if kind == "drop":
            cam.fault = _Fault("drop", until) if until is not None else None
            return
        if kind == "restart":
            cam.fault = _Fault("restart", now + (duration_s or RESTART_REFUSE_S))
            return
        cam.fault = _Fault(kind, until)
        if kind == "resize" and self._loop is not None:
            for stream in ("sub", "main"):
                size = _half(self._stream_size(cam, stream))
                key = (cam.spec.scene, *size)
                if key not in self._tracks and (stream == "sub" or self._has_track(cam, "main")):
                    self._loop.create_task(self._get_track(cam.script, *key))

    def ground_truth(self, camera_id: str, now: float | None = None) -> list[GroundTruthEpisode]:
        """Episodes on this camera's wall-clock timeline: every loop started by ``now`` (default:
        the current time) including the current one, clipped to the server's start; episodes of
        the same kind that meet at a loop boundary are merged."""
        cam = self._cameras[camera_id]
        track = self._tracks.get((cam.spec.scene, self.width, self.height))
        if track is None:
            return []
        loop_s = track.encoded.loop_s
        origin = self.started_at - cam.offset_frames / self.fps  # wall time when loop 0 began
        position = (time.time() if now is None else now) - origin
        out: list[GroundTruthEpisode] = []
        for k in range(int(position // loop_s) + 1):
            for e in track.encoded.episodes:
                start, end = origin + k * loop_s + e.start, origin + k * loop_s + e.end
                if end <= self.started_at:
                    continue
                start = max(start, self.started_at)
                prev = next((p for p in reversed(out) if p.type == e.type and p.zone_id == e.zone_id), None)
                if prev is not None and abs(prev.end - start) < 1e-6:
                    out[out.index(prev)] = GroundTruthEpisode(e.type, e.zone_id, prev.start, end, prev.boxes, e.reason)
                    continue
                out.append(GroundTruthEpisode(e.type, e.zone_id, start, end, list(e.boxes), e.reason))
        return sorted(out, key=lambda g: (g.start, g.type))

    def captured_at(self, camera_id: str, index: int, now: float | None = None) -> float | None:
        """The wall time this camera last showed (sent) frame ``index`` of its loop by ``now``
        (default: the current time): with ``stamp_frames``, what the index read from a picture
        stands for. None before the server sent it."""
        cam = self._cameras[camera_id]
        n = max(1, round(cam.script.loop_s * self.fps))
        g = int(((time.time() if now is None else now) - self.started_at) * self.fps)  # the frame on show
        g -= (cam.offset_frames + g - index) % n  # back to the last one with that index
        return self.started_at + g / self.fps if g >= 0 else None

    def objects_at(self, camera_id: str, t: float | None = None) -> list[tuple[str, tuple[float, float, float, float]]]:
        """The labelled objects (0..1 boxes) in the frame this camera shows at wall time ``t``
        (default now), from the per-frame boxes stored beside the encoded scene."""
        cam = self._cameras[camera_id]
        track = self._tracks[(cam.spec.scene, self.width, self.height)]
        if track.boxes is None:
            track.boxes = frame_boxes(track.encoded)
        g = int(((time.time() if t is None else t) - self.started_at) * self.fps)
        w, h = track.encoded.width, track.encoded.height
        boxes = track.boxes[(cam.offset_frames + g) % len(track.frames)]
        return [(label, (x0 / w, y0 / h, x1 / w, y1 / h)) for label, (x0, y0, x1, y1) in boxes]

    # ----------------------------------------------------------------- tracks
    def _main_size(self, script: SceneScript) -> tuple[int, int]:
        if self.main_size is not None:
            return self.main_size
        return (1920, 1080) if script.layout == "lookout" else (1280, 720)

    def _stream_size(self, cam: _Camera, stream: str) -> tuple[int, int]:
        return (self.width, self.height) if stream == "sub" else self._main_size(cam.script)

    def _has_track(self, cam: _Camera, stream: str) -> bool:
        return (cam.spec.scene, *self._stream_size(cam, stream)) in self._tracks

    async def _get_track(self, script: SceneScript, scene: str, width: int, height: int) -> _Track:
        key = (scene, width, height)
        if key in self._tracks:
            return self._tracks[key]
        task = self._encoding.get(key)
        if task is None:
            task = asyncio.create_task(asyncio.to_thread(self._encode_track, script, width, height))
            self._encoding[key] = task
        try:
            track = await asyncio.shield(task)
        finally:
            if task.done():
                self._encoding.pop(key, None)
        self._tracks[key] = track
        return track

    def _encode_track(self, script: SceneScript, width: int, height: int) -> _Track:
        encoded = encode_scene(script, width, height, fps=self.fps, gop=self.gop, cache_dir=self.cache_dir,
                               progress=self.progress, stamp=self.stamp_frames)
        return _Track.build(encoded)

    async def track_for(self, cam: _Camera, stream: str) -> _Track:
        resized = cam.fault_kind(self._now()) == "resize"
        size = self._stream_size(cam, stream)
        if resized and (cam.spec.scene, *_half(size)) in self._tracks:
            size = _half(size)
        return await self._get_track(cam.script, cam.spec.scene, *size)

    # ----------------------------------------------------------------- pacing
    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else time.monotonic()

    def _frame_now(self) -> int:
        return int((self._now() - self._t0) * self.fps)

    async def _tick_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            g_now = self._frame_now()
            for session in list(self._playing):
                try:
                    self._pump(session, g_now)
                except Exception:  # one broken session must not stop every camera
                    log.exception("session %s failed", session.id)
                    session.conn.close()
            delay = self._t0 + (g_now + 1) / self.fps - loop.time()
            await asyncio.sleep(max(0.0, delay))

    def start_frame(self, session: _Session) -> int:
        """The most recent keyframe at or before now, so a new reader can decode at once."""
        g = self._frame_now()
        track = session.track
        assert track is not None
        n = len(track.frames)
        for back in range(n):
            if track.frames[(session.camera.offset_frames + g - back) % n].keyframe:
                return g - back
        return g

    def _pump(self, s: _Session, g_now: int) -> None:
        """Send session ``s`` every frame due up to ``g_now``."""
        cam = s.camera
        now = self._now()
        kind = cam.fault_kind(now)
        if kind == "stall":
            s.next_g = g_now + 1
            return
        if g_now - s.next_g > 2 * self.fps:  # the loop itself fell behind: skip, do not burst
            s.next_g = g_now
            s.need_key = True
        transport = s.conn.transport
        if transport is None or transport.is_closing():
            return
        while s.next_g <= g_now:
            g = s.next_g
            s.next_g += 1
            track = self._switch_track(s, kind, g)
            frame = track.frames[(cam.offset_frames + g) % len(track.frames)]
            if frame.keyframe and kind == "no_keyframes":
                continue
            if transport.get_write_buffer_size() > SLOW_READER_BYTES:
                s.need_key = True  # a reader that cannot keep up loses frames, as from a real camera
                s.slow_since = s.slow_since or now
                if now - s.slow_since > SLOW_READER_CLOSE_S:
                    log.info("closing slow reader %s of %s", s.conn.peer, cam.spec.camera_id)
                    s.conn.close()
                    return
                continue
            s.slow_since = None
            if s.need_key and not frame.keyframe:
                continue
            s.need_key = False
            ts = s.ts_base + g * CLOCK_RATE // self.fps
            buf = stamp(frame, s.seq, ts, s.ssrc, s.channel)
            s.seq = (s.seq + len(frame.offsets)) & 0xFFFF
            if kind == "garbage":
                corrupt(buf, frame)
            transport.write(buf)

    def _switch_track(self, s: _Session, kind: str | None, g: int) -> _Track:
        """Resize fault: move to the other size (or back) at the next keyframe of the target."""
        assert s.track is not None
        want_resized = kind == "resize"
        if want_resized == s.resized:
            return s.track
        size = self._stream_size(s.camera, s.stream)
        key = (s.camera.spec.scene, *(_half(size) if want_resized else size))
        target = self._tracks.get(key)
        if target is None:
            return s.track
        if target.frames[(s.camera.offset_frames + g) % len(target.frames)].keyframe:
            s.track, s.resized = target, want_resized
        return s.track

    # ----------------------------------------------------------------- session bookkeeping
    def _log(self, s: _Session, event: str) -> None:
        if len(self.connection_log) == self.connection_log.maxlen:
            self.log_dropped += 1
        self.connection_log.append(ConnEvent(time.time(), s.camera.spec.camera_id, s.stream, s.id, s.conn.peer, event))

    def log_since(self, since: int) -> tuple[list[ConnEvent], int]:
        """Entries from absolute index ``since`` on (those still kept), and the index after them."""
        start = max(0, since - self.log_dropped)
        return list(itertools.islice(self.connection_log, start, None)), self.log_dropped + len(self.connection_log)

    def _play(self, s: _Session) -> None:
        s.playing = True
        self._playing.add(s)
        if not s.logged_play:
            s.logged_play = True
            self._log(s, "play")

    def _end(self, s: _Session) -> None:
        self._playing.discard(s)
        s.camera.sessions.discard(s)
        if s.logged_play:
            self._log(s, "close")
            s.logged_play = False
        s.playing = False


# ------------------------------------------------------------------------------- RTSP protocol
@dataclass
class _Request:
    method: str
    uri: str
    headers: dict[str, str]
    body: bytes

    @property
    def cseq(self) -> str:
        return self.headers.get("cseq", "0")


class _RtspConnection(asyncio.Protocol):
    """One client TCP connection: RTSP requests in, responses and interleaved RTP out."""

    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.buf = bytearray()
        self.nonce = secrets.token_hex(16)
        self.sessions: dict[str, _Session] = {}
        self.pending: asyncio.Task[None] | None = None
        self.queue: list[_Request] = []

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.server._conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._conns.discard(self)
        for s in self.sessions.values():
            self.server._end(s)
        self.sessions.clear()
        if self.pending is not None:
            self.pending.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > 1 << 20:  # nobody sends a megabyte of RTSP headers
            self.close()
            return
        while True:
            req = self._parse_one()
            if req is None:
                break
            self.queue.append(req)
        if self.queue and (self.pending is None or self.pending.done()):
            self.pending = asyncio.ensure_future(self._serve_queue())

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        for s in list(self.sessions.values()):
            self.server._end(s)

    # parsing
    def _parse_one(self) -> _Request | None:
        buf = self.buf
        while buf[:1] == b"$":  # interleaved data from the client (RTCP receiver reports): skip
            if len(buf) < 4:
                return None
            size = int.from_bytes(buf[2:4], "big")
            if len(buf) < 4 + size:
                return None
            del buf[:4 + size]
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buf[:end]).decode("utf-8", "replace").split("\r\n")
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if len(buf) < end + 4 + length:
            return None
        body = bytes(buf[end + 4:end + 4 + length])
        del buf[:end + 4 + length]
        parts = head[0].split()
        if len(parts) != 3:
            return _Request("BAD", "", headers, body)
        return _Request(parts[0].upper(), parts[1], headers, body)

    async def _serve_queue(self) -> None:
        while self.queue:
            req = self.queue.pop(0)
            try:
                await self._handle(req)
            except Exception:
                log.exception("RTSP %s failed", req.method)
                self._reply(req, 500, "Internal Server Error")

    # responses
    def _reply(self, req: _Request, code: int, reason: str, headers: dict[str, str] | None = None,
               body: bytes = b"") -> None:
        if self.transport is None or self.transport.is_closing():
            return
        lines = [f"RTSP/1.0 {code} {reason}", f"CSeq: {req.cseq}", "Server: camera-hub-sim"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def _authorized(self, req: _Request) -> bool:
        creds = self.server.credentials
        if creds is None:
            return True
        header = req.headers.get("authorization", "")
        if not header.lower().startswith("digest "):
            return False
        fields = {m[1].lower(): (m[2] if m[2] is not None else m[3])
                  for m in re.finditer(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', header[7:])}
        if fields.get("username") != creds[0] or fields.get("nonce") != self.nonce or fields.get("realm") != REALM:
            return False

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - RFC 2617 Digest is MD5

        ha1 = md5(f"{creds[0]}:{REALM}:{creds[1]}")
        ha2 = md5(f"{req.method}:{fields.get('uri', '')}")
        if fields.get("qop"):
            nc, cnonce = fields.get("nc", ""), fields.get("cnonce", "")
            expected = md5(f"{ha1}:{self.nonce}:{nc}:{cnonce}:{fields['qop']}:{ha2}")
        else:
            expected = md5(f"{ha1}:{self.nonce}:{ha2}")
        return secrets.compare_digest(expected, fields.get("response", ""))

    def _target(self, uri: str) -> tuple[_Camera | None, str]:
        parts = [p for p in urlsplit(uri).path.split("/") if p]
        if len(parts) < 2 or parts[1] not in ("main", "sub") or len(parts) > 3:
            return None, ""
        return self.server._cameras.get(parts[0]), parts[1]

    async def _handle(self, req: _Request) -> None:
        server = self.server
        if req.method == "BAD":
            self._reply(req, 400, "Bad Request")
            return
        if req.method == "OPTIONS":
            self._reply(req, 200, "OK", {"Public": "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER"})
            return
        session = self.sessions.get(req.headers.get("session", "").split(";")[0])
        cam, stream = (session.camera, session.stream) if session else self._target(req.uri)
        if cam is not None and cam.fault_kind(server._now()) == "stall":
            return  # a stalled camera says nothing at all
        if not self._authorized(req) or (cam is not None and cam.fault_kind(server._now()) == "credentials"):
            self._reply(req, 401, "Unauthorized", {"WWW-Authenticate": f'Digest realm="{REALM}", nonce="{self.nonce}"'})
            return
        if req.method in ("GET_PARAMETER", "SET_PARAMETER"):
            self._reply(req, 200, "OK", self._session_header(session))
            return
        if req.method == "TEARDOWN":
            self._reply(req, 200, "OK")
            if session is not None:
                self.sessions.pop(session.id, None)
                server._end(session)
            return
        if cam is None:
            self._reply(req, 404, "Not Found")
            return
        kind = cam.fault_kind(server._now())
        if kind == "drop":
            self.close()
            return
        if kind in ("refuse", "restart") and req.method in ("DESCRIBE", "SETUP", "PLAY"):
            self._reply(req, 503, "Service Unavailable")
            return
        handler = {"DESCRIBE": self._describe, "SETUP": self._setup, "PLAY": self._play, "PAUSE": self._pause}.get(
            req.method)
        if handler is None:
            self._reply(req, 405, "Method Not Allowed", {"Allow": "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN"})
            return
        await handler(req, cam, stream, session)

    def _session_header(self, session: _Session | None) -> dict[str, str]:
        return {"Session": f"{session.id};timeout={SESSION_TIMEOUT_S}"} if session else {}

    def _base_url(self, req: _Request, cam: _Camera, stream: str) -> str:
        parts = urlsplit(req.uri)
        netloc = parts.netloc.rpartition("@")[2] or f"{self.server.host}:{self.server.port}"
        return f"rtsp://{netloc}/{cam.spec.camera_id}/{stream}/"

    async def _describe(self, req: _Request, cam: _Camera, stream: str, _s: _Session | None) -> None:
        track = await self.server.track_for(cam, stream)
        e = track.encoded
        sdp = "\r\n".join([
            "v=0", f"o=- {random.getrandbits(32)} 1 IN IP4 {self.server.host}",
            f"s=Camera Hub simulator {cam.spec.camera_id}",
            "c=IN IP4 0.0.0.0", "t=0 0", "a=control:*", "a=range:npt=now-",
            "m=video 0 RTP/AVP 96", f"a=rtpmap:96 H264/{CLOCK_RATE}", f"a=fmtp:96 {track.fmtp()}",
            f"a=framerate:{e.fps}", f"a=x-dimensions:{e.width},{e.height}", "a=control:trackID=0", "",
        ]).encode()
        self._reply(req, 200, "OK", {"Content-Base": self._base_url(req, cam, stream),
                                     "Content-Type": "application/sdp"}, sdp)

    async def _setup(self, req: _Request, cam: _Camera, stream: str, session: _Session | None) -> None:
        transport = req.headers.get("transport", "")
        if "RTP/AVP/TCP" not in transport.upper():
            self._reply(req, 461, "Unsupported Transport")
            return
        m = re.search(r"interleaved=(\d+)(?:-(\d+))?", transport)
        channel = int(m[1]) if m else 0
        if channel > 254:
            self._reply(req, 461, "Unsupported Transport")
            return
        if session is None:
            session = _Session(secrets.token_hex(8), self, cam, stream, channel, random.getrandbits(32),
                               random.getrandbits(16), random.getrandbits(32))
            self.sessions[session.id] = session
            cam.sessions.add(session)
        session.channel = channel
        session.track = await self.server.track_for(cam, stream)
        size = (session.track.encoded.width, session.track.encoded.height)
        session.resized = size != self.server._stream_size(cam, stream)
        self._reply(req, 200, "OK", {
            "Transport": f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1};ssrc={session.ssrc:08X}",
            **self._session_header(session),
        })

    async def _play(self, req: _Request, cam: _Camera, stream: str, session: _Session | None) -> None:
        if session is None:
            self._reply(req, 454, "Session Not Found")
            return
        server = self.server
        if not session.playing:
            session.next_g = server.start_frame(session)
            session.need_key = False
        ts = (session.ts_base + session.next_g * CLOCK_RATE // server.fps) & 0xFFFFFFFF
        url = self._base_url(req, cam, stream) + "trackID=0"
        self._reply(req, 200, "OK", {"Range": "npt=now-", "RTP-Info": f"url={url};seq={session.seq};rtptime={ts}",
                                     **self._session_header(session)})
        server._play(session)
        server._pump(session, server._frame_now())  # the GOP so far, at once: a reader can decode now

    async def _pause(self, req: _Request, cam: _Camera, stream: str, session: _Session | None) -> None:
        if session is None:
            self._reply(req, 454, "Session Not Found")
            return
        session.playing = False
        self.server._playing.discard(session)
        self._reply(req, 200, "OK", self._session_header(session))
