"""The ``/api/v1`` routes. Each declares the least role it needs via ``Depends(require(...))``."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import FileResponse, StreamingResponse

from camera_hub.alerts.media import media_path
from camera_hub.alerts.model import ALERT_ID_PATTERN, OPEN_STATES
from camera_hub.alerts.store import AlertStore
from camera_hub.api.auth import COOKIE, AuditStream, Auth, Principal, client_addr, require
from camera_hub.api.city import AlertDetail, alert_detail, check_grid_worker
from camera_hub.api.feed import MAX_ID_PART, FeedHub, FeedResponse, valid_resume_id
from camera_hub.api.models import (
    ActionRequest,
    Alert,
    AlertPage,
    AlertState,
    AlertStats,
    AlertTypeName,
    AuditEntry,
    CameraList,
    CameraOut,
    DispatchRequest,
    Error,
    LoginRequest,
    LoginResponse,
    Me,
    UserCreate,
    UserOut,
)
from camera_hub.config import ID_PATTERN, Camera, CityConfig
from camera_hub.coverage import CoverageReport, coverage_report
from camera_hub.ingest.status import CameraStatus, read_states

router = APIRouter(prefix="/api/v1", responses={
    400: {"model": Error, "description": "malformed JSON or a bad header"},
    413: {"model": Error, "description": "body larger than settings.api.max_body_bytes"},
    422: {"description": "a field is missing, unknown, of the wrong type or out of range"},
})

Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]
AlertId = Annotated[str, Path(pattern=ALERT_ID_PATTERN, description="alert id, e.g. 1700000000000-0123456789abcdef")]
IdQ = Annotated[str | None, Query(pattern=ID_PATTERN)]
Epoch = Annotated[float | None, Query(ge=0, le=1e11, description="seconds since the epoch")]

_ERRORS = {401: {"description": "no or bad token"}, 403: {"description": "role too low"}}
_ALERT_ERRORS = {**_ERRORS, 404: {"description": "no such alert"}}


def _store(request: Request) -> AlertStore:
    return request.app.state.store


def _auth(request: Request) -> Auth:
    return request.app.state.auth


def _cfg(request: Request) -> CityConfig:
    return request.app.state.cfg


# ------------------------------------------------------------------ session
@router.post("/auth/login", response_model=LoginResponse, tags=["auth"],
             responses={401: {"description": "wrong username or password"}, 429: {"description": "rate limited"}})
async def login(body: LoginRequest, request: Request, response: Response) -> LoginResponse:
    """Check a password; the token comes back in the body and as an HttpOnly cookie."""
    auth = _auth(request)
    client = client_addr(request)
    try:
        checked = await auth.login(body.username, body.password, client)
    except HTTPException as exc:
        if exc.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
            await auth.audit(body.username, "login", client=client, result="limited", detail=str(exc.detail))
        raise
    if checked is None:
        await auth.audit(body.username, "login", client=client, result="failed")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    who, epoch = checked
    # bound to the user's epoch the password was checked against: a change meanwhile voids it
    token, expires = await auth.issue_token(who.name, who.role, epoch=epoch)
    response.set_cookie(COOKIE, token, max_age=int(expires - time.time()), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    await auth.audit(who.name, "login", client=client)
    return LoginResponse(token=token, user=who.name, role=who.role, expires_at=expires)


@router.post("/auth/logout", status_code=204, tags=["auth"], responses=_ERRORS)
async def logout(who: Viewer, request: Request, response: Response) -> Response:
    await _auth(request).revoke(who.token_hash)
    await _auth(request).audit(who.name, "logout", client=client_addr(request))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/me", response_model=Me, tags=["auth"], responses=_ERRORS)
async def me(who: Viewer) -> Me:
    return Me(user=who.name, role=who.role)


@router.post("/users", response_model=UserOut, status_code=201, tags=["auth"],
             responses={**_ERRORS, 404: {"description": "no such user to update; a new user needs a password"}})
async def add_user(body: UserCreate, who: Admin, request: Request) -> UserOut:
    """Create a user (a password is required) or update one: its role, and its password when one
    is given (none keeps the old one). A role or password change revokes all the user's tokens.
    No token is returned: the user logs in (`camera-hub users add` issues API tokens)."""
    auth = _auth(request)
    if body.password is None and await auth.user(body.name) is None:
        raise HTTPException(404, f"no user {body.name!r} to update; a new user needs a password")
    outcome = await auth.add_user(body.name, body.role, body.password)
    await auth.audit(who.name, "user_add", body.name, client=client_addr(request),
                     detail=f"role={body.role} {outcome}")
    return UserOut(user=body.name, role=body.role, created=outcome == "created",
                   tokens_revoked=outcome == "revoked")


@router.get("/audit", response_model=list[AuditEntry], tags=["auth"], responses=_ERRORS)
async def audit(who: Admin, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                stream: Annotated[AuditStream | None, Query(description="changes (users, alert actions), access "
                                                            "(logins, logouts, clip views) or denied "
                                                            "(refusals, sampled); default: all three")] = None,
                ) -> list[AuditEntry]:
    """The newest audit entries first."""
    rows = await _auth(request).read_audit(limit, stream)
    return [AuditEntry.model_validate({**r, "at": float(r.get("at") or 0), "count": int(r.get("count") or 1)})
            for r in rows]


# ------------------------------------------------------------------ cameras and coverage
async def _states(request: Request):  # noqa: ANN202
    cfg = _cfg(request)
    return await read_states(request.app.state.redis, request.app.state.prefix, [c.id for c in cfg.cameras])


def _camera_out(request: Request, c: Camera, st: CameraStatus | None) -> CameraOut:
    district = request.app.state.district_of_grid.get(c.grids[0])
    return CameraOut(id=c.id, name=c.name, kind=c.kind, enabled=c.enabled, grids=c.grids, district=district,
                     lat=c.location.lat, lon=c.location.lon, status=st)


@router.get("/cameras", response_model=CameraList, tags=["cameras"], responses=_ERRORS)
async def cameras(who: Viewer, request: Request, district: IdQ = None,
                  state: Annotated[str | None, Query(pattern="^(starting|up|degraded|down|never)$")] = None,
                  ) -> CameraList:
    """Every camera with its status (never its URL)."""
    cfg = _cfg(request)
    statuses = await _states(request)
    items = [_camera_out(request, c, statuses.get(c.id)) for c in cfg.cameras]
    items = [c for c in items if (district is None or c.district == district)
             and (state is None or (c.status.state if c.status else "never") == state)]
    counts = Counter(st.state if (st := statuses.get(c.id)) else "never" for c in cfg.cameras)
    return CameraList(items=items, states=dict(counts))


@router.get("/cameras/{camera_id}", response_model=CameraOut, tags=["cameras"],
            responses={**_ERRORS, 404: {"description": "no such camera"}})
async def camera(who: Viewer, request: Request,
                 camera_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> CameraOut:
    cfg = _cfg(request)
    cam = next((c for c in cfg.cameras if c.id == camera_id), None)
    if cam is None:
        raise HTTPException(404, f"no camera {camera_id}")
    st = (await read_states(request.app.state.redis, request.app.state.prefix, [cam.id])).get(cam.id)
    return _camera_out(request, cam, st)


@router.get("/coverage", response_model=CoverageReport, tags=["cameras"], responses=_ERRORS)
async def coverage(who: Viewer, request: Request) -> CoverageReport:
    """Covered grids per city, district, street, community, patrol zone and grid category."""
    statuses = await _states(request)
    return coverage_report(_cfg(request), {k: v.state for k, v in statuses.items()},
                           tracker=request.app.state.coverage_tracker)


# ------------------------------------------------------------------ alerts
@router.get("/alerts", response_model=AlertPage, tags=["alerts"], responses=_ERRORS)
async def list_alerts(
    who: Viewer, request: Request,
    camera_id: IdQ = None, grid_id: IdQ = None, district: IdQ = None,
    type: AlertTypeName | None = None, state: AlertState | None = None,  # noqa: A002
    since: Epoch = None, until: Epoch = None,
    cursor: Annotated[str | None, Query(pattern=ALERT_ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AlertPage:
    """Newest first; filters combine (AND); page on with `cursor`."""
    page = await _store(request).list({"camera_id": camera_id, "grid_id": grid_id, "district": district,
                                       "type": type, "state": state}, cursor=cursor, since=since, until=until,
                                      limit=limit)
    return AlertPage(items=page.alerts, next_cursor=page.next_cursor)


@router.get("/alerts/stats", response_model=AlertStats, tags=["alerts"], responses=_ERRORS)
async def alert_stats(who: Viewer, request: Request) -> AlertStats:
    store = _store(request)
    counts = await store.open_counts()
    by_state = {s: sum(n for (_, st), n in counts.items() if st == s) for s in OPEN_STATES}
    by_type: dict[str, int] = {}
    for (t, _), n in counts.items():
        by_type[t] = by_type.get(t, 0) + n
    return AlertStats(open=by_state, open_by_type=by_type, sla_breaches=await store.breaches())


@router.get("/alerts/{alert_id}", response_model=AlertDetail, tags=["alerts"], responses=_ALERT_ERRORS)
async def get_alert(who: Viewer, request: Request, alert_id: AlertId) -> AlertDetail:
    """The alert JSON plus its rule zone (`zone`: id, name, polygon), for drawing on the snapshot."""
    return alert_detail(_cfg(request), await _store(request).get(alert_id))


async def _act(request: Request, who: Principal, alert_id: str, action: str, note: str,
               worker: str | None = None) -> Alert:
    auth = _auth(request)
    try:
        alert = await _store(request).transition(alert_id, action, who.name, note, worker)
    except Exception as exc:
        await auth.audit(who.name, action, alert_id, client=client_addr(request), result="rejected",
                         detail=str(exc))
        raise
    await auth.audit(who.name, action, alert_id, client=client_addr(request), detail=note)
    return alert


_ACTION_ERRORS = {**_ALERT_ERRORS, 409: {"description": "not allowed from the alert's current state"}}


@router.post("/alerts/{alert_id}/acknowledge", response_model=Alert, tags=["alerts"], responses=_ACTION_ERRORS)
async def acknowledge(who: Operator, request: Request, alert_id: AlertId, body: ActionRequest) -> Alert:
    return await _act(request, who, alert_id, "acknowledge", body.note)


@router.post("/alerts/{alert_id}/dispatch", response_model=Alert, tags=["alerts"], responses={
    **_ACTION_ERRORS, 404: {"description": "no such alert, or no such grid worker (when the city lists them)"}})
async def dispatch(who: Operator, request: Request, alert_id: AlertId, body: DispatchRequest) -> Alert:
    """Send a grid worker (one of the city's `grid_workers`, when it lists any); allowed once the alert
    is acknowledged."""
    check_grid_worker(_cfg(request), body.worker)
    return await _act(request, who, alert_id, "dispatch", body.note, body.worker)


@router.post("/alerts/{alert_id}/resolve", response_model=Alert, tags=["alerts"], responses=_ACTION_ERRORS)
async def resolve(who: Operator, request: Request, alert_id: AlertId, body: ActionRequest) -> Alert:
    return await _act(request, who, alert_id, "resolve", body.note)


@router.post("/alerts/{alert_id}/dismiss", response_model=Alert, tags=["alerts"], responses=_ACTION_ERRORS)
async def dismiss(who: Operator, request: Request, alert_id: AlertId, body: ActionRequest) -> Alert:
    return await _act(request, who, alert_id, "dismiss", body.note)


def _media(request: Request, alert_id: str, kind: str, media_type: str) -> FileResponse:
    data_dir: FsPath = request.app.state.data_dir
    path = media_path(data_dir, alert_id, kind)  # built from the validated id, never from the client
    if not path.is_file():
        raise HTTPException(404, f"alert {alert_id} has no {kind}")
    return FileResponse(path, media_type=media_type, filename=path.name, content_disposition_type="inline")


_MEDIA = {**_ERRORS, 404: {"description": "no such alert or no file yet"}, 206: {"description": "a byte range"},
          416: {"description": "range not satisfiable"}}


@router.get("/alerts/{alert_id}/snapshot", tags=["alerts"], responses=_MEDIA, response_class=FileResponse)
async def snapshot(who: Viewer, request: Request, alert_id: AlertId) -> FileResponse:
    """The JPEG snapshot with boxes drawn (HTTP Range supported)."""
    return _media(request, alert_id, "snapshot", "image/jpeg")


@router.get("/alerts/{alert_id}/onset", tags=["alerts"], responses=_MEDIA, response_class=FileResponse)
async def onset_snapshot(who: Viewer, request: Request, alert_id: AlertId) -> FileResponse:
    """The JPEG picture at the alert's onset, the rule's zone drawn (written with the clip)."""
    return _media(request, alert_id, "onset", "image/jpeg")


@router.get("/alerts/{alert_id}/clip", tags=["alerts"], responses=_MEDIA, response_class=FileResponse)
async def clip(who: Operator, request: Request, alert_id: AlertId) -> FileResponse:
    """The MP4 clip (pre-roll + post-roll, HTTP Range supported so players can seek)."""
    await _auth(request).audit(who.name, "clip_view", alert_id, client=client_addr(request))
    return _media(request, alert_id, "clip", "video/mp4")


# ------------------------------------------------------------------ live feed
@router.get("/feed", tags=["alerts"], response_class=StreamingResponse, responses={
    **_ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events; id = stream id"},
    429: {"model": Error, "description": "the user has settings.api.max_feeds_per_user feeds open already"}})
async def feed(who: Viewer, request: Request,
               last_event_id: Annotated[str | None, Header(max_length=64)] = None,
               after: Annotated[str | None, Query(max_length=64, description="like Last-Event-ID")] = None,
               ) -> StreamingResponse:
    """Every alert change as it happens (`event: alert`, data = the alert JSON plus `event`).
    Reconnect with `Last-Event-ID` (browsers do) to get exactly what was missed."""
    resume = last_event_id or after
    if resume is not None and not valid_resume_id(resume):
        raise HTTPException(400, "Last-Event-ID (or after) must be a Redis stream id: two numbers of at most "
                                 f"{MAX_ID_PART} joined by '-', like 1700000000000-0")
    hub: FeedHub = request.app.state.hub
    if not hub.reserve(who.name):
        raise HTTPException(429, f"{who.name} has {hub.max_per_user} live feeds open already, the most one user "
                                 "may have; close another tab or window of the operator page",
                            headers={"Retry-After": "5"})
    return FeedResponse(hub.events(resume), release=lambda: hub.release(who.name), media_type="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
