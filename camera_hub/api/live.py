"""Live view signalling: WHEP (RFC 9725) for any live camera.

``POST /api/v1/cameras/{camera_id}/whep`` takes an SDP offer (``application/sdp``) from a viewer
(role viewer or above, bearer token or login cookie) and answers ``201`` with the SDP answer and
a ``Location`` to ``DELETE`` the session. The API does not carry media: it checks the camera
(404 unknown, 503 not up, 422 H.265), reserves a place under the user's session limit in Redis
(429), finds the worker that holds the camera's lease and that worker's live endpoint in Redis
(503 when none), forwards the offer with an HMAC signature (the secret shared by API and workers,
``CAMERA_HUB_LIVE_SECRET``) and returns the worker's answer with an ``ETag``. Every live view is
audited (``live_view``; ``live_stop`` on DELETE; refusals in the denied stream). The worker keeps
the digest of the viewer's token with the session and ends it within 5 s of that token's revocation
(logout, user removed, role or password changed, expiry).

Trickle ICE (RFC 9725 §4.3): ``PATCH`` the session URL with ``application/trickle-ice-sdpfrag`` and
``If-Match: <the ETag>``; the worker adds the candidates (204). ICE restarts are not supported (422:
POST a new offer); the worker's own candidates are all in the answer, as the RFC requires.
"""

from __future__ import annotations

import os
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response

from camera_hub.api.auth import Auth, Principal, client_addr, require
from camera_hub.config import ID_PATTERN, Camera
from camera_hub.ingest.shard import lease_key
from camera_hub.ingest.status import COVERING, read_states
from camera_hub.live import protocol

WORKER_TIMEOUT_S = 15.0  # the worker answers once its ICE candidates are gathered (host only: fast)

router = APIRouter(prefix="/api/v1", tags=["live"])
Viewer = Annotated[Principal, Depends(require("viewer"))]
CameraId = Annotated[str, Path(pattern=ID_PATTERN)]
SessionId = Annotated[str, Path(pattern=protocol.SESSION_ID_PATTERN, description="from the Location header")]

_SDP = {"application/sdp": {"schema": {"type": "string"}}}
_ERRORS = {401: {"description": "no or bad token"}, 403: {"description": "role too low"}}
_OFFER_ERRORS = {
    **_ERRORS,
    201: {"description": "the SDP answer; `Location`: the session, to PATCH (trickle ICE) and DELETE; "
                         "`ETag`: its ICE session, for PATCH's If-Match", "content": _SDP},
    400: {"description": "not an SDP offer"},
    404: {"description": "no such camera"},
    415: {"description": "the body is not application/sdp"},
    422: {"description": "the camera's stream or the offer cannot be played (H.265, B-frames, no H.264 "
                         "in the offer); `detail` says why"},
    429: {"description": "the user's or the camera's live session limit"},
    503: {"description": "the camera is not up, no worker holds it, or live view is not configured"},
}


def live_secret(request: Request) -> str | None:
    """``app.state.live_secret`` (set by ``camera-hub api --live-secret``), else the environment."""
    return getattr(request.app.state, "live_secret", None) or os.environ.get(protocol.SECRET_ENV) or None


def _http(request: Request) -> httpx.AsyncClient:
    """One client per API process for its calls to the workers (making one per request costs ~50 ms
    of CPU: an SSL context each time). The workers close every connection after answering."""
    client = getattr(request.app.state, "live_http", None)
    if client is None:
        client = request.app.state.live_http = httpx.AsyncClient(timeout=WORKER_TIMEOUT_S)
    return client


def _auth(request: Request) -> Auth:
    return request.app.state.auth


def _camera(request: Request, camera_id: str) -> Camera:
    cam = next((c for c in request.app.state.cfg.cameras if c.id == camera_id), None)
    if cam is None:
        raise HTTPException(404, f"no camera {camera_id}")
    return cam


async def _worker_url(request: Request, camera_id: str) -> tuple[str, str] | None:
    """(worker id, live endpoint URL) of the worker that holds the camera's lease, if any."""
    redis, prefix = request.app.state.redis, request.app.state.prefix
    worker = await redis.get(lease_key(prefix, camera_id))
    if worker is None:
        return None
    worker = worker.decode() if isinstance(worker, bytes) else str(worker)
    url = await redis.get(protocol.worker_key(prefix, worker))
    if url is None:
        return None
    return worker, url.decode() if isinstance(url, bytes) else str(url)


async def _refuse(request: Request, who: Principal, camera_id: str, status: int, detail: str,
                  headers: dict[str, str] | None = None) -> HTTPException:
    result = "limited" if status == 429 else "rejected"
    await _auth(request).audit(who.name, "live_view", camera_id, client=client_addr(request), result=result,
                               detail=f"{status} {detail}")
    return HTTPException(status, detail, headers=headers)


@router.post("/cameras/{camera_id}/whep", status_code=201, response_class=Response, responses=_OFFER_ERRORS,
             openapi_extra={"requestBody": {"required": True, "content": _SDP}})
async def whep_offer(who: Viewer, request: Request, camera_id: CameraId) -> Response:
    """Watch a live camera over WebRTC (WHEP, RFC 9725): the body is the SDP offer (ICE gathering
    complete, H.264 offered), the answer comes back as `application/sdp` with `Location`."""
    _camera(request, camera_id)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/sdp":
        raise HTTPException(415, "send the SDP offer as application/sdp")
    body = await request.body()
    try:
        offer = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "the SDP offer is not UTF-8") from None
    if not offer.startswith("v=0") or "\nm=" not in offer:
        raise HTTPException(400, "not an SDP offer")
    secret = live_secret(request)
    live = request.app.state.cfg.settings.live
    if not secret or not live.enabled:
        raise await _refuse(request, who, camera_id, 503, "live view is not configured on this server "
                            f"(settings.live.enabled and {protocol.SECRET_ENV} on the API and the workers)")
    redis, prefix = request.app.state.redis, request.app.state.prefix
    st = (await read_states(redis, prefix, [camera_id])).get(camera_id)
    if st is None or st.state not in COVERING:
        state = "never connected" if st is None else f"{st.state}{' (' + st.reason + ')' if st.reason else ''}"
        raise await _refuse(request, who, camera_id, 503, f"camera {camera_id} is not live: {state}",
                            {"Retry-After": "5"})
    if st.codec == "hevc":
        raise await _refuse(request, who, camera_id, 422, protocol.HEVC_MESSAGE)
    if getattr(st, "b_frames", False):  # seen by the worker's reader; the live endpoint checks again
        raise await _refuse(request, who, camera_id, 422, protocol.BFRAMES_MESSAGE)
    found = await _worker_url(request, camera_id)
    if found is None:
        raise await _refuse(request, who, camera_id, 503, f"no worker serves live view of camera {camera_id} "
                            "right now", {"Retry-After": "5"})
    worker, url = found
    sid = protocol.new_session_id()
    users = protocol.user_key(prefix, who.name)
    held = int(await redis.eval(protocol.RESERVE, 1, users, sid, live.max_sessions_per_user,
                                int(live.connect_timeout_s * 1000) + protocol.SESSION_TTL_MS))
    if held:
        raise await _refuse(request, who, camera_id, 429, f"you have {held} live views open, the limit "
                            "(settings.live.max_sessions_per_user); close one", {"Retry-After": "5"})
    path = f"/live/{camera_id}/{sid}"
    try:
        resp = await _http(request).post(url + path, content=body, headers={
            "Content-Type": "application/sdp",
            **protocol.sign(secret, "POST", path, who.name, body, token=who.token_hash)})
    except httpx.HTTPError as exc:
        await redis.zrem(users, sid)
        raise await _refuse(request, who, camera_id, 503, f"the worker serving camera {camera_id} did not answer "
                            f"({type(exc).__name__})", {"Retry-After": "5"}) from None
    if resp.status_code != 201:
        await redis.zrem(users, sid)
        try:
            detail = str(resp.json().get("detail", ""))
        except ValueError:
            detail = ""
        status = resp.status_code if resp.status_code in (400, 422, 429, 503) else 503
        raise await _refuse(request, who, camera_id, status, detail or f"the worker answered {resp.status_code}",
                            {"Retry-After": "5"} if status in (429, 503) else None)
    await _auth(request).audit(who.name, "live_view", camera_id, client=client_addr(request),
                               detail=f"session={sid} worker={worker}")
    location = f"/api/v1/cameras/{camera_id}/whep/{sid}"
    headers = {"Location": location, "Accept-Patch": protocol.TRICKLE_TYPE}
    if etag := resp.headers.get("etag"):
        headers["ETag"] = etag
    return Response(resp.content, status_code=201, media_type="application/sdp", headers=headers)


_FRAG = {protocol.TRICKLE_TYPE: {"schema": {"type": "string"}}}


@router.patch("/cameras/{camera_id}/whep/{session_id}", status_code=204, response_class=Response,
              openapi_extra={"requestBody": {"required": True, "content": _FRAG}},
              responses={**_ERRORS, 204: {"description": "the candidates are added"},
                         400: {"description": "not a trickle ICE fragment (RFC 8840)"},
                         404: {"description": "no such session of yours"},
                         412: {"description": "If-Match is not the session's ETag"},
                         415: {"description": f"the body is not {protocol.TRICKLE_TYPE}"},
                         422: {"description": "an ICE restart (new ufrag/pwd): not supported, POST a new offer"},
                         428: {"description": "no If-Match"},
                         503: {"description": "no worker serves the camera now, or it did not answer"}})
async def whep_patch(who: Viewer, request: Request, camera_id: CameraId, session_id: SessionId) -> Response:
    """Trickle ICE (RFC 9725 §4.3): more of the viewer's ICE candidates for one of its live views,
    as an RFC 8840 fragment (`a=ice-ufrag`, `a=ice-pwd`, `m=`/`a=mid`, `a=candidate`,
    `a=end-of-candidates`), with `If-Match` = the `ETag` of the WHEP answer. 204 when added;
    candidates it cannot use (TCP, an unresolvable address) are dropped silently."""
    _camera(request, camera_id)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != protocol.TRICKLE_TYPE:
        raise HTTPException(415, f"send the candidates as {protocol.TRICKLE_TYPE}")
    redis, prefix = request.app.state.redis, request.app.state.prefix
    if await redis.zscore(protocol.user_key(prefix, who.name), session_id) is None:
        raise HTTPException(404, "no such live session of yours")
    body = await request.body()
    secret = live_secret(request)
    found = await _worker_url(request, camera_id)
    if not secret or found is None:
        raise HTTPException(503, f"no worker serves live view of camera {camera_id} right now",
                            headers={"Retry-After": "5"})
    path = f"/live/{camera_id}/{session_id}"
    headers = {"Content-Type": protocol.TRICKLE_TYPE, **protocol.sign(secret, "PATCH", path, who.name, body)}
    if (if_match := request.headers.get("if-match")) is not None:
        headers["If-Match"] = if_match
    try:
        resp = await _http(request).patch(found[1] + path, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise HTTPException(503, f"the worker serving camera {camera_id} did not answer ({type(exc).__name__})",
                            headers={"Retry-After": "5"}) from None
    if resp.status_code == 204:
        return Response(status_code=204)
    try:
        detail = str(resp.json().get("detail", ""))
    except ValueError:
        detail = ""
    status = resp.status_code if resp.status_code in (400, 404, 412, 422, 428) else 503
    raise HTTPException(status, detail or f"the worker answered {resp.status_code}")


@router.api_route("/cameras/{camera_id}/whep/{session_id}", methods=["GET", "HEAD", "POST", "PUT", "OPTIONS"],
                  include_in_schema=False)
async def whep_session_other(who: Viewer, camera_id: CameraId, session_id: SessionId) -> Response:
    """A session URL takes PATCH and DELETE only (RFC 9725 §4.2): 405 with both in ``Allow`` (the
    router alone would name just the first route's method)."""
    raise HTTPException(405, "a live session takes PATCH (trickle ICE) and DELETE", headers={"Allow": "PATCH, DELETE"})


@router.delete("/cameras/{camera_id}/whep/{session_id}", status_code=200, response_class=Response,
               responses={**_ERRORS, 404: {"description": "no such session of yours"}})
async def whep_delete(who: Viewer, request: Request, camera_id: CameraId, session_id: SessionId) -> Response:
    """End a live view (the `Location` of its WHEP answer)."""
    _camera(request, camera_id)
    redis, prefix = request.app.state.redis, request.app.state.prefix
    if not await redis.zrem(protocol.user_key(prefix, who.name), session_id):
        raise HTTPException(404, "no such live session of yours")
    # the worker ends a session that is no longer listed at its next refresh anyway; tell it now
    secret = live_secret(request)
    found = await _worker_url(request, camera_id)
    if secret and found is not None:
        path = f"/live/{camera_id}/{session_id}"
        try:
            await _http(request).delete(found[1] + path, headers=protocol.sign(secret, "DELETE", path, who.name),
                                        timeout=5.0)
        except httpx.HTTPError:
            pass
    await _auth(request).audit(who.name, "live_stop", camera_id, client=client_addr(request),
                               detail=f"session={session_id}")
    return Response(status_code=200)
