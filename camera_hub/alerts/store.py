"""Alerts in Redis: a Stream as the feed, one hash per alert, sorted-set indexes.

Every key carries the ``{alerts}`` hash tag after the configured prefix, so the hash, its index
entries and its feed entry live in one Cluster slot and can change in one transaction.
Index members all score 0 and are ordered by id (ids start with the onset in ms), so a page is
one ``ZRANGE … BYLEX REV`` and the cursor is simply the last id returned.

Every write is idempotent so the publisher's spool can be replayed safely: a create is a no-op
when the alert exists, an amend only applies when it is newer than what is stored, a clip is
attached once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from camera_hub.alerts.model import (
    ALERT_TYPES,
    OPEN_STATES,
    TRANSITIONS,
    Alert,
    AlertNotFound,
    HistoryEntry,
    IllegalTransition,
)

INDEX_FIELDS = ("camera_id", "grid_id", "district", "type", "state")
FEED_FIELDS = ("id", "event", "alert")

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'state', ARGV[3])
for i = 4, #KEYS do redis.call('ZADD', KEYS[i], 0, ARGV[1]) end
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1]) end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'id', ARGV[1], 'event', 'created',
                  'alert', ARGV[2])
"""

# An episode's record: newer wins, and for one alert an end is final (a worker that has just lost
# the camera may write its last sighting after the new holder ended the episode).
_PUT_EPISODE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local c = cjson.decode(cur)
  if c.id == ARGV[2] and c.ended then return 0 end
  if tonumber(c.t) > tonumber(ARGV[3]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
return 1
"""


@dataclass(frozen=True, slots=True)
class EpisodeRecord:
    """The latest episode of one camera, zone and type, as the worker publishing it last saw it:
    the worker that holds the camera next continues it (or keeps its cooldown) instead of raising
    a second alert. ``t``: its last event, or the last sample that found it still under way."""

    camera_id: str
    zone_id: str
    type: str
    alert_id: str
    started_at: float
    t: float
    ended: bool

    def to_json(self) -> str:
        return json.dumps({"id": self.alert_id, "started_at": self.started_at, "t": self.t, "ended": self.ended})


@dataclass(frozen=True, slots=True)
class FeedEntry:
    stream_id: str
    alert_id: str
    event: str
    alert_json: str


@dataclass(frozen=True, slots=True)
class AlertPage:
    alerts: list[Alert]
    next_cursor: str | None


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class AlertStore:
    def __init__(self, redis: Redis, prefix: str, *, maxlen: int = 100_000, max_age_s: float = 30 * 86400) -> None:
        self.redis = redis
        self.base = f"{prefix}{{alerts}}:"
        self.maxlen = maxlen
        self.max_age_s = max_age_s
        self._create = redis.register_script(_CREATE)
        self._put_episode = redis.register_script(_PUT_EPISODE)

    # ------------------------------------------------------------------ keys
    @property
    def feed_key(self) -> str:
        return self.base + "feed"

    @property
    def due_key(self) -> str:
        return self.base + "due"

    @property
    def breaches_key(self) -> str:
        return self.base + "sla_breaches"

    def offline_key(self, camera_id: str) -> str:
        return f"{self.base}offline:{camera_id}"

    async def offline_open(self, camera_id: str) -> float | None:
        """The onset of the camera's open ``camera_offline`` episode, whichever worker raised it."""
        raw = await self.redis.get(self.offline_key(camera_id))
        return float(raw) if raw is not None else None

    async def set_offline(self, camera_id: str, started_at: float | None) -> None:
        """Record (a float) or clear (None) the camera's open offline episode: a worker that takes the
        camera over, or a restarted one, ends or continues it instead of leaving it open for good."""
        if started_at is None:
            await self.redis.delete(self.offline_key(camera_id))
        else:
            await self.redis.set(self.offline_key(camera_id), repr(started_at))

    def episode_key(self, camera_id: str, zone_id: str, type_: str) -> str:
        return f"{self.base}episode:{camera_id}|{zone_id}|{type_}"

    async def episodes(self, which: list[tuple[str, str, str]]) -> list[EpisodeRecord | None]:
        """The records of these (camera, zone, type), in one round trip."""
        if not which:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for cam, zone, type_ in which:
                pipe.get(self.episode_key(cam, zone, type_))
            raws = await pipe.execute()
        out: list[EpisodeRecord | None] = []
        for (cam, zone, type_), raw in zip(which, raws, strict=True):
            d = json.loads(raw) if raw else None
            out.append(EpisodeRecord(cam, zone, type_, d["id"], float(d["started_at"]), float(d["t"]),
                                     bool(d["ended"])) if d else None)
        return out

    async def put_episodes(self, records: list[EpisodeRecord], ttl_s: float) -> None:
        """Write records (see ``_PUT_EPISODE``); each expires ``ttl_s`` after its last write."""
        if not records:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for r in records:
                await self._put_episode(keys=[self.episode_key(r.camera_id, r.zone_id, r.type)],
                                        args=[r.to_json(), r.alert_id, repr(r.t), int(ttl_s * 1000)], client=pipe)
            await pipe.execute()

    def alert_key(self, alert_id: str) -> str:
        return f"{self.base}a:{alert_id}"

    def index_key(self, field: str, value: str | None = None) -> str:
        return self.base + ("ix:all" if field == "all" else f"ix:{field}:{value}")

    def _index_keys(self, alert: Alert) -> list[str]:
        keys = [self.index_key("all")]
        for f in INDEX_FIELDS:
            value = getattr(alert, f)
            if value is not None:
                keys.append(self.index_key(f, value))
        return keys

    # ------------------------------------------------------------------ writes
    def _create_call(self, alert: Alert) -> tuple[list[str], list[Any]]:
        keys = [self.alert_key(alert.id), self.feed_key, self.due_key, *self._index_keys(alert)]
        due = repr(alert.due_at) if alert.is_open else ""
        return keys, [alert.id, alert.model_dump_json(), alert.state, self.maxlen, due]

    async def create(self, alert: Alert) -> str | None:
        """Store a new alert and announce it on the feed; the stream id, or None when it existed."""
        keys, args = self._create_call(alert)
        res = await self._create(keys=keys, args=args)
        return _s(res) if res else None

    async def create_many(self, alerts: list[Alert]) -> list[str | None]:
        """``create`` for several alerts in one round trip (each still atomic and idempotent)."""
        if len(alerts) == 1:
            return [await self.create(alerts[0])]
        async with self.redis.pipeline(transaction=False) as pipe:
            for alert in alerts:
                keys, args = self._create_call(alert)
                await self._create(keys=keys, args=args, client=pipe)
            results = await pipe.execute()
        return [_s(r) if r else None for r in results]

    async def _mutate(
        self, alert_id: str, change: Callable[[Alert], Alert | None], event: str
    ) -> tuple[Alert, str | None]:
        """Read-modify-write under WATCH. ``change`` returns the new alert, or None for no-op."""
        key = self.alert_key(alert_id)
        while True:
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hget(key, "doc")
                    if raw is None:
                        raise AlertNotFound(alert_id)
                    old = Alert.model_validate_json(raw)
                    new = change(old.model_copy(deep=True))
                    if new is None:
                        await pipe.unwatch()
                        return old, None
                    doc = new.model_dump_json()
                    pipe.multi()
                    pipe.hset(key, mapping={"doc": doc, "state": new.state})
                    if new.state != old.state:
                        pipe.zrem(self.index_key("state", old.state), alert_id)
                        pipe.zadd(self.index_key("state", new.state), {alert_id: 0})
                    if not new.is_open or new.breached:
                        pipe.zrem(self.due_key, alert_id)
                    pipe.xadd(self.feed_key, {"id": alert_id, "event": event, "alert": doc},
                              maxlen=self.maxlen, approximate=True)
                    res = await pipe.execute()
                    return new, _s(res[-1])
                except WatchError:
                    continue

    async def amend(self, alert_id: str, *, t: float, count: int | None = None, score: float | None = None,
                    boxes: Iterable[Any] | None = None, ended_at: float | None = None) -> bool:
        """An episode update or end; applied only when newer than the stored alert (idempotent)."""

        def change(a: Alert) -> Alert | None:
            if t <= a.updated_at or a.ended_at is not None:
                return None
            a.updated_at = t
            if count is not None:
                a.count = count
            if score is not None:
                a.score = score
            if boxes is not None:
                a.boxes = [tuple(b) for b in boxes]
            if ended_at is not None:
                a.ended_at = ended_at
            return a

        _, sid = await self._mutate(alert_id, change, "ended" if ended_at is not None else "updated")
        return sid is not None

    async def attach_clip(self, alert_id: str, clip_url: str, clip_start: float | None = None,
                          clip_end: float | None = None, onset_url: str | None = None) -> bool:
        def change(a: Alert) -> Alert | None:
            new = (clip_url, clip_start, clip_end, onset_url)
            if (a.clip_url, a.clip_start, a.clip_end, a.onset_snapshot_url) == new:
                return None
            a.clip_url, a.clip_start, a.clip_end, a.onset_snapshot_url = new
            return a

        _, sid = await self._mutate(alert_id, change, "clip")
        return sid is not None

    async def transition(self, alert_id: str, action: str, actor: str, note: str = "",
                         worker: str | None = None, now: float | None = None) -> Alert:
        """A lifecycle step; raises IllegalTransition (HTTP 409) when the state does not allow it."""
        if action not in TRANSITIONS:
            raise IllegalTransition(alert_id, "?", action)
        sources, target = TRANSITIONS[action]
        at = time.time() if now is None else now

        def change(a: Alert) -> Alert:
            if a.state not in sources:
                raise IllegalTransition(alert_id, a.state, action)
            a.state = target
            if action == "dispatch":
                a.dispatched_to = worker
            a.history.append(HistoryEntry(at=at, actor=actor, action=action, note=note))  # type: ignore[arg-type]
            return a

        alert, _ = await self._mutate(alert_id, change, action)
        return alert

    async def apply(self, op: Mapping[str, Any]) -> None:
        """Replay one spooled operation (see AlertPublisher); every kind is idempotent."""
        kind = op["op"]
        if kind == "create":
            await self.create(Alert.model_validate(op["alert"]))
        elif kind == "amend":
            await self.amend(op["id"], t=op["t"], count=op.get("count"), score=op.get("score"),
                             boxes=op.get("boxes"), ended_at=op.get("ended_at"))
        elif kind == "clip":
            await self.attach_clip(op["id"], op["clip_url"], op.get("clip_start"), op.get("clip_end"),
                                   op.get("onset_url"))
        else:
            raise ValueError(f"unknown spool operation {kind!r}")

    # ------------------------------------------------------------------ reads
    async def get(self, alert_id: str) -> Alert:
        raw = await self.redis.hget(self.alert_key(alert_id), "doc")
        if raw is None:
            raise AlertNotFound(alert_id)
        return Alert.model_validate_json(raw)

    async def get_many(self, ids: list[str]) -> list[Alert]:
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hget(self.alert_key(i), "doc")
            docs = await pipe.execute()
        return [Alert.model_validate_json(d) for d in docs if d is not None]

    async def list(self, filters: Mapping[str, str | None] | None = None, *, cursor: str | None = None,
                   since: float | None = None, until: float | None = None, limit: int = 50,
                   scan_budget: int = 5000) -> AlertPage:
        """Newest first. ``filters`` maps index fields (camera_id, grid_id, district, type, state)
        to values; ``cursor`` is the last id of the previous page."""
        keys = [self.index_key(f, v) for f, v in (filters or {}).items() if v is not None and f in INDEX_FIELDS]
        if not keys:
            keys = [self.index_key("all")]
        if len(keys) > 1:  # walk the smallest index, test membership in the others
            async with self.redis.pipeline(transaction=False) as pipe:
                for k in keys:
                    pipe.zcard(k)
                sizes = await pipe.execute()
            keys = [k for _, k in sorted(zip(sizes, keys, strict=True))]
        primary, others = keys[0], keys[1:]
        upper = cursor
        if until is not None:
            bound = f"{int(until * 1000):013d}"
            upper = bound if upper is None or bound < upper else upper
        lower = "-" if since is None else f"[{int(since * 1000):013d}"
        ids: list[str] = []
        scanned = 0
        exhausted = False
        while len(ids) < limit and scanned < scan_budget:
            want = limit - len(ids) if not others else max(100, 2 * limit)
            batch = [_s(m) for m in await self.redis.zrange(
                primary, "+" if upper is None else f"({upper}", lower, desc=True, bylex=True, offset=0, num=want)]
            scanned += len(batch)
            keep = batch
            if others and batch:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for k in others:
                        pipe.zmscore(k, batch)
                    scores = await pipe.execute()
                keep = [m for i, m in enumerate(batch) if all(s[i] is not None for s in scores)]
            take = keep[: limit - len(ids)]
            ids += take
            if len(take) < len(keep):  # page full in the middle of this batch
                upper = take[-1]
                break
            if len(batch) < want:
                exhausted = True
                break
            upper = batch[-1]
        return AlertPage(await self.get_many(ids), None if exhausted else upper)

    async def read_feed(self, after: str, count: int = 500, block_ms: int | None = None) -> list[FeedEntry]:
        """Feed entries with a stream id greater than ``after`` ("0" for all)."""
        if block_ms is None:
            rows = await self.redis.xrange(self.feed_key, min=f"({after}" if after != "0" else "-", count=count)
        else:
            res = await self.redis.xread({self.feed_key: after}, count=count, block=block_ms)
            rows = res[0][1] if res else []
        return [self._entry(sid, fields) for sid, fields in rows]

    async def first_feed_id(self) -> str | None:
        rows = await self.redis.xrange(self.feed_key, count=1)
        return _s(rows[0][0]) if rows else None

    async def last_feed_id(self) -> str:
        rows = await self.redis.xrevrange(self.feed_key, count=1)
        return _s(rows[0][0]) if rows else "0-0"

    @staticmethod
    def _entry(sid: bytes | str, fields: Mapping[bytes | str, bytes | str]) -> FeedEntry:
        f = {_s(k): _s(v) for k, v in fields.items()}
        return FeedEntry(_s(sid), f.get("id", ""), f.get("event", ""), f.get("alert", "{}"))

    async def open_counts(self) -> dict[tuple[str, str], int]:
        """(type, state) → number of open alerts, for the ALERTS_OPEN gauge."""
        pairs = [(t, s) for t in ALERT_TYPES for s in OPEN_STATES]
        async with self.redis.pipeline(transaction=False) as pipe:
            for t, s in pairs:
                pipe.zintercard(2, [self.index_key("type", t), self.index_key("state", s)])
            counts = await pipe.execute()
        return dict(zip(pairs, (int(c) for c in counts), strict=True))

    async def breaches(self) -> int:
        return int(await self.redis.get(self.breaches_key) or 0)

    # ------------------------------------------------------------------ housekeeping
    async def sweep_sla(self, now: float | None = None,
                        on_breach: Callable[[Alert], Awaitable[None] | None] | None = None) -> int:
        """Mark open alerts past their due time as breached (once each); returns how many."""
        now = time.time() if now is None else now
        found = 0
        for raw in await self.redis.zrange(self.due_key, "-inf", now, byscore=True, offset=0, num=500):
            alert_id = _s(raw)

            def change(a: Alert) -> Alert | None:
                if a.breached or not a.is_open:
                    return None
                a.breached = True
                a.history.append(HistoryEntry(at=now, actor="system", action="sla_breached"))
                return a

            try:
                alert, sid = await self._mutate(alert_id, change, "sla_breached")
            except AlertNotFound:
                await self.redis.zrem(self.due_key, alert_id)
                continue
            await self.redis.zrem(self.due_key, alert_id)
            if sid is not None:
                found += 1
                await self.redis.incr(self.breaches_key)
                if on_breach is not None:
                    res = on_breach(alert)
                    if res is not None:
                        await res
        return found

    async def trim(self, now: float | None = None) -> int:
        """Drop feed entries older than max_age and closed alerts that started before it."""
        now = time.time() if now is None else now
        cutoff_ms = int((now - self.max_age_s) * 1000)
        await self.redis.xtrim(self.feed_key, minid=f"{cutoff_ms}-0", approximate=True)
        old = [_s(m) for m in await self.redis.zrange(
            self.index_key("all"), f"({cutoff_ms:013d}", "-", desc=True, bylex=True, offset=0, num=1000)]
        removed = 0
        for alert in await self.get_many(old):
            if alert.is_open:
                continue
            async with self.redis.pipeline(transaction=True) as pipe:
                for k in self._index_keys(alert):
                    pipe.zrem(k, alert.id)
                pipe.delete(self.alert_key(alert.id))
                await pipe.execute()
            removed += 1
        return removed


def reconnect_once() -> Any:
    """The retry policy of the fail-fast clients: one immediate retry, on a connection error only.
    A pooled connection that a Redis restart closed fails on its next use; the retry takes a fresh
    one. A Redis that is away still fails at once (refused twice), a hung one is not retried (timeout)."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def connect(url: str, *, timeout_s: float = 2.0) -> Redis:
    """A client that fails fast when Redis is away (the publisher then spools) instead of
    retrying for seconds inside each call."""
    return Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                          retry=reconnect_once(), health_check_interval=0)


def feed_event_json(entry: FeedEntry) -> str:
    """The SSE data line: the alert JSON plus which event produced it."""
    doc = json.loads(entry.alert_json)
    doc["event"] = entry.event
    return json.dumps(doc, separators=(",", ":"))
