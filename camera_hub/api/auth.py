"""Users, tokens, roles and the audit stream.

- Passwords: scrypt (stdlib) at OWASP's parameters (N=2^17, r=8, p=1), random salt, compared in
  constant time. Each hash stores its parameters, so older hashes still verify; a login re-hashes
  them at today's parameters.
- Tokens: 256 random bits, stored only as their SHA-256, each with its user, expiry and the user's
  ``epoch`` when issued (the Redis key also expires); ``{prefix}auth:tokens:{user}`` lists a user's
  token digests. A token acts with its user's *current* role, and only while the user exists and
  its epoch is unchanged: a role or password change bumps the epoch and deletes the user's tokens,
  and so does removing the user. A login sets the same token as an HttpOnly, SameSite=Strict cookie.
- Roles are ordered ``viewer < operator < analyst < admin``; every route states the least role
  it needs with ``Depends(require(role))`` (tests walk the route table to check that).
- Login attempts reserve a place under three per-minute limits, per (user, address), per address and
  per user, in one Lua script (atomic, so a concurrent burst cannot pass more than the limit); a
  correct password gives its place back, so only failures use a limit up.
- The audit trail is three Streams, so noise cannot push out what matters (docs/security.md):
  ``{prefix}audit`` holds changes (users, alert transitions), which no viewer or anonymous client can
  write; ``{prefix}audit:access`` holds logins, logouts and clip views; ``{prefix}audit:denied`` holds
  refusals (403, failed or limited logins, rejected actions), sampled per (actor, action, address)
  and capped per minute overall.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyCookie, HTTPBearer
from redis.asyncio import Redis

from camera_hub.audit import AuditStream, append, entry, stream_key
from camera_hub.live.protocol import revoked_channel

Role = Literal["viewer", "operator", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "analyst", "admin")
COOKIE = "ch_session"
DENIED_MAXLEN = 10_000  # refusals: at DENIED_PER_MIN this still holds the last half hour
DENIED_SAMPLE = 5  # refusals logged one by one per (actor, action, address) and minute; then at 10, 100, ...
DENIED_PER_MIN = 300  # refusal entries written per minute in all
ADDRESS_FACTOR = 4  # failed logins per address and minute, across user names: this × login_attempts_per_min
USER_FACTOR = 10  # failed logins per user and minute, across addresses: this × login_attempts_per_min
LOGIN_WINDOW_S = 60
ACCESS_ACTIONS = frozenset({"login", "logout", "clip_view", "live_view", "live_stop"})
# OWASP's minimum for scrypt (Password Storage Cheat Sheet): 128 MiB and ~0.3-2 s of CPU per hash
SCRYPT = {"n": 2**17, "r": 8, "p": 1}
SCRYPT_MAX_MEM = 512 << 20  # a stored hash asking for more memory than this does not verify
_HASHING = threading.BoundedSemaphore(2)  # hashes computed at once: login bursts queue, memory stays <= 256 MiB


def rank(role: str) -> int:
    return ROLES.index(role)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role
    token_hash: str


# ------------------------------------------------------------------ passwords and tokens
def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # OpenSSL needs 128·r·(N + p + 2) bytes; its default cap (32 MiB) is below N=2^17's 128 MiB
    maxmem = 128 * r * (n + p + 2) + (1 << 20)
    if maxmem > SCRYPT_MAX_MEM:
        raise ValueError("scrypt parameters too large")
    with _HASHING:
        return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=maxmem)


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$key`` at today's parameters (SCRYPT)."""
    n, r, p = SCRYPT["n"], SCRYPT["r"], SCRYPT["p"]
    salt = secrets.token_bytes(16)
    dk = _scrypt(password, salt, n, r, p)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(dk).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Check against a stored hash, at the parameters stored with it."""
    try:
        kind, n, r, p, salt, dk = stored.split("$")
        if kind != "scrypt":
            return False
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(dk))


def needs_rehash(stored: str) -> bool:
    """True for a hash made with other parameters than today's (it is re-hashed at the next login)."""
    return stored.split("$")[1:4] != [str(SCRYPT["n"]), str(SCRYPT["r"]), str(SCRYPT["p"])]


@functools.cache
def _dummy_hash() -> str:
    """Checked for unknown users, so they cost what a known user costs (made at the first use)."""
    return hash_password(secrets.token_urlsafe(16))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Add or update a user. KEYS: user hash. ARGV: role, password hash ('' = keep), now.
# Returns 0 created, 1 updated without a role or password change, 2 updated with one (epoch bumped).
_PUT_USER = """
local key, role, pw = KEYS[1], ARGV[1], ARGV[2]
if redis.call('EXISTS', key) == 0 then
  redis.call('HSET', key, 'role', role, 'password', pw, 'created_at', ARGV[3], 'epoch', '0')
  return 0
end
local changed = 1
if redis.call('HGET', key, 'role') ~= role or pw ~= '' then
  redis.call('HINCRBY', key, 'epoch', 1)
  changed = 2
end
redis.call('HSET', key, 'role', role)
if pw ~= '' then redis.call('HSET', key, 'password', pw) end
return changed
"""

# Store a token and list it under its user. KEYS: token hash, user's token set.
# ARGV: user, role, expires_at, epoch, ttl ms, token key prefix, digest. Past 64 entries, each call drops
# the dead ones among 16 picked at random (logged-out or expired tokens), at a constant cost.
_ISSUE = """
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'role', ARGV[2], 'expires_at', ARGV[3], 'epoch', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SADD', KEYS[2], ARGV[7])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[5]) then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
if redis.call('SCARD', KEYS[2]) > 64 then
  for _, d in ipairs(redis.call('SRANDMEMBER', KEYS[2], 16)) do
    if redis.call('EXISTS', ARGV[6] .. d) == 0 then redis.call('SREM', KEYS[2], d) end
  end
end
return 1
"""

# Reserve one login attempt under every limit, or none. KEYS: counters. ARGV: their limits, window s.
# Returns 0 when reserved, else the 1-based index of the first full counter and its seconds left.
_RESERVE = """
for i, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  if n >= tonumber(ARGV[i]) then
    local ttl = redis.call('TTL', key)
    if ttl < 0 then redis.call('EXPIRE', key, ARGV[#KEYS + 1]); ttl = tonumber(ARGV[#KEYS + 1]) end
    return {i, ttl}
  end
end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[#KEYS + 1]) end
end
return {0, 0}
"""

# Replace a password hash with the same password at today's parameters, unless it changed meanwhile
# (the epoch stays: the password is the same). KEYS: user hash. ARGV: old hash, new hash.
_REHASH = """
if redis.call('HGET', KEYS[1], 'password') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'password', ARGV[2])
  return 1
end
return 0
"""

# Give a reserved attempt back (the password was right). KEYS: counters.
_REFUND = """
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
return 1
"""

# Log a refusal, sampled. KEYS: this (actor, action, address)'s counter, the all-refusals counter, stream.
# ARGV: sample, per-minute cap, maxlen, window s, then field, value, ... Returns the entry id or false.
_DENY = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
local pow10 = string.match(tostring(n), '^10+$') ~= nil
if n > tonumber(ARGV[1]) and not pow10 then return false end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[2]) then return false end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
fields[#fields + 1] = 'count'
fields[#fields + 1] = tostring(n)
return redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
"""


class Auth:
    """Users and tokens in Redis under ``{prefix}auth:``, the audit Streams under ``{prefix}audit``."""

    def __init__(self, redis: Redis, prefix: str, *, token_ttl_s: float = 12 * 3600,
                 login_attempts_per_min: int = 5, login_per_address_per_min: int | None = None,
                 login_per_user_per_min: int | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.token_ttl_s = token_ttl_s
        self.attempts = login_attempts_per_min
        self.per_address = login_per_address_per_min or ADDRESS_FACTOR * login_attempts_per_min
        self.per_user = login_per_user_per_min or USER_FACTOR * login_attempts_per_min
        self._put_user = redis.register_script(_PUT_USER)
        self._issue = redis.register_script(_ISSUE)
        self._reserve = redis.register_script(_RESERVE)
        self._refund = redis.register_script(_REFUND)
        self._rehash = redis.register_script(_REHASH)
        self._deny = redis.register_script(_DENY)

    def _user_key(self, name: str) -> str:
        return f"{self.prefix}auth:user:{name}"

    def _token_key(self, digest: str) -> str:
        return f"{self.prefix}auth:token:{digest}"

    def _tokens_key(self, name: str) -> str:
        return f"{self.prefix}auth:tokens:{name}"

    def stream_key(self, stream: AuditStream) -> str:
        return stream_key(self.prefix, stream)

    async def add_user(self, name: str, role: Role, password: str | None = None) -> str:
        """Create a user, or update its role (and its password, when one is given: none keeps the old
        one). A role or password change revokes every token of the user. Returns ``created``,
        ``updated`` or ``revoked``."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        pw = await asyncio.to_thread(hash_password, password) if password else ""
        outcome = await self._put_user(keys=[self._user_key(name)], args=[role, pw, repr(time.time())])
        if int(outcome) == 2:
            await self.revoke_user_tokens(name)
            return "revoked"
        return "created" if int(outcome) == 0 else "updated"

    async def delete_user(self, name: str) -> bool:
        """Remove a user and every token it holds; False if there was no such user."""
        existed = await self.redis.delete(self._user_key(name))
        await self.revoke_user_tokens(name)
        return bool(existed)

    async def revoke_user_tokens(self, name: str) -> int:
        """Delete the user's listed tokens (tokens not listed die anyway: their epoch is stale)."""
        digests = [_s(d) for d in await self.redis.smembers(self._tokens_key(name))]
        gone = 0
        if digests:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.delete(*[self._token_key(d) for d in digests])
                pipe.delete(self._tokens_key(name))
                gone, _ = await pipe.execute()
        await self._revoked()  # even with none listed: an epoch change ends what its old tokens opened
        return int(gone)

    async def _revoked(self) -> None:
        """Tell the workers: live views opened with a revoked token end now, not at their next refresh."""
        await self.redis.publish(revoked_channel(self.prefix), "1")

    async def user(self, name: str) -> dict[str, str] | None:
        raw = await self.redis.hgetall(self._user_key(name))
        return {_s(k): _s(v) for k, v in raw.items()} if raw else None

    async def issue_token(self, name: str, role: Role, ttl_s: float | None = None, *,
                          epoch: str | None = None) -> tuple[str, float]:
        """A new token for ``name``; it is valid only while the user's epoch is ``epoch`` (default: now).
        ``role`` is recorded for reading; the token always acts with the user's current role."""
        if epoch is None:
            epoch = _s(await self.redis.hget(self._user_key(name), "epoch") or "0")
        token = secrets.token_urlsafe(32)
        ttl = self.token_ttl_s if ttl_s is None else ttl_s
        expires = time.time() + ttl
        digest = token_digest(token)
        await self._issue(keys=[self._token_key(digest), self._tokens_key(name)],
                          args=[name, role, repr(expires), epoch, max(1, int(ttl * 1000)), self._token_key(""),
                                digest])
        return token, expires

    async def check_token(self, token: str) -> Principal | None:
        digest = token_digest(token)
        raw = await self.redis.hgetall(self._token_key(digest))
        if not raw:
            return None
        d = {_s(k): _s(v) for k, v in raw.items()}
        if float(d.get("expires_at", "0")) <= time.time() or "user" not in d:
            return None
        raw_role, raw_epoch = await self.redis.hmget(self._user_key(d["user"]), ["role", "epoch"])
        role = _s(raw_role) if raw_role is not None else ""
        if role not in ROLES or _s(raw_epoch or "0") != d.get("epoch", "0"):
            return None  # user removed, or its role or password changed since this token was issued
        return Principal(d["user"], role, digest)  # type: ignore[arg-type]

    async def revoke(self, digest: str) -> None:
        await self.redis.delete(self._token_key(digest))
        await self._revoked()

    def _fail_keys(self, name: str, client: str) -> list[str]:
        base = f"{self.prefix}auth:fail"
        return [f"{base}:{token_digest(name + '|' + client)}", f"{base}:addr:{token_digest(client)}",
                f"{base}:user:{token_digest(name)}"]

    async def login(self, name: str, password: str, client: str) -> tuple[Principal, str] | None:
        """Check a password: the principal and the user's epoch it was checked against, or None.
        Raises 429 while a limit is full (this user from this address, this address, this user)."""
        keys = self._fail_keys(name, client)
        full, ttl = await self._reserve(keys=keys, args=[self.attempts, self.per_address, self.per_user,
                                                         LOGIN_WINDOW_S])
        if int(full):
            wait = max(int(ttl), 1)
            what = {1: f"for {name!r} from your address", 2: "from your address", 3: f"for {name!r}"}[int(full)]
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                                f"too many failed logins {what}; try again in {wait} s",
                                headers={"Retry-After": str(wait)})
        user = await self.user(name)
        stored = user.get("password", "") if user else ""
        # an unknown user costs the same scrypt as a known one, so timing does not tell them apart
        ok = await asyncio.to_thread(verify_password, password, stored or _dummy_hash()) and bool(stored)
        if not ok or user is None or user.get("role") not in ROLES:
            return None  # the reserved attempt stays counted: it was a failure
        await self._refund(keys=keys)
        if needs_rehash(stored):
            fresh = await asyncio.to_thread(hash_password, password)
            await self._rehash(keys=[self._user_key(name)], args=[stored, fresh])
        return Principal(name, user["role"], ""), user.get("epoch", "0")  # type: ignore[arg-type]

    async def audit(self, actor: str, action: str, target: str = "", *, client: str = "", result: str = "ok",
                    detail: str = "") -> None:
        """Append to the stream the entry belongs in: refusals (``result`` other than ``ok``) to
        ``denied``, sampled and capped; logins, logouts and clip views to ``access``; the rest to
        ``changes``."""
        fields = entry(actor, action, target, client=client, result=result, detail=detail)
        if result != "ok":
            window = f"{self.stream_key('denied')}:n"
            await self._deny(keys=[f"{window}:{token_digest(actor + '|' + action + '|' + client)}",
                                   f"{window}:all", self.stream_key("denied")],
                             args=[DENIED_SAMPLE, DENIED_PER_MIN, DENIED_MAXLEN, LOGIN_WINDOW_S,
                                   *[x for kv in fields.items() for x in kv]])
            return
        await append(self.redis, self.prefix, "access" if action in ACCESS_ACTIONS else "changes", fields)

    async def read_audit(self, count: int, stream: AuditStream | None = None) -> list[dict[str, Any]]:
        """The newest ``count`` entries of one stream, or of all three merged (newest first)."""
        streams: tuple[AuditStream, ...] = (stream,) if stream else ("changes", "access", "denied")
        async with self.redis.pipeline(transaction=False) as pipe:
            for s in streams:
                pipe.xrevrange(self.stream_key(s), count=count)
            results = await pipe.execute()
        rows = [{"id": _s(sid), "stream": s, **{_s(k): _s(v) for k, v in f.items()}}
                for s, got in zip(streams, results, strict=True) for sid, f in got]
        rows.sort(key=lambda r: tuple(int(x) for x in r["id"].split("-")), reverse=True)
        return rows[:count]


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
    """Add (or update) a user and return a new API token for it (used by the CLI and the demo).
    A role or password change revokes the user's other tokens."""
    auth = Auth(redis, prefix)
    outcome = await auth.add_user(name, role, password)
    token, _ = await auth.issue_token(name, role, token_ttl_s)
    await auth.audit("cli", "user_add", name, detail=f"role={role} {outcome}")
    return token


async def remove_user(redis: Redis, prefix: str, name: str) -> bool:
    """Remove a user and revoke its tokens (the CLI); False if there was no such user."""
    auth = Auth(redis, prefix)
    existed = await auth.delete_user(name)
    await auth.audit("cli", "user_remove", name, detail="" if existed else "no such user")
    return existed
