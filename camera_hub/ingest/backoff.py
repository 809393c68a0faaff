"""Reconnect pacing: capped exponential backoff with full jitter, and a bound on opens in flight.

Full jitter (delay uniform in ``[0, min(cap, base * 2**attempt)]``) is what spreads 1,000
cameras that lost the network at the same instant: with a fixed or lightly jittered delay they
would all come back in lock-step and every retry would be a storm against the same switch.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from camera_hub import metrics


class Backoff:
    """Delay before the next reconnect attempt; :meth:`reset` once a connection proved good."""

    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** min(self.attempt, 32))
        self.attempt += 1
        return self._rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


def schedule(backoff: Backoff, failure_s: float, horizon_s: float) -> list[float]:
    """Times of the retries one camera makes when every attempt fails after ``failure_s``
    (a pure model of the reconnect loop, used to check the spread)."""
    times, t = [], 0.0
    while True:
        t += backoff.next_delay()
        if t > horizon_s:
            return times
        times.append(t)
        t += failure_s


def max_window_share(times: list[float], window_s: float = 0.1) -> float:
    """The largest share of ``times`` that falls in any window of ``window_s`` seconds."""
    ts = sorted(times)
    if not ts:
        return 0.0
    best, j = 0, 0
    for i, t in enumerate(ts):
        while ts[j] < t - window_s:
            j += 1
        best = max(best, i - j + 1)
    return best / len(ts)


class OpenGate:
    """A process-wide bound on RTSP opens in flight (opening probes the stream for ~0.6 s and
    500 opens at once mostly fail: the server answers PLAY too late)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._sem = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

    @contextmanager
    def hold(self, stop: threading.Event | None = None) -> Iterator[bool]:
        """Wait for a slot (giving up, with False, once ``stop`` is set)."""
        while not self._sem.acquire(timeout=0.2):
            if stop is not None and stop.is_set():
                yield False
                return
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        metrics.OPENS_IN_FLIGHT.inc()
        try:
            yield True
        finally:
            with self._lock:
                self.in_flight -= 1
            metrics.OPENS_IN_FLIGHT.dec()
            self._sem.release()

