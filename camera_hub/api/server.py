"""How ``camera-hub api`` serves the app: uvicorn's h11 protocol with bounds on what one client can
hold (docs/security.md, "Connections").

uvicorn alone never closes a connection that is still sending its request (there is no timer
before the first request, and its keep-alive timer restarts on every byte), accepts connections
until the process runs out of file descriptors, and then asyncio logs each failed accept, up to
the backlog (2,048) a second. Here:

- a whole request (head and body) must arrive within ``request_read_timeout_s`` of the connection
  opening or of the previous response ending, however slowly it trickles in;
- at most ``max_connections`` are open (lowered to fit the open-file limit, whose soft value is
  first raised to the hard one), at most ``max_connections_per_client`` from one address (a trusted
  proxy's count only in the total); at the total cap the connection that has waited longest for a
  request is closed to make room, and a new one is refused (503) only when none is waiting;
- an accept that fails for want of descriptors is logged at most once every ``ACCEPT_LOG_EVERY_S``.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import resource
import time
from collections import Counter
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from camera_hub.config import ApiSettings
from camera_hub.metrics import API_CONNECTIONS, API_CONNECTIONS_DROPPED

log = logging.getLogger(__name__)
# connections accepted per loop turn, and the listen queue: a refused connection holds its descriptor
# for about 3 turns (asyncio sets up its transport, refuses, closes), so a burst holds ~4x this at once
ACCEPT_BACKLOG = 64
# descriptors kept for all but client connections: the Redis pools (64 + 1), files being served, logs,
# and refused connections on their way out
FD_RESERVE = 128 + 4 * ACCEPT_BACKLOG
MAX_HEAD_BYTES = 16 * 1024  # a request head larger than this gets 400 (uvicorn's default, made explicit)
ACCEPT_LOG_EVERY_S = 10.0
_OUT_OF_FDS = "socket.accept() out of system resource"  # asyncio's message for EMFILE, ENFILE, ENOBUFS
_BUSY = b"too many connections\n"
_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 1\r\n"
            b"x-content-type-options: nosniff\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
            % (len(_BUSY), _BUSY))


class TrustedProxies:
    """Addresses and networks whose X-Forwarded-For and X-Forwarded-Proto are believed."""

    def __init__(self, networks: list[str]) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def __contains__(self, host: str) -> bool:
        if not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)


class ConnectionGuard:
    """Counts open connections, in all and per client address, and knows which of them are waiting
    for a request (oldest first): those are closed first when the total cap is reached."""

    def __init__(self, max_total: int, max_per_client: int, trusted: TrustedProxies) -> None:
        self.max_total = max_total
        self.max_per_client = max_per_client
        self.trusted = trusted
        self.open: dict[GuardedH11Protocol, str] = {}  # connection -> client address
        self.per_client: Counter[str] = Counter()
        self.waiting: dict[GuardedH11Protocol, None] = {}  # insertion order: longest waiting first

    def admit(self, conn: GuardedH11Protocol, host: str) -> str | None:
        """None when ``conn`` may stay, else why not: ``per_client`` or ``full``."""
        if self.per_client[host] >= self.max_per_client and host not in self.trusted:
            return "per_client"
        if len(self.open) >= self.max_total:
            if not self.waiting:
                return "full"
            API_CONNECTIONS_DROPPED.labels(reason="shed").inc()
            next(iter(self.waiting)).shed()
        self.open[conn] = host
        self.per_client[host] += 1
        API_CONNECTIONS.set(len(self.open))
        return None

    def release(self, conn: GuardedH11Protocol) -> None:
        host = self.open.pop(conn, None)
        self.waiting.pop(conn, None)
        if host is None:
            return
        self.per_client[host] -= 1
        if self.per_client[host] <= 0:
            del self.per_client[host]
        API_CONNECTIONS.set(len(self.open))

    def set_waiting(self, conn: GuardedH11Protocol, waiting: bool) -> None:
        if not waiting:
            self.waiting.pop(conn, None)
        elif conn in self.open and conn not in self.waiting:
            self.waiting[conn] = None


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol under a ConnectionGuard, with a deadline for each request to arrive."""

    def __init__(self, config: uvicorn.Config, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *, guard: ConnectionGuard,
                 read_timeout_s: float) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.guard = guard
        self.read_timeout_s = read_timeout_s
        self.read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        refused = self.guard.admit(self, self.client[0] if self.client else "")
        if refused:
            API_CONNECTIONS_DROPPED.labels(reason=refused).inc()
            transport.write(_REFUSAL)
            transport.close()
            return
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        self.guard.release(self)
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def _follow(self) -> None:
        """While the client owes us (the rest of) a request, its deadline runs; bytes do not reset it."""
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE or state is h11.SEND_BODY:
            if self.read_deadline is None:
                self.read_deadline = self.loop.call_later(self.read_timeout_s, self._timed_out)
        else:
            self._stop_deadline()
        self.guard.set_waiting(self, state is h11.IDLE)

    def _stop_deadline(self) -> None:
        if self.read_deadline is not None:
            self.read_deadline.cancel()
            self.read_deadline = None

    def _timed_out(self) -> None:
        self.read_deadline = None
        API_CONNECTIONS_DROPPED.labels(reason="read_timeout").inc()
        self.shed()

    def shed(self) -> None:
        """Close now, without a response: the request did not arrive in time, or room is needed."""
        self._stop_deadline()
        self.guard.release(self)
        if not self.transport.is_closing():
            self.transport.close()


class AcceptErrorLog:
    """The loop's exception handler: a failed accept (no descriptors left) is logged once every
    ``every_s`` with the number left out; everything else goes to asyncio's default handler."""

    def __init__(self, every_s: float = ACCEPT_LOG_EVERY_S) -> None:
        self.every_s = every_s
        self.next_at = 0.0
        self.left_out = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != _OUT_OF_FDS:
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now < self.next_at:
            self.left_out += 1
            return
        log.error("cannot accept connections: %s (%d more since the last report; settings.api.max_connections "
                  "bounds client connections)", context.get("exception"), self.left_out)
        self.next_at = now + self.every_s
        self.left_out = 0


class Server(uvicorn.Server):
    async def startup(self, sockets: Any = None) -> None:
        asyncio.get_running_loop().set_exception_handler(AcceptErrorLog())
        await super().startup(sockets)


def raise_open_file_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit (often 1,024 of 524,288); the new
    soft limit. Allowed to any process; the API uses epoll, never select(), so large numbers are fine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def connection_cap(settings: ApiSettings, open_files: int) -> int:
    """``max_connections``, lowered to leave FD_RESERVE descriptors under the open-file limit."""
    if open_files == resource.RLIM_INFINITY:
        return settings.max_connections
    return max(1, min(settings.max_connections, open_files - FD_RESERVE))


def build_server(app: Any, settings: ApiSettings, host: str, port: int, log_level: str = "info") -> Server:
    open_files = raise_open_file_limit()
    cap = connection_cap(settings, open_files)
    if cap < settings.max_connections:
        log.warning("at most %d connections: settings.api.max_connections (%d) does not fit the open-file "
                    "limit (%d) less %d for the rest", cap, settings.max_connections, open_files, FD_RESERVE)
    guard = ConnectionGuard(cap, settings.max_connections_per_client, TrustedProxies(settings.trusted_proxies))
    protocol = functools.partial(GuardedH11Protocol, guard=guard, read_timeout_s=settings.request_read_timeout_s)
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, http=protocol, ws="none",  # type: ignore[arg-type]
        timeout_keep_alive=settings.keep_alive_s, h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        backlog=ACCEPT_BACKLOG,
        # only a trusted proxy's forwarded headers set the client address and scheme (https: Secure cookie)
        proxy_headers=bool(settings.trusted_proxies), forwarded_allow_ips=settings.trusted_proxies or None,
        server_header=False)
    return Server(config)
