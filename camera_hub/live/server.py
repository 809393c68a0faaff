"""The worker's live endpoint: WHEP offers forwarded by the API, answered with peer connections
that send the camera's packets as they are.

Internal HTTP/1.1 on ``settings.live.host:port`` (one request per connection), for the API only:
every request carries the API's HMAC signature (:mod:`camera_hub.live.protocol`), checked before
anything else; the routes are

| method and path | what |
|---|---|
| ``POST /live/<camera>/<session>`` | body: the SDP offer; 201 with the SDP answer and ``ETag`` |
| ``PATCH /live/<camera>/<session>`` | body: a trickle ICE fragment; 204 once its candidates are added |
| ``DELETE /live/<camera>/<session>`` | ends the session (200; 404 when unknown or another user's) |
| ``GET /live/stats`` | sessions and cameras served, as JSON (benchmarks, ops) |

Errors are JSON ``{"detail": ...}``: 400 a malformed offer or fragment, or no token digest, 401 bad
signature, 404 no such session (or the signed user's is not its owner: the API checks that
first, the worker again), 409 session id in use, 412 ``If-Match`` is not the session's
``ETag``, 422 the camera or the offer cannot be played (H.265, B-frames, no H.264 in the offer) or
the fragment asks for an ICE restart, 428 no ``If-Match``, 429 the camera's viewer limit, 503 this
worker does not read the camera (any more), has no keyframe of it yet, or is at its session limit.

The endpoint's address is kept in Redis (``Plive:worker:<id>``) while the worker runs; every
:data:`~camera_hub.live.protocol.REFRESH_S` the server also pushes its sessions' expiry in their
users' sets and ends the sessions whose entry is gone, whose token is revoked (logout, user removed,
role or password changed, expiry: checked in the same script, one pipeline for all sessions),
whose camera this worker no longer reads, that never connected within ``connect_timeout_s``, or
that reached ``max_session_s``. It refreshes at once when the API publishes a revocation or a
session opens, and when the first of its sessions' tokens expires (the script says when).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from camera_hub import audit
from camera_hub.config import LiveSettings
from camera_hub.ingest.ring import PacketRing
from camera_hub.live import protocol
from camera_hub.live.media import LiveCamera, Unsupported, ViewerTrack
from camera_hub.live.sender import install as install_lean_sender

log = logging.getLogger(__name__)

# a session ends this long after its token's expiry (Redis's clock and ours, the script's ms)
TOKEN_END_SLACK_S = 0.05
DELETED = "deleted"  # why a session ended when its owner DELETEd it (through the API, which audits it)

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024  # an SDP offer is a few KiB
REQUEST_TIMEOUT_S = 10.0
_PATH = re.compile(r"^/live/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})/([0-9a-f]{32})$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_ICE = re.compile(r"^a=ice-(ufrag|pwd):(\S+)\s*$", re.M)
# "1": aiortc's own RTP send loop instead of camera_hub/live/sender.py (a check, or an aiortc it does not know)
AIORTC_SENDER_ENV = "CAMERA_HUB_LIVE_AIORTC_SENDER"
NO_H264 = ("the offer has no H.264 this server can send (packetization-mode=1, profile 42001f or 42e01f): "
           "use a browser with H.264 WebRTC (Chrome, Edge, Safari; Firefox with its OpenH264 plugin)")


class HttpError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass(eq=False)
class Session:
    id: str
    camera_id: str
    user: str
    pc: Any  # RTCPeerConnection
    track: ViewerTrack
    token: str = ""  # the digest of the token that opened it: the session lasts while that token does
    remote_ice: tuple[str, str] | None = None  # the viewer's ICE ufrag and pwd, from its offer
    etag: str = ""  # identifies the session's one ICE session (no ICE restarts): the answer's ufrag
    created: float = field(default_factory=time.monotonic)
    connected: bool = False


def ice_connection_class(ports: tuple[int, int] | None) -> type | None:
    """An aioice ``Connection`` whose host candidates bind in ``ports`` (inclusive), or None
    without a range. Only host candidates: live view configures no STUN or TURN server."""
    if ports is None:
        return None
    import random

    from aioice import Connection
    from aioice.candidate import Candidate, candidate_foundation, candidate_priority
    from aioice.ice import StunProtocol

    lo, hi = ports

    class RangeConnection(Connection):  # type: ignore[misc]
        async def get_component_candidates(self, component: int, addresses: list[str],
                                           timeout: int = 5) -> list[Candidate]:  # noqa: ASYNC109 - aioice signature
            if self.stun_server or self.turn_server:
                return await super().get_component_candidates(component, addresses, timeout)
            loop = asyncio.get_running_loop()
            candidates = []
            for address in addresses:
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                order = list(range(lo, hi + 1))
                random.shuffle(order)
                for port in order:
                    sock = socket.socket(family, socket.SOCK_DGRAM)
                    try:
                        sock.bind((address, port))
                    except OSError:
                        sock.close()
                        continue
                    sock.setblocking(False)
                    break
                else:
                    log.warning("no free UDP port in %d-%d on %s", lo, hi, address)
                    continue
                _, protocol_ = await loop.create_datagram_endpoint(lambda: StunProtocol(self), sock=sock)
                host, port_ = sock.getsockname()[:2]
                protocol_.local_candidate = Candidate(
                    foundation=candidate_foundation("host", "udp", host), component=component, transport="udp",
                    priority=candidate_priority(component, "host"), host=host, port=port_, type="host")
                self._protocols.append(protocol_)
                candidates.append(protocol_.local_candidate)
            return candidates

    return RangeConnection


def _own_address() -> str:
    """This host's address as other hosts see it (a container's or pod's IP), else its name."""
    name = socket.gethostname()
    try:
        return socket.gethostbyname(name)
    except OSError:
        return name


class LiveServer:
    """Serves the live views of the cameras this worker reads. ``ring_for(camera_id)`` gives the
    camera's ring while the worker reads it (``Worker.ring``), else None."""

    def __init__(self, settings: LiveSettings, *, secret: str, ring_for: Callable[[str], PacketRing | None],
                 redis: Any | None, prefix: str, worker_id: str) -> None:
        if len(secret) < protocol.MIN_SECRET_CHARS:
            raise ValueError(f"the live view secret needs at least {protocol.MIN_SECRET_CHARS} characters")
        self.settings = settings
        self._secret = secret
        self.ring_for = ring_for
        self.redis = redis
        self.prefix = prefix
        self.worker_id = worker_id
        self.sessions: dict[str, Session] = {}
        self.cameras: dict[str, LiveCamera] = {}
        self.url = ""
        self._server: asyncio.base_events.Server | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._recheck = asyncio.Event()  # set when the API publishes a revocation: refresh now
        self._token_ends: float | None = None  # monotonic time the first of the sessions' tokens expires
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refresh = redis.register_script(protocol.REFRESH) if redis is not None else None
        self._ice_class = ice_connection_class(settings.udp_ports)
        self._ice_default: type | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> str:
        s = self.settings
        self._server = await asyncio.start_server(self._handle, s.host, s.port, limit=MAX_HEAD_BYTES)
        port = self._server.sockets[0].getsockname()[1]
        host = s.advertise_host or (s.host if s.host not in ("0.0.0.0", "::", "") else _own_address())
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        if self._ice_class is not None:
            import aiortc.rtcicetransport

            self._ice_default = aiortc.rtcicetransport.Connection
            aiortc.rtcicetransport.Connection = self._ice_class  # this process's ICE agents bind in the range
        await self._register()
        self._refresher = asyncio.create_task(self._refresh_loop(), name="live-refresh")
        log.info("live view: worker %s serves viewers at %s", self.worker_id, self.url)
        return self.url

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self._server is not None:
            self._server.close()
        await asyncio.gather(*(self.close_session(sid, "worker stopping") for sid in list(self.sessions)),
                             return_exceptions=True)
        for cam in list(self.cameras.values()):
            cam.close()
        self.cameras.clear()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.delete(protocol.worker_key(self.prefix, self.worker_id))
        if self._ice_default is not None:
            import aiortc.rtcicetransport

            aiortc.rtcicetransport.Connection = self._ice_default
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _register(self) -> None:
        if self.redis is not None:
            await self.redis.set(protocol.worker_key(self.prefix, self.worker_id), self.url,
                                 px=protocol.ADDRESS_TTL_MS)

    async def _refresh_loop(self) -> None:
        """Every REFRESH_S, at once when the API says it revoked tokens (a burst of revocations
        is one refresh) or a session opened (to learn its token's expiry), and when a session's
        token expires."""
        listener = asyncio.create_task(self._revocations(), name="live-revocations")
        try:
            while True:
                wait = protocol.REFRESH_S
                if self._token_ends is not None:
                    wait = min(wait, max(0.0, self._token_ends - time.monotonic()) + TOKEN_END_SLACK_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._recheck.wait(), wait)
                self._recheck.clear()
                try:
                    await self.refresh()
                except Exception as exc:  # noqa: BLE001 - Redis away: keep serving, try again
                    log.warning("live view refresh failed: %s", type(exc).__name__)
        finally:
            listener.cancel()

    async def _revocations(self) -> None:
        if self.redis is None:
            return
        while True:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as ps:
                    await ps.subscribe(protocol.revoked_channel(self.prefix))
                    async for _ in ps.listen():
                        if self.sessions:
                            self._recheck.set()
            except Exception as exc:  # noqa: BLE001 - Redis away: the periodic refresh still runs
                log.debug("live view: revocation channel lost (%s); resubscribing", type(exc).__name__)
                await asyncio.sleep(protocol.REFRESH_S)

    async def refresh(self) -> None:
        """Keep the address and the sessions listed; end the sessions that must end."""
        now = time.monotonic()
        s = self.settings
        for sid, sess in list(self.sessions.items()):
            cam = self.cameras.get(sess.camera_id)
            why = None
            if cam is None or self.ring_for(sess.camera_id) is not cam.ring:
                why = "camera no longer read here"
            elif not sess.connected and now - sess.created > s.connect_timeout_s:
                why = "never connected"
            elif now - sess.created > s.max_session_s:
                why = "max_session_s reached"
            if why is not None:
                await self.close_session(sid, why)
        await self._register()
        if self.redis is not None and self._refresh is not None and self.sessions:
            ids = list(self.sessions)
            pipe = self.redis.pipeline(transaction=False)
            for sid in ids:
                sess = self.sessions[sid]
                await self._refresh(keys=[protocol.user_key(self.prefix, sess.user),
                                          protocol.token_key(self.prefix, sess.token),
                                          protocol.account_key(self.prefix, sess.user)],
                                    args=[sid, protocol.SESSION_TTL_MS, sess.user, *protocol.ROLES], client=pipe)
            left: list[int] = []
            for sid, (code, ms) in zip(ids, await pipe.execute(), strict=True):
                if int(code) == 1:
                    left.append(int(ms))
                elif sid in self.sessions:
                    await self.close_session(sid, "token revoked" if int(code) == 2 else "no longer listed")
            self._token_ends = now + min(left) / 1000 if left else None
        elif not self.sessions:
            self._token_ends = None

    # ------------------------------------------------------------------ sessions
    def _camera(self, camera_id: str) -> LiveCamera:
        ring = self.ring_for(camera_id)
        if ring is None:
            raise HttpError(503, f"this worker does not read camera {camera_id} (it may have moved); try again")
        cam = self.cameras.get(camera_id)
        if cam is not None and cam.ring is not ring:  # the camera was stopped and started again
            cam.close()
            cam = None
        if cam is None:
            cam = self.cameras[camera_id] = LiveCamera(camera_id, ring, asyncio.get_running_loop(),
                                                       on_unsupported=self._unsupported)
            cam.start()
        return cam

    def _unsupported(self, cam: LiveCamera, why: str) -> None:
        for sid, sess in list(self.sessions.items()):
            if sess.camera_id == cam.camera_id:
                self._spawn(self.close_session(sid, "unsupported stream"))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _release_camera(self, camera_id: str) -> None:
        cam = self.cameras.get(camera_id)
        if cam is not None and not cam.viewers and not any(s.camera_id == camera_id for s in self.sessions.values()):
            cam.close()
            del self.cameras[camera_id]

    async def open_session(self, camera_id: str, session_id: str, user: str, offer: str, token: str
                           ) -> tuple[str, str]:
        """The SDP answer and its entity tag; the session lasts while ``token`` (the digest of the
        viewer's token) does."""
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

        s = self.settings
        if session_id in self.sessions:
            raise HttpError(409, "session id in use")
        if len(self.sessions) >= s.max_sessions_per_worker:
            raise HttpError(503, f"this worker serves {len(self.sessions)} live sessions, its limit; try later")
        cam = self._camera(camera_id)
        try:
            cam.check()
            if not cam.has_keyframe:
                raise HttpError(503, f"no keyframe from camera {camera_id} yet; try again in a few seconds")
            viewers = sum(1 for x in self.sessions.values() if x.camera_id == camera_id)
            if viewers >= s.max_viewers_per_camera:
                raise HttpError(429, f"camera {camera_id} has {viewers} viewers, its limit "
                                f"(settings.live.max_viewers_per_camera)")
        except Unsupported as exc:
            self._release_camera(camera_id)
            raise HttpError(422, str(exc)) from None
        except HttpError:
            self._release_camera(camera_id)
            raise
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # host candidates only, nothing asked outside
        track = ViewerTrack()
        ice = dict(_ICE.findall(offer))
        sess = Session(session_id, camera_id, user, pc, track, token,
                       (ice["ufrag"], ice["pwd"]) if len(ice) == 2 else None)
        self.sessions[session_id] = sess
        try:
            transceiver = pc.addTransceiver(track, direction="sendonly")
            if os.environ.get(AIORTC_SENDER_ENV) != "1":
                install_lean_sender(transceiver.sender)
            caps = RTCRtpSender.getCapabilities("video").codecs
            transceiver.setCodecPreferences([c for c in caps if c.mimeType.lower() in ("video/h264", "video/rtx")])
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            except Exception as exc:  # noqa: BLE001 - aiortc raises several kinds for a bad offer
                if "H264" not in protocol.video_codecs(offer) or "send parameters" in str(exc):
                    raise HttpError(422, NO_H264) from None
                raise HttpError(400, f"cannot use this offer: {str(exc)[:200]}") from None
            await pc.setLocalDescription(await pc.createAnswer())
        except BaseException:
            self.sessions.pop(session_id, None)
            await pc.close()
            self._release_camera(camera_id)
            raise

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState == "connected":
                sess.connected = True
            elif pc.connectionState in ("failed", "closed"):
                await self.close_session(session_id, pc.connectionState)

        track.on_stop = lambda _t: cam.remove(track)
        cam.add(track)
        self._recheck.set()  # the refresh learns when its token expires
        sess.etag = dict(_ICE.findall(pc.localDescription.sdp)).get("ufrag", session_id)
        return protocol.add_ice_addresses(pc.localDescription.sdp, list(s.ice_addresses)), sess.etag

    def _owned(self, camera_id: str, session_id: str, user: str) -> Session:
        """The session, when it is of this camera and this (signed) user's; else 404, as if there
        were none (another user's session is not theirs to learn of)."""
        sess = self.sessions.get(session_id)
        if sess is None or sess.camera_id != camera_id or sess.user != user:
            raise HttpError(404, "no such session")
        return sess

    async def add_candidates(self, camera_id: str, session_id: str, fragment: str, if_match: str | None,
                             user: str) -> None:
        """Trickle ICE (RFC 9725 §4.3): add the viewer's candidates from an RFC 8840 fragment to
        the session's ICE agent. aioice takes remote candidates while its checks run, until
        end-of-candidates; those it cannot use (TCP, an address it cannot resolve, a type it does
        not know) it drops, as the RFC asks."""
        from aiortc.sdp import candidate_from_sdp

        sess = self._owned(camera_id, session_id, user)
        if if_match is None:
            raise HttpError(428, "send If-Match with the ETag of the WHEP answer")
        tags = {t.strip() for t in if_match.split(",")}
        if "*" not in tags and f'"{sess.etag}"' not in tags:
            raise HttpError(412, "If-Match is not this session's ETag (its ICE session)")
        try:
            frag = protocol.parse_sdpfrag(fragment)
        except ValueError as exc:
            raise HttpError(400, f"not a trickle ICE fragment: {exc}") from None
        ufrag, pwd = sess.remote_ice or (None, None)
        if (frag.ufrag is not None and frag.ufrag != ufrag) or (frag.pwd is not None and frag.pwd != pwd):
            raise HttpError(422, "ICE restarts are not supported: POST a new offer")
        for c in frag.candidates:
            if c.ufrag is not None and c.ufrag != ufrag:
                continue  # another ICE generation's
            cand = candidate_from_sdp(c.value)
            cand.sdpMid, cand.sdpMLineIndex = c.mid, c.mline
            await sess.pc.addIceCandidate(cand)
        if frag.end:
            await sess.pc.addIceCandidate(None)

    def remote_candidates(self, session_id: str) -> list[Any]:
        """The session's remote ICE candidates (aiortc ``RTCIceCandidate``), signalled or learnt."""
        return [c for t in self.sessions[session_id].pc.getTransceivers()
                for c in t.receiver.transport.transport.getRemoteCandidates()]

    async def close_session(self, session_id: str, why: str = "") -> bool:
        sess = self.sessions.pop(session_id, None)
        if sess is None:
            return False
        sess.track.stop()
        with contextlib.suppress(Exception):
            await sess.pc.close()
        self._release_camera(sess.camera_id)
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.zrem(protocol.user_key(self.prefix, sess.user), session_id)
            if why != DELETED:  # the API audits a DELETE itself; every other end is the worker's to say
                with contextlib.suppress(Exception):
                    await audit.append(self.redis, self.prefix, "access", audit.entry(
                        sess.user, "live_stop", sess.camera_id, client=f"worker {self.worker_id}",
                        detail=f"session {session_id}: {why}"))
        log.debug("live session %s on %s ended: %s", session_id, sess.camera_id, why)
        return True

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "worker": self.worker_id,
            "sessions": len(self.sessions),
            "cameras": {cid: {"viewers": len(c.viewers), "frames_in": c.frames_in, "gop_frames": len(c.gop)}
                        for cid, c in self.cameras.items()},
            "viewers": [{"camera": x.camera_id, "connected": x.connected, "sent": x.track.sent,
                         "dropped": x.track.dropped, "age_s": round(now - x.created, 3),
                         "first_frame_s": round(x.track.first_sent_at - x.created, 3)
                         if x.track.first_sent_at is not None else None} for x in self.sessions.values()],
        }

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, ctype, body, extra = 500, "application/json", b"", ""
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                method, path, headers, payload = await self._read(reader)
            status, ctype, body, more = await self._route(method, path, headers, payload)
            extra = "".join(f"{k}: {v}\r\n" for k, v in more.items())
        except HttpError as exc:
            status, body = exc.status, json.dumps({"detail": exc.detail}).encode()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError):
            status, body = 400, b'{"detail": "malformed or slow request"}'
        except Exception:  # noqa: BLE001
            log.exception("live endpoint failed")
            status, body = 500, b'{"detail": "internal error"}'
        reason = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
                  404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 412: "Precondition Failed",
                  413: "Content Too Large", 422: "Unprocessable Entity", 428: "Precondition Required",
                  429: "Too Many Requests", 503: "Service Unavailable"}.get(status, "Error")
        length = "" if status == 204 else f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        head = f"HTTP/1.1 {status} {reason}\r\n{length}{extra}Connection: close\r\n\r\n".encode()
        with contextlib.suppress(Exception):
            writer.write(head + body)
            await writer.drain()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            raise HttpError(413, f"body over {MAX_BODY_BYTES} bytes")
        body = await reader.readexactly(int(length)) if int(length) else b""
        return method, path, headers, body

    async def _route(self, method: str, path: str, headers: dict[str, str], body: bytes
                     ) -> tuple[int, str, bytes, dict[str, str]]:
        user = protocol.verify(self._secret, method, path, headers, body)
        if user is None:
            raise HttpError(401, "bad or missing signature")
        if path == "/live/stats" and method == "GET":
            return 200, "application/json", json.dumps(self.stats()).encode(), {}
        m = _PATH.match(path)
        if m is None:
            raise HttpError(404, "no such route")
        camera_id, session_id = m.groups()
        if method in ("POST", "PATCH"):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise HttpError(400, "the body is not UTF-8") from None
        if method == "POST":
            token = headers.get("x-live-token", "")
            if not _DIGEST.match(token):  # a session nobody could revoke is never opened
                raise HttpError(400, "no token digest (X-Live-Token)")
            answer, etag = await self.open_session(camera_id, session_id, user, text, token)
            return 201, "application/sdp", answer.encode(), {"ETag": f'"{etag}"'}
        if method == "PATCH":
            await self.add_candidates(camera_id, session_id, text, headers.get("if-match"), user)
            return 204, "", b"", {}
        if method == "DELETE":
            self._owned(camera_id, session_id, user)
            await self.close_session(session_id, DELETED)
            return 200, "application/json", b"{}", {}
        raise HttpError(405, "POST, PATCH or DELETE")


async def serve_live(cfg: Any, worker: Any, redis: Any, *, prefix: str | None = None, secret: str | None = None,
                     host: str | None = None, port: int | None = None, advertise: str | None = None,
                     ice_addresses: str | None = None, udp_ports: str | None = None) -> LiveServer | None:
    """Start the live endpoint of a worker (``camera-hub worker``), or None when live view is off
    (``settings.live.enabled``) or has no secret. Options override ``settings.live``."""
    s = cfg.settings.live
    if not s.enabled:
        return None
    if not secret:
        log.warning("live view off on this worker: no %s (shared with the API)", protocol.SECRET_ENV)
        return None
    update: dict[str, Any] = {}
    if host:
        update["host"] = host
    if port is not None:
        update["port"] = port
    if advertise:
        update["advertise_host"] = advertise
    if udp_ports:
        lo, _, hi = udp_ports.partition("-")
        if not (lo.strip().isdigit() and hi.strip().isdigit() and 1024 <= int(lo) <= int(hi) <= 65535):
            raise ValueError(f"a UDP port range is LOW-HIGH within 1024-65535, got {udp_ports!r}")
        update["udp_ports"] = (int(lo), int(hi))
    if ice_addresses:
        update["ice_addresses"] = [*s.ice_addresses, *(a.strip() for a in ice_addresses.split(",") if a.strip())]
    server = LiveServer(s.model_copy(update=update), secret=secret, ring_for=worker.ring, redis=redis,
                        prefix=cfg.settings.redis.prefix if prefix is None else prefix, worker_id=worker.worker_id)
    await server.start()
    return server
