"""Reconnect pacing: full jitter spreads a synchronised failure; opens in flight stay bounded."""

from __future__ import annotations

import random
import threading
import time

from camera_hub.ingest.backoff import Backoff, OpenGate, max_window_share, schedule


def _retries(make: object, cameras: int = 100, horizon_s: float = 10.0) -> list[float]:
    times: list[float] = []
    for i in range(cameras):
        times += schedule(make(i), failure_s=0.02, horizon_s=horizon_s)  # type: ignore[operator]
    return times


def _draw_at(attempt: int, seed: int) -> float:
    b = Backoff(1.0, 8.0, random.Random(seed))
    b.attempt = attempt
    return b.next_delay()


def test_delays_are_capped_exponential_with_full_jitter() -> None:
    for attempt in range(8):
        ceiling = min(8.0, 2.0**attempt)
        draws = [_draw_at(attempt, seed) for seed in range(300)]
        assert all(0.0 <= d <= ceiling for d in draws)
        # full jitter: the whole range [0, ceiling] is used, not a band near the ceiling
        assert min(draws) < 0.05 * ceiling and max(draws) > 0.95 * ceiling
    b = Backoff(1.0, 8.0)
    b.next_delay()
    b.next_delay()
    b.reset()
    assert b.attempt == 0 and b.next_delay() <= 1.0


def test_100_cameras_failing_together_do_not_retry_in_lock_step() -> None:
    """After the first retry, no 100 ms window holds more than 10 % of the reconnect attempts."""
    for seed in range(20):
        times = _retries(lambda i, seed=seed: Backoff(1.0, 60.0, random.Random(seed * 1000 + i)))
        assert len(times) > 300
        assert max_window_share(times) <= 0.10, seed


def test_the_spread_check_catches_a_schedule_without_jitter() -> None:
    class NoJitter(Backoff):
        def next_delay(self) -> float:
            d = min(self.cap_s, self.base_s * 2**self.attempt)
            self.attempt += 1
            return d

    times = _retries(lambda i: NoJitter(1.0, 60.0))
    assert max_window_share(times) > 0.2


def test_open_gate_bounds_opens_in_flight() -> None:
    gate = OpenGate(3)
    inside, peak, lock = [0], [0], threading.Lock()

    def opener() -> None:
        with gate.hold() as ok:
            assert ok
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.02)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=opener) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == gate.peak == 3
    assert gate.in_flight == 0


def test_open_gate_gives_up_when_stopping() -> None:
    gate = OpenGate(1)
    stop = threading.Event()
    with gate.hold():
        stop.set()
        with gate.hold(stop) as ok:
            assert not ok
