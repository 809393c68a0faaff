"""What the API and the workers share for live view: Redis keys and scripts, the signature of
the API's calls to a worker's live endpoint, and SDP helpers.

Redis (``P`` = ``settings.redis.prefix``):

- ``Plive:worker:<worker id>``: the base URL of the worker's live endpoint
  (``http://host:port``), ``SET PX`` :data:`ADDRESS_TTL_MS`, refreshed every
  :data:`REFRESH_S` while the worker runs, deleted when it stops;
- ``Plive:user:<user>``: a sorted set of the user's live sessions, scored by their expiry in
  Redis server time (ms). The API reserves a place atomically (:data:`RESERVE`, which first
  drops expired members, then refuses past the user's limit); the worker that serves a session
  pushes its expiry on every :data:`REFRESH_S` (:data:`REFRESH`) and removes it when the session
  ends. A session whose member is gone (its user deleted it, or an admin did) is ended by the
  worker at its next refresh;
- a live session also lasts only as long as the token that opened it: the worker knows the
  token's digest (``X-Live-Token``) and its refresh checks, in the same script and pipeline,
  that ``Pauth:token:<digest>`` still exists for the session's user, has not expired, and that
  the user still exists with a role and the epoch the token was issued at
  (:mod:`camera_hub.api.auth`). Logout, removing the user, a role or password change and expiry
  therefore end the user's live views within :data:`REFRESH_S`; the API publishes each
  revocation (:func:`revoked_channel`), which ends them at once, and a token's own expiry is
  checked at the moment it comes (REFRESH tells the worker the time each token has left).

Worker call signature:
``HMAC-SHA256(secret, method \\n path \\n time \\n user \\n token digest \\n sha256(body))`` in
``X-Live-Signature``, with ``X-Live-Time`` (Unix seconds, within :data:`MAX_SKEW_S` of the
worker's clock), ``X-Live-User`` and ``X-Live-Token`` (the SHA-256 of the viewer's token, never the
token). The secret never travels; a captured request is only good for :data:`MAX_SKEW_S` and
cannot make a second session under the same id.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

REFRESH_S = 5.0
ADDRESS_TTL_MS = 15_000  # three refreshes
SESSION_TTL_MS = 20_000  # a live session's expiry, pushed every REFRESH_S by its worker
MAX_SKEW_S = 30.0
SECRET_ENV = "CAMERA_HUB_LIVE_SECRET"
MIN_SECRET_CHARS = 16
SESSION_ID = re.compile(r"^[0-9a-f]{32}$")
SESSION_ID_PATTERN = SESSION_ID.pattern
HEVC_MESSAGE = ("this camera sends H.265 (HEVC); live view plays H.264 only. Browsers: Safari 18+ on "
                "Apple hardware and Chrome/Edge 136+ with hardware decoding can receive H.265 over WebRTC, "
                "Firefox cannot, and the server's WebRTC stack (aiortc) cannot send it. Set the camera's "
                "substream to H.264, or use its snapshot.")
BFRAMES_MESSAGE = ("this camera's H.264 has B-frames (frames out of presentation order), which WebRTC cannot "
                   "play without re-encoding. Turn B-frames off in the camera (baseline profile, or "
                   "'B-frames: 0'), or use its snapshot.")

# Reserve a session for a user. KEYS: the user's set. ARGV: session id, limit, ttl ms.
# Returns 0 when reserved, else the number of live sessions the user holds.
RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[2]) then return n end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 60000)
return 0
"""

# Push a live session's expiry while the token that opened it is still good. KEYS: the user's
# set, the token's hash, the user's hash (camera_hub.api.auth's layout). ARGV: session id, ttl ms,
# user, then the roles that may watch. Returns {code, ms}: code 1 kept, ms the time its token has
# left (the worker checks again at that moment, not at its next refresh); 0 no longer listed
# (deleted, or expired); 2 its token is revoked: logged out, expired, the user removed or its role
# or password changed (the epoch moved) since the token was issued. 0 and 2 drop the member: the
# worker ends the session.
REFRESH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) < now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return {0, 0}
end
local tok = redis.call('HMGET', KEYS[2], 'user', 'expires_at', 'epoch')
local usr = redis.call('HMGET', KEYS[3], 'role', 'epoch')
local role_ok = false
for i = 4, #ARGV do if usr[1] == ARGV[i] then role_ok = true end end
if tok[1] ~= ARGV[3] or (tonumber(tok[2]) or 0) * 1000 <= now or not role_ok
    or (usr[2] or '0') ~= (tok[3] or '0') then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return {2, 0}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) + 60000 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 60000)
end
return {1, math.floor(tonumber(tok[2]) * 1000 - now)}
"""
ROLES = ("viewer", "operator", "analyst", "admin")  # those that may watch: every role (auth.ROLES)


def worker_key(prefix: str, worker_id: str) -> str:
    return f"{prefix}live:worker:{worker_id}"


def user_key(prefix: str, user: str) -> str:
    return f"{prefix}live:user:{user}"


# camera_hub.api.auth's keys, read by REFRESH (the worker does not import the API)
def token_key(prefix: str, digest: str) -> str:
    return f"{prefix}auth:token:{digest}"


def account_key(prefix: str, user: str) -> str:
    return f"{prefix}auth:user:{user}"


def revoked_channel(prefix: str) -> str:
    """Pub/sub channel the API publishes on when it revokes tokens (logout, a role or password
    change, a removed user): each worker checks its sessions at once instead of at its next
    refresh. The message carries nothing; the check reads Redis as the refresh does."""
    return f"{prefix}live:revoked"


def new_session_id() -> str:
    return secrets.token_hex(16)


# ------------------------------------------------------------------ signature
def signature(secret: str, method: str, path: str, t: str, user: str, token: str, body: bytes) -> str:
    msg = "\n".join((method.upper(), path, t, user, token, hashlib.sha256(body).hexdigest())).encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def sign(secret: str, method: str, path: str, user: str, body: bytes = b"", now: float | None = None, *,
         token: str = "") -> dict[str, str]:
    """The headers that authenticate an API → worker call. ``token``: the digest of the viewer's
    token (:func:`camera_hub.api.auth.token_digest`), which a session opened by the call lasts with."""
    t = str(int(time.time() if now is None else now))
    return {"X-Live-Time": t, "X-Live-User": user, "X-Live-Token": token,
            "X-Live-Signature": signature(secret, method, path, t, user, token, body)}


def verify(secret: str, method: str, path: str, headers: Mapping[str, str], body: bytes,
           now: float | None = None) -> str | None:
    """The user the API vouched for, or None when the signature or its time is wrong (the
    ``x-live-token`` header is covered too). ``headers`` has lower-case names."""
    t, user, sig = headers.get("x-live-time", ""), headers.get("x-live-user", ""), headers.get("x-live-signature", "")
    if not (t.isdigit() and user and sig):
        return None
    if abs((time.time() if now is None else now) - int(t)) > MAX_SKEW_S:
        return None
    token = headers.get("x-live-token", "")
    if not hmac.compare_digest(signature(secret, method, path, t, user, token, body), sig):
        return None
    return user


# ------------------------------------------------------------------ SDP
_CANDIDATE = re.compile(r"^a=candidate:(\S+) (\d+) (udp|UDP) (\d+) (\S+) (\d+) typ host(.*)$")


def add_ice_addresses(sdp: str, addresses: list[str]) -> str:
    """Offer each host candidate's port on ``addresses`` too (the worker's address as browsers
    see it through NAT or a container's port mapping, where the port maps to itself), after the
    candidates they copy, at a slightly lower priority."""
    if not addresses:
        return sdp
    out: list[str] = []
    run: list[re.Match[str]] = []

    def copies() -> None:
        own = {m.group(5) for m in run}
        for j, addr in enumerate(a for a in addresses if a not in own):
            for m in run:
                foundation, component, _, priority, _host, port, _rest = m.groups()
                out.append(f"a=candidate:{foundation}x{j} {component} udp {max(1, int(priority) - 1 - j)} "
                           f"{addr} {port} typ host")
        run.clear()

    for line in sdp.split("\r\n"):
        m = _CANDIDATE.match(line)
        if m is None and run:
            copies()
        out.append(line)
        if m is not None:
            run.append(m)
    if run:
        copies()
    return "\r\n".join(out)


def video_codecs(sdp: str) -> list[str]:
    """The video codec names an SDP offers (upper case), in its order."""
    names: list[str] = []
    in_video = False
    for line in sdp.splitlines():
        if line.startswith("m="):
            in_video = line.startswith("m=video")
        elif in_video and (m := re.match(r"a=rtpmap:\d+ ([\w.-]+)/", line)):
            names.append(m.group(1).upper())
    return names


# ------------------------------------------------------------------ trickle ICE (RFC 8840 fragments)
TRICKLE_TYPE = "application/trickle-ice-sdpfrag"
_SDP_LINE = re.compile(r"^[a-z]=.*$")


@dataclass(frozen=True, slots=True)
class TrickledCandidate:
    value: str  # after "a=candidate:"
    mid: str | None  # the a=mid of its m= section, if any
    mline: int  # the index of its m= section (0 without one)
    ufrag: str | None  # its "ufrag" extension, if any


@dataclass(frozen=True, slots=True)
class SdpFrag:
    ufrag: str | None
    pwd: str | None
    candidates: list[TrickledCandidate]
    end: bool  # a=end-of-candidates


def parse_sdpfrag(text: str) -> SdpFrag:
    """An ``application/trickle-ice-sdpfrag`` body (RFC 8840 §9): ICE credentials, then candidates,
    grouped under ``m=`` sections with their ``a=mid``. Other attributes are ignored. Raises
    ValueError when it is not SDP or a candidate line is malformed."""
    ufrag = pwd = None
    mline = -1
    end = False
    pending: list[tuple[str, int, str | None]] = []  # (value, m-line, ufrag) until the section's a=mid is known
    mids: dict[int, str] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        line = line.strip()
        if not line:
            continue
        if not _SDP_LINE.match(line):
            raise ValueError(f"not an SDP line: {line[:60]!r}")
        if line.startswith("m="):
            mline += 1
        elif line.startswith("a=mid:"):
            mids[max(mline, 0)] = line[6:].strip()
        elif line.startswith("a=ice-ufrag:"):
            ufrag = line[12:].strip()
        elif line.startswith("a=ice-pwd:"):
            pwd = line[10:].strip()
        elif line == "a=end-of-candidates":
            end = True
        elif line.startswith("a=candidate:"):
            value = line[12:].strip()
            bits = value.split()
            if len(bits) < 8 or not (bits[1].isdigit() and bits[3].isdigit() and bits[5].isdigit()) \
                    or int(bits[5]) > 65535 or bits[6] != "typ":
                raise ValueError(f"malformed candidate: {value[:80]!r}")
            ext = dict(zip(bits[8::2], bits[9::2], strict=False))
            pending.append((value, max(mline, 0), ext.get("ufrag")))
    return SdpFrag(ufrag, pwd, [TrickledCandidate(v, mids.get(m), m, u) for v, m, u in pending], end)
