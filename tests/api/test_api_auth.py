"""Auth on every route, login, rate limits, tokens, and bad input that must change nothing."""

from __future__ import annotations

import asyncio
import os
import re
import time

import httpx
import pytest
from alertkit import episode
from fastapi.routing import APIRoute

from camera_hub.api.app import PUBLIC_PATHS, create_app
from camera_hub.api.auth import ROLES, Auth

REDIS_URL = os.environ.get("CAMERA_HUB_TEST_REDIS", "redis://127.0.0.1:6379/9")
SAMPLE_ID = "1700000000000-0123456789abcdef"


def _endpoints(app):  # noqa: ANN001, ANN202
    """Every API route with its full path; FastAPI ≥ 0.16x keeps included routers as wrappers."""
    for route in app.routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "effective_route_contexts"):
            yield from route.effective_route_contexts()
        elif getattr(route, "dependant", None) is not None:
            yield route


def _required_role(route) -> str | None:  # noqa: ANN001
    roles = [getattr(d.call, "required_role", None) for d in route.dependant.dependencies]
    roles = [r for r in roles if r]
    return roles[0] if len(roles) == 1 else None


def _protected_routes(app) -> list[tuple[str, str, str]]:
    out = []
    for route in _endpoints(app):
        if route.path in PUBLIC_PATHS:
            continue
        role = _required_role(route)
        assert role is not None, f"{route.path} declares no role (add Depends(require(...)))"
        path = re.sub(r"\{alert_id\}", SAMPLE_ID, route.path)
        path = re.sub(r"\{[a-z_]+\}", "cam0", path)
        for method in route.methods:
            out.append((method, path, role))
    return out


async def test_every_route_refuses_a_missing_token_and_a_lower_role(live) -> None:
    app = create_app(live.cfg, redis_url=REDIS_URL, prefix=live.prefix)
    routes = _protected_routes(app)
    assert len(routes) >= 15
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        for method, path, role in routes:
            r = await http.request(method, path, json={})
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers.get("www-authenticate", "").startswith("Bearer")
            r = await http.request(method, path, json={}, headers={"Authorization": "Bearer forged-token"})
            assert r.status_code == 401, (method, path)
            if role != "viewer":
                lower = ROLES[ROLES.index(role) - 1]
                r = await http.request(method, path, json={}, headers=live.headers(lower))
                assert r.status_code == 403, (method, path, lower, r.status_code)
                assert role in r.json()["detail"]


def test_a_new_route_without_a_role_fails_the_walk(live) -> None:
    app = create_app(live.cfg, redis_url=REDIS_URL, prefix=live.prefix)

    @app.get("/api/v1/oops")
    async def oops() -> dict:
        return {}

    with pytest.raises(AssertionError, match="declares no role"):
        _protected_routes(app)


async def test_login_sets_an_httponly_cookie_and_logout_revokes_it(live) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        r = await http.post("/api/v1/auth/login", json={"username": "viewer", "password": live.passwords["viewer"]})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"]
        assert "ch_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert (await http.get("/api/v1/me")).json() == {"user": "viewer", "role": "viewer"}  # by cookie
        assert (await http.post("/api/v1/auth/logout")).status_code == 204
        http.cookies.set("ch_session", r.json()["token"])
        assert (await http.get("/api/v1/me")).status_code == 401


async def test_failed_logins_are_rate_limited_per_user_and_address(live) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        for _ in range(5):
            r = await http.post("/api/v1/auth/login", json={"username": "analyst", "password": "wrong"})
            assert r.status_code == 401 and r.json()["detail"] == "wrong username or password"
        r = await http.post("/api/v1/auth/login", json={"username": "analyst", "password": live.passwords["analyst"]})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        # another user from the same address is not affected
        r = await http.post("/api/v1/auth/login", json={"username": "admin", "password": live.passwords["admin"]})
        assert r.status_code == 200
        audit = (await http.get("/api/v1/audit", headers=live.headers("admin"))).json()
        assert sum(1 for a in audit if a["actor"] == "analyst" and a["result"] == "failed") == 5


async def test_expired_token_is_refused(live) -> None:
    import redis.asyncio as aioredis

    r = aioredis.from_url(REDIS_URL)
    token, _ = await Auth(r, live.prefix).issue_token("operator", "operator", ttl_s=0.3)
    await r.aclose()
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        h = {"Authorization": f"Bearer {token}"}
        assert (await http.get("/api/v1/me", headers=h)).status_code == 200
        await asyncio.sleep(0.5)
        r2 = await http.get("/api/v1/me", headers=h)
        assert r2.status_code == 401 and "expired" in r2.json()["detail"]


async def test_bad_input_gets_a_clear_4xx_and_changes_nothing(live, publisher) -> None:
    aid = await publisher.publish(episode("start", camera="cam2", zone="bad", started_at=time.time()))
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        op = live.headers("operator")
        before = (await http.get(f"/api/v1/alerts/{aid}", headers=op)).json()
        url = f"/api/v1/alerts/{aid}/acknowledge"
        cases = [
            (http.post(url, content=b'{"note": ', headers={**op, "content-type": "application/json"}), 400,
             "malformed JSON"),
            (http.post(url, json={"note": "x", "sneaky": 1}, headers=op), 422, "sneaky"),
            (http.post(url, json={"note": 5}, headers=op), 422, "string"),
            (http.post(url, json={"note": "x" * 200_000}, headers=op), 413, "larger than"),
            (http.post(url, json={"note": "ok"}, headers=live.headers("viewer")), 403, "operator"),
            (http.post(f"/api/v1/alerts/{aid}/dispatch", json={"worker": "../etc"}, headers=op), 422, "pattern"),
            (http.get("/api/v1/alerts/..%2F..%2Fetc%2Fpasswd/clip", headers=op), 404, "Not Found"),
            (http.get("/api/v1/alerts/..%2F..%2Fetc%2Fpasswd", headers=op), 404, "Not Found"),
            (http.get("/api/v1/alerts/passwd/clip", headers=op), 422, "pattern"),
            (http.get("/api/v1/alerts/1700000000000-ffffffffffffffff", headers=op), 404, "no alert"),
            (http.get("/api/v1/alerts", params={"limit": "lots"}, headers=op), 422, "integer"),
            (http.get("/api/v1/alerts", params={"type": "arson"}, headers=op), 422, "vending"),
            (http.get("/api/v1/alerts", params={"since": "nan"}, headers=op), 422, ""),
            (http.get("/api/v1/feed", headers={**op, "Last-Event-ID": "abc"}), 400, "stream id"),
        ]
        for call, code, text in cases:
            r = await call
            assert r.status_code == code, (code, r.status_code, r.text[:200])
            assert text in r.text
        r = await http.get("/api/v1/alerts/../../etc/passwd", headers=op)  # normalised by the client
        assert r.status_code == 404
        # chunked body without Content-Length, too big
        async def big():
            for _ in range(100):
                yield b"x" * 1024
        r = await http.post(url, content=big(), headers={**op, "content-type": "application/json"})
        assert r.status_code == 413
        assert (await http.get(f"/api/v1/alerts/{aid}", headers=op)).json() == before


async def test_redis_unreachable_is_a_503_not_a_crash(tmp_path) -> None:
    import socket

    from apikit import ServerThread, make_city

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    app = create_app(make_city(), redis_url=f"redis://127.0.0.1:{dead_port}/0", prefix="x:", data_dir=tmp_path)
    with ServerThread(app) as server:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as http:
            r = await http.get("/api/v1/me", headers={"Authorization": "Bearer whatever"})
            assert r.status_code == 503 and "Redis" in r.json()["detail"]
            assert (await http.get("/readyz")).status_code == 503
            assert (await http.get("/healthz")).status_code == 200
