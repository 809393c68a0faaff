"""The HTTP API application: ``create_app(cfg)`` composes routes, auth, the SSE hub, the
background housekeeping and the operator page; each part owns its own start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from camera_hub.alerts.lifecycle import housekeeping, refresh_open_gauges
from camera_hub.alerts.model import AlertNotFound, IllegalTransition
from camera_hub.alerts.store import AlertStore, connect, reconnect_once
from camera_hub.api.auth import Auth
from camera_hub.api.city import router as city_router
from camera_hub.api.feed import FeedHub
from camera_hub.api.headers import SecurityHeaders, page_policy
from camera_hub.api.live import router as live_router
from camera_hub.api.models import Health
from camera_hub.api.routes import router
from camera_hub.config import CityConfig
from camera_hub.coverage import CoverageTracker, export_coverage_forever
from camera_hub.registry import district_of_grid

WEB_DIR = Path(__file__).parent / "web"
# The API's Redis pool: at most this many connections, and a request waits up to POOL_WAIT_S for one
# (redis-py's default pool raises at once when all are busy, so a flood of requests answered 503)
REDIS_POOL_SIZE = 64
REDIS_POOL_WAIT_S = 5.0
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/api/v1/auth/login", "/openapi.json", "/docs",
                          "/docs/oauth2-redirect", "/redoc"})


class _BodyTooLarge(HTTPException):
    """Raised from ``receive``; an HTTPException so FastAPI's body parser passes it on as is."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body larger than {max_bytes} bytes")


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        resp = JSONResponse({"detail": f"request body larger than {self.max_bytes} bytes"}, status_code=413)
        await resp(scope, receive, send)


def _validation_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    bad_json = [e for e in errors if e.get("type") == "json_invalid"]
    if bad_json:
        ctx = bad_json[0].get("ctx") or {}
        return JSONResponse({"detail": f"malformed JSON: {ctx.get('error', 'cannot parse body')}"}, status_code=400)
    clean = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in errors]
    return JSONResponse({"detail": json.loads(json.dumps(clean, default=str))}, status_code=422)


def connect_pooled(url: str, *, timeout_s: float = 10.0, max_connections: int = REDIS_POOL_SIZE,
                   wait_s: float = REDIS_POOL_WAIT_S) -> Redis:
    """Like ``alerts.store.connect`` (fails fast, one reconnect, socket timeouts) over a bounded pool
    that queues: a burst waits up to ``wait_s`` for a connection instead of failing (then:
    ConnectionError, a 503)."""
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=wait_s,
                                           socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                           retry=reconnect_once(), health_check_interval=0)
    return Redis.from_pool(pool)


def create_app(cfg: CityConfig, *, redis_url: str | None = None, prefix: str | None = None,
               data_dir: Path | None = None, housekeeping_s: float = 5.0) -> FastAPI:
    """The API for ``cfg``; Redis URL, key prefix and data folder default to ``cfg.settings``."""
    settings = cfg.settings
    url = redis_url or settings.redis.url
    key_prefix = prefix if prefix is not None else settings.redis.prefix
    folder = Path(data_dir if data_dir is not None else settings.alerts.data_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = connect_pooled(url, timeout_s=10.0)
        store = AlertStore(redis, key_prefix, maxlen=settings.alerts.stream_maxlen,
                           max_age_s=settings.alerts.stream_max_age_h * 3600)
        hub = FeedHub(AlertStore(connect(url, timeout_s=30.0), key_prefix),  # its own pool for blocking reads
                      max_per_user=settings.api.max_feeds_per_user)
        app.state.redis, app.state.store, app.state.hub = redis, store, hub
        app.state.auth = Auth(redis, key_prefix, token_ttl_s=settings.api.token_ttl_h * 3600,
                              login_attempts_per_min=settings.api.login_attempts_per_min)
        await hub.start()
        keeper = asyncio.create_task(housekeeping(store, interval_s=housekeeping_s), name="alert-housekeeping")
        # the coverage gauges come from one process per city: the API (workers know only their shard)
        stop_coverage = asyncio.Event()
        coverage = asyncio.create_task(
            export_coverage_forever(cfg, redis, key_prefix, stop_coverage, tracker=app.state.coverage_tracker),
            name="coverage-export")
        try:
            yield
        finally:
            stop_coverage.set()
            keeper.cancel()
            coverage.cancel()
            for task in (keeper, coverage):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await hub.stop()
            await hub.store.redis.aclose()
            await redis.aclose()

    # /docs and /redoc load their scripts from a public CDN: off unless settings.api.docs (/openapi.json stays)
    docs = settings.api.docs
    app = FastAPI(title="Camera Hub API", version="1", lifespan=lifespan, docs_url="/docs" if docs else None,
                  redoc_url="/redoc" if docs else None,
                  description="Alerts, live feed, clips, cameras and coverage of a city camera network.")
    app.state.cfg = cfg
    app.state.prefix = key_prefix
    app.state.data_dir = folder
    app.state.coverage_tracker = CoverageTracker()
    app.state.district_of_grid = district_of_grid(cfg)
    app.add_middleware(BodyLimit, max_bytes=settings.api.max_body_bytes)
    app.add_middleware(SecurityHeaders, policy=page_policy(settings.api.map_tile_url), docs=docs)
    app.add_exception_handler(RequestValidationError, _validation_handler)

    @app.exception_handler(AlertNotFound)
    async def _not_found(_: Request, exc: AlertNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(IllegalTransition)
    async def _conflict(_: Request, exc: IllegalTransition) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "state": exc.state}, status_code=409)

    @app.exception_handler(RedisError)
    async def _redis_down(_: Request, exc: RedisError) -> JSONResponse:
        if isinstance(exc, RedisConnectionError | RedisTimeoutError):
            return JSONResponse({"detail": "the alert store (Redis) is unreachable; try again shortly"},
                                status_code=503, headers={"Retry-After": "2"})
        raise exc

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    app.include_router(router)
    app.include_router(city_router)  # GET /api/v1/city, /api/v1/grid-workers (the operator page)
    app.include_router(live_router)  # WHEP live view: POST/DELETE /api/v1/cameras/{id}/whep (camera_hub/live/)

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> Health:
        """The process is alive."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["ops"], responses={503: {"model": Health}})
    async def readyz(request: Request) -> Any:
        """Ready while Redis answers."""
        try:
            await asyncio.wait_for(request.app.state.redis.ping(), 2.0)
        except Exception:
            return JSONResponse({"status": "redis unreachable"}, status_code=503)
        return Health(status="ready")

    @app.get("/metrics", tags=["ops"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}}})
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus metrics of this process."""
        with contextlib.suppress(Exception):
            await refresh_open_gauges(request.app.state.store)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app
