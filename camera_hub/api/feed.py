"""Server-Sent Events fan-out of the alert Stream.

One reader per API process tails the Stream (a blocking XREAD) and hands each entry to every
connected client's queue, so 100 clients cost one Redis read, not 100. A client that comes back
with ``Last-Event-ID`` subscribes first and then reads what it missed with XRANGE; entries that
arrive meanwhile are skipped by id, so it gets each event exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from redis.exceptions import RedisError
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from camera_hub.alerts.store import AlertStore, FeedEntry, feed_event_json

log = logging.getLogger(__name__)
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
MAX_ID_PART = 2**64 - 1  # each half of a Redis stream id is an unsigned 64-bit number
HEARTBEAT_S = 15.0


def sid_key(sid: str) -> tuple[int, int]:
    ms, _, seq = sid.partition("-")
    return int(ms), int(seq or 0)


def valid_resume_id(sid: str) -> bool:
    """A Redis stream id that Redis accepts as an exclusive start: both halves at most 2^64 - 1 (20
    digits pass the pattern yet overflow) and not the very last id (nothing can follow it)."""
    if not STREAM_ID.match(sid):
        return False
    ms, seq = sid_key(sid)
    return ms <= MAX_ID_PART and seq <= MAX_ID_PART and (ms, seq) != (MAX_ID_PART, MAX_ID_PART)


Batch = tuple[tuple[tuple[int, int], str], ...]  # ((stream id, SSE text), ...) read together


class Subscriber:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[Batch] = asyncio.Queue(size)
        self.overflowed = asyncio.Event()


class FeedHub:
    """``coalesce_s``: after a read that returned entries, wait this long before the next one, so a
    burst reaches each client as one write instead of one per alert (adds at most that much delay)."""

    def __init__(self, store: AlertStore, *, queue_size: int = 1000, block_ms: int = 5000,
                 coalesce_s: float = 0.02, max_per_user: int = 8) -> None:
        self.store = store
        self.queue_size = queue_size
        self.block_ms = block_ms
        self.coalesce_s = coalesce_s
        self.max_per_user = max_per_user
        self._subs: set[Subscriber] = set()
        self._streams: Counter[str] = Counter()  # open feeds per user, reserved before each response starts
        self._task: asyncio.Task[None] | None = None

    @property
    def clients(self) -> int:
        return len(self._subs)

    async def start(self) -> None:
        try:
            self._last = await self.store.last_feed_id()
        except Exception:  # Redis not there yet: start from whatever comes next
            self._last = "$"
        self._task = asyncio.create_task(self._run(), name="feed-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                entries = await self.store.read_feed(self._last, count=1000, block_ms=self.block_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: keep trying; clients resume by id anyway
                log.warning("feed reader: %s", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            if not entries:
                continue
            self._last = entries[-1].stream_id
            batch: Batch = tuple((sid_key(e.stream_id), _sse(e)) for e in entries)  # formatted once for all
            for sub in list(self._subs):
                try:
                    sub.queue.put_nowait(batch)
                except asyncio.QueueFull:  # too slow: drop it; it reconnects with Last-Event-ID
                    self._subs.discard(sub)
                    sub.overflowed.set()
            if self.coalesce_s:
                await asyncio.sleep(self.coalesce_s)

    def reserve(self, user: str) -> bool:
        """Take one of ``user``'s ``max_per_user`` feeds; False when all are open. Each client holds a
        connection and a queue of up to ``queue_size`` batches, so one token cannot open them without end."""
        if self._streams[user] >= self.max_per_user:
            return False
        self._streams[user] += 1
        return True

    def release(self, user: str) -> None:
        self._streams[user] -= 1
        if self._streams[user] <= 0:
            del self._streams[user]

    def subscribe(self) -> Subscriber:
        sub = Subscriber(self.queue_size)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subs.discard(sub)

    async def events(self, last_event_id: str | None) -> AsyncIterator[str]:
        """The SSE text for one client, from after ``last_event_id`` (or from now). A client whose
        ``last_event_id`` is older than the oldest entry kept gets ``event: reset`` first (reload
        the list: some events were trimmed before it could read them)."""
        sub = self.subscribe()
        try:
            yield "retry: 1000\n\n"
            last = sid_key(last_event_id) if last_event_id else (0, 0)
            if last_event_id:
                try:
                    first = await self.store.first_feed_id()
                    if first is not None and sid_key(first) > last:
                        # what the client last saw was trimmed away: what followed may be too
                        yield f"event: reset\ndata: {{\"oldest\": \"{first}\"}}\n\n"
                    after = last_event_id
                    while True:
                        missed = await self.store.read_feed(after, count=500)
                        if missed:
                            yield "".join(_sse(e) for e in missed)
                        if len(missed) < 500:
                            break
                        after = missed[-1].stream_id
                except (RedisError, OSError) as exc:
                    # Redis went away mid catch-up: end the stream; the client comes back (retry: 1 s)
                    # with the id of the last event it got, which is all it got
                    log.warning("feed catch-up: %s", type(exc).__name__)
                    return
                if missed:
                    last = sid_key(missed[-1].stream_id)
                elif after != last_event_id:
                    last = sid_key(after)
            while not sub.overflowed.is_set():
                try:
                    batches = [await asyncio.wait_for(sub.queue.get(), HEARTBEAT_S)]
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                while not sub.queue.empty() and len(batches) < 50:  # catch up in one write
                    batches.append(sub.queue.get_nowait())
                text = "".join(t for b in batches for key, t in b if key > last)  # <= last: sent in catch-up
                if text:
                    yield text
        finally:
            self.unsubscribe(sub)


class FeedResponse(StreamingResponse):
    """The SSE response: gives the user's feed back (``release``) however the stream ends."""

    def __init__(self, content: AsyncIterator[str], release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


def _sse(e: FeedEntry) -> str:
    return f"id: {e.stream_id}\nevent: alert\ndata: {feed_event_json(e)}\n\n"
