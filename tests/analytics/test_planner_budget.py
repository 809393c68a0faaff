"""The planner's budget against analysis whose batches cost a fixed part besides their samples
(thread hand-offs, the event loop's turn: what a real worker's batches cost), simulated in
plain time steps: it must find the speed of full batches, not settle at the speed of the small
batches its own low budget makes."""

from __future__ import annotations

import random
from collections import deque

from camera_hub.analytics.planner import AnalysisPlanner
from camera_hub.config import AnalysisSettings

BATCH = 8
FIXED_S, PER_SAMPLE_S = 0.05, 0.005  # 8 / 0.09 s = 89 samples/s in full batches, 18/s one by one
CAMERAS = 1000  # at the 15 s floor they need 67 samples/s: only full batches can give it
GOP_S = 2.0  # arming → the sample: the next keyframe, anywhere in a GOP


def simulate(seconds: float = 90.0, dt: float = 0.01) -> tuple[AnalysisPlanner, float, float]:
    """(planner, samples analysed per second over the last 30 s, p95 interval over them)."""
    s = AnalysisSettings()
    rng = random.Random(7)
    planner = AnalysisPlanner(s)
    for i in range(CAMERAS):
        planner.add(f"c{i}", detects=True, want_s=2.0)
        planner.set_live(f"c{i}", True, 0.0)
    arriving: list[tuple[float, str]] = []
    queue: deque[tuple[str, float]] = deque()
    busy_until, batch, next_plan = 0.0, [], 0.0
    done_late, intervals = 0, []
    last: dict[str, float] = {}
    t = 0.0
    while t < seconds:
        if t >= next_plan:
            for cid in planner.plan(t):
                arriving.append((planner.cameras[cid].armed_at + rng.uniform(0, GOP_S), cid))
            next_plan = t + s.tick_s
        for when, cid in [a for a in arriving if a[0] <= t]:
            arriving.remove((when, cid))
            planner.arrived(cid, when, t)
            queue.append((cid, when))
        if batch and t >= busy_until:
            for cid, taken in batch:
                planner.analysed(cid, taken, False, t)
                if t > seconds - 30:
                    done_late += 1
                    if cid in last:
                        intervals.append(taken - last[cid])
                last[cid] = taken
            planner.batch_done(len(batch), FIXED_S + PER_SAMPLE_S * len(batch), full=len(batch) >= BATCH)
            batch = []
        if not batch and queue:
            batch = [queue.popleft() for _ in range(min(BATCH, len(queue)))]
            busy_until = t + FIXED_S + PER_SAMPLE_S * len(batch)
        t += dt
    intervals.sort()
    return planner, done_late / 30, intervals[int(0.95 * len(intervals))]


def test_budget_grows_to_full_batches_and_holds_the_floor():
    planner, throughput, p95 = simulate()
    capacity = BATCH / (FIXED_S + PER_SAMPLE_S * BATCH)
    assert planner.batch > 0.75 * BATCH, (planner.batch, planner.rate, throughput)
    assert 0.7 * capacity < planner.rate < 1.3 * capacity, (planner.rate, capacity)
    assert throughput > CAMERAS / AnalysisSettings().floor_interval_s, (throughput, planner.rate)
    assert p95 <= AnalysisSettings().floor_interval_s + 1.0, (p95, throughput)
    assert planner.in_flight(90.0) <= AnalysisSettings().max_in_flight


def test_urgency_counts_to_the_last_keyframe_within_the_limit():
    """Intervals are whole GOPs: with 2 s GOPs the 15 s floor is kept only by the keyframe at
    14 s, so a camera with 2 s GOPs is armed before one whose GOP is not known yet."""
    s = AnalysisSettings()
    planner = AnalysisPlanner(s)
    for cid in ("known", "unknown"):
        planner.add(cid, detects=True, want_s=2.0)
        planner.set_live(cid, True, 0.0)
        planner.arrived(cid, 100.0, 100.0, gop_s=2.0 if cid == "known" else None)
        planner.analysed(cid, 100.0, False, 100.5)
    known, unknown = planner.cameras["known"], planner.cameras["unknown"]
    assert planner.deadline(known) == 14.0 and planner.deadline(unknown) == s.floor_interval_s
    known.hot = True
    assert planner.deadline(known) == s.hot_interval_s  # 4 s is two GOPs exactly
    known.hot, known.gop_s = False, 2.1
    assert abs(planner.deadline(known) - 14.7) < 1e-9
    known.gop_s = 2.0
    planner.wait_s = 0.5
    planner.s = s.model_copy(update={"max_in_flight": 1})  # a budget of one camera in flight
    assert planner.plan(100.0 + 12.0) == ["known"]


def test_intervals_are_video_time_between_the_analysed_frames():
    """Two keyframes 4.0 s apart in the stream are 4.0 s apart, however late the worker read the
    second one's last packet; a new session's timestamps (a reconnect) fall back to receive time."""
    planner = AnalysisPlanner(AnalysisSettings())
    planner.add("c", detects=True, want_s=2.0)
    planner.set_live("c", True, 0.0)
    for t, stream_t in ((100.0, 50.0), (104.3, 54.0), (108.1, 58.0), (112.0, 0.04), (116.0, None)):
        planner.analysed("c", t, False, t + 0.5, stream_t)
    assert [round(x, 2) for x in planner.intervals()] == [4.0, 4.0, 3.9, 4.0]
    assert [round(x, 2) for x in planner.intervals(received=True)] == [4.3, 3.8, 3.9, 4.0]
