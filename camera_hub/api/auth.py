"""Users, tokens, roles and the audit stream.

- Passwords: scrypt (stdlib), random salt, compared in constant time.
- Tokens: 256 random bits, stored only as their SHA-256, each with its user, role and expiry
  (the Redis key also expires). A login sets the same token as an HttpOnly, SameSite=Strict cookie.
- Roles are ordered ``viewer < operator < analyst < admin``; every route states the least role
  it needs with ``Depends(require(role))`` (tests walk the route table to check that).
- Failed logins are counted per user and client address for a minute and refused past the limit.
- Every action is appended to ``{prefix}audit`` (a Stream).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyCookie, HTTPBearer
from redis.asyncio import Redis

Role = Literal["viewer", "operator", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "analyst", "admin")
COOKIE = "ch_session"
AUDIT_MAXLEN = 100_000
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def rank(role: str) -> int:
    return ROLES.index(role)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role
    token_hash: str


# ------------------------------------------------------------------ passwords and tokens
def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt).decode()}${b64(dk).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, dk = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(dk))


_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Auth:
    """Users and tokens in Redis under ``{prefix}auth:``."""

    def __init__(self, redis: Redis, prefix: str, *, token_ttl_s: float = 12 * 3600,
                 login_attempts_per_min: int = 5) -> None:
        self.redis = redis
        self.prefix = prefix
        self.token_ttl_s = token_ttl_s
        self.attempts = login_attempts_per_min

    def _user_key(self, name: str) -> str:
        return f"{self.prefix}auth:user:{name}"

    def _token_key(self, digest: str) -> str:
        return f"{self.prefix}auth:token:{digest}"

    @property
    def audit_key(self) -> str:
        return f"{self.prefix}audit"

    async def add_user(self, name: str, role: Role, password: str | None = None) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        pw = await asyncio.to_thread(hash_password, password) if password else ""
        await self.redis.hset(self._user_key(name), mapping={"role": role, "password": pw,
                                                             "created_at": repr(time.time())})

    async def user(self, name: str) -> dict[str, str] | None:
        raw = await self.redis.hgetall(self._user_key(name))
        return {_s(k): _s(v) for k, v in raw.items()} if raw else None

    async def issue_token(self, name: str, role: Role, ttl_s: float | None = None) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        ttl = self.token_ttl_s if ttl_s is None else ttl_s
        expires = time.time() + ttl
        key = self._token_key(token_digest(token))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping={"user": name, "role": role, "expires_at": repr(expires)})
            pipe.pexpire(key, max(1, int(ttl * 1000)))
            await pipe.execute()
        return token, expires

    async def check_token(self, token: str) -> Principal | None:
        digest = token_digest(token)
        raw = await self.redis.hgetall(self._token_key(digest))
        if not raw:
            return None
        d = {_s(k): _s(v) for k, v in raw.items()}
        if float(d.get("expires_at", "0")) <= time.time() or d.get("role") not in ROLES:
            return None
        return Principal(d["user"], d["role"], digest)  # type: ignore[arg-type]

    async def revoke(self, digest: str) -> None:
        await self.redis.delete(self._token_key(digest))

    async def login(self, name: str, password: str, client: str) -> Principal | None:
        """Check a password; raises 429 past the per-minute limit for this user and address."""
        fail_key = f"{self.prefix}auth:fail:{token_digest(name + '|' + client)}"
        failures = int(await self.redis.get(fail_key) or 0)
        if failures >= self.attempts:
            ttl = await self.redis.ttl(fail_key)
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                                f"too many failed logins for {name!r}; try again in {max(ttl, 1)} s",
                                headers={"Retry-After": str(max(ttl, 1))})
        user = await self.user(name)
        stored = user.get("password", "") if user else ""
        # an unknown user costs the same scrypt as a known one, so timing does not tell them apart
        ok = await asyncio.to_thread(verify_password, password, stored or _DUMMY_HASH) and bool(stored)
        if not ok:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incr(fail_key)
                pipe.expire(fail_key, 60, nx=True)
                await pipe.execute()
            return None
        await self.redis.delete(fail_key)
        return Principal(name, user["role"], "")  # type: ignore[index,arg-type]

    async def audit(self, actor: str, action: str, target: str = "", *, client: str = "", result: str = "ok",
                    detail: str = "") -> None:
        await self.redis.xadd(self.audit_key, {"at": repr(time.time()), "actor": actor, "action": action,
                                               "target": target, "client": client, "result": result,
                                               "detail": detail[:500]}, maxlen=AUDIT_MAXLEN, approximate=True)

    async def read_audit(self, count: int) -> list[dict[str, Any]]:
        rows = await self.redis.xrevrange(self.audit_key, count=count)
        return [{"id": _s(sid), **{_s(k): _s(v) for k, v in f.items()}} for sid, f in rows]


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def request_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Authorization header must be 'Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})
        return value.strip()
    return request.cookies.get(COOKIE)


def client_addr(request: Request) -> str:
    return request.client.host if request.client else ""


# declared so the OpenAPI spec shows both ways in; the token itself is read by request_token
_BEARER = HTTPBearer(auto_error=False, description="token from `camera-hub users add` or the login")
_COOKIE = APIKeyCookie(name=COOKIE, auto_error=False, description="set by POST /api/v1/auth/login")


def require(role: Role):  # noqa: ANN201 - FastAPI dependency
    """The dependency every protected route declares: a valid token of at least ``role``."""

    async def dependency(request: Request, _b: Annotated[Any, Security(_BEARER)] = None,
                         _c: Annotated[Any, Security(_COOKIE)] = None) -> Principal:
        token = request_token(request)
        if not token:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "authentication required: send a bearer token "
                                "or log in", headers={"WWW-Authenticate": "Bearer"})
        auth: Auth = request.app.state.auth
        who = await auth.check_token(token)
        if who is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "token is invalid or expired; log in again",
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if rank(who.role) < rank(role):
            await auth.audit(who.name, "forbidden", request.url.path, client=client_addr(request),
                             result="denied", detail=f"needs {role}")
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {role} role; you are {who.role}")
        return who

    dependency.required_role = role  # type: ignore[attr-defined]  # read by the route-table test
    dependency.__name__ = f"require_{role}"
    return dependency


async def create_user(redis: Redis, prefix: str, name: str, role: Role, password: str | None = None,
                      *, token_ttl_s: float = 365 * 86400) -> str:
    """Add (or update) a user and return a new API token for it (used by the CLI and the demo)."""
    auth = Auth(redis, prefix)
    await auth.add_user(name, role, password)
    token, _ = await auth.issue_token(name, role, token_ttl_s)
    await auth.audit("cli", "user_add", name, detail=f"role={role}")
    return token
