"""The chaos run's ground truth over a simulator restart (camera_hub.chaos): what the killed process
showed is cut at the kill, episodes closer than hysteresis + cooldown are one alert, and the
scoring leaves alone what the restarted simulator showed before anyone could see it."""

from __future__ import annotations

from camera_hub.chaos import cut_truth, doubled, join_truth, rejoin_s
from camera_hub.config import load_config
from camera_hub.e2e import DEMO_CONFIG, EARLY_S, SETTLE_S, latency_limit, score

CFG = load_config(DEMO_CONFIG)
UP = 1_800_000_000.0
K = UP + 60.0  # the simulator is killed


def ep(kind: str, start: float, end: float | None, zone: str = "square") -> dict:
    return {"type": kind, "zone_id": zone, "start": UP + start, "end": None if end is None else UP + end}


def alert(cam: str, kind: str, start: float, aid: str) -> dict:
    t = UP + start
    return {"id": aid, "camera_id": cam, "type": kind, "started_at": t, "updated_at": t,
            "history": [{"at": t + 5, "action": "created"}]}


def test_the_killed_simulators_episodes_are_cut_at_the_kill() -> None:
    truth = {"cam-0001": [ep("crowding", 10, 40), ep("crowding", 50, 90), ep("crowding", 70, 100)]}
    cut = cut_truth(truth, K)["cam-0001"]
    assert cut == [ep("crowding", 10, 40), {**ep("crowding", 50, 60), "detectable_until": K}]


def test_an_episode_close_after_the_one_before_may_or_may_not_be_a_second_alert() -> None:
    gap = rejoin_s(CFG, "crowding")
    assert gap == CFG.settings.alerts.cooldown_s + 20.0  # the demo's crowding end_after_s
    old = {"cam-0001": [{**ep("crowding", 10, 60), "detectable_until": K}]}
    new = {"cam-0001": [ep("crowding", 65, 80), ep("crowding", 80 + gap + 1, 200), ep("tamper", 66, 70, "view")]}
    joined = join_truth([old, new], CFG)["cam-0001"]
    assert joined == [{**ep("crowding", 10, 60), "detectable_until": K}, {**ep("crowding", 65, 80), "optional": True},
                      ep("tamper", 66, 70, "view"), ep("crowding", 80 + gap + 1, 200)]
    # scored either way: one alert over both, or one each
    for alerts in ([alert("cam-0001", "crowding", 12, "a1")],
                   [alert("cam-0001", "crowding", 12, "a1"), alert("cam-0001", "crowding", 66, "a2")]):
        s = score(CFG, alerts, {"cam-0001": joined[:2]}, UP, UP + 300)["crowding"]
        assert (s["tp"], s["fn"], s["fp"]) == (1, 0, 0), s
    assert doubled([alert("cam-0001", "crowding", 12, "a1"), alert("cam-0001", "crowding", 66, "a2")],
                   {"cam-0001": joined[:2]}, UP + 300) == []


def test_blind_windows_and_cut_episodes_are_not_scored() -> None:
    limit = latency_limit(CFG, "crowding")
    assert 30 + limit + 5 <= 60 < 55 + limit + 5  # the first cut episode was detectable in time, the second not
    truth = {"cam-0001": [
        {**ep("crowding", 30, 60), "detectable_until": K},  # scored, missed
        {**ep("crowding", 55, 60), "detectable_until": K},  # cut before its limit passed: not scored
        ep("crowding", 62, 90),  # starts inside the blind window: not scored (matched by a1)
        ep("crowding", 150, 200),  # scored, matched by a2
    ]}
    alerts = [alert("cam-0001", "crowding", 68, "a1"), alert("cam-0001", "crowding", 150, "a2"),
              alert("cam-0001", "crowding", 70, "a3")]  # a3: unmatched but blind, not a false positive
    s = score(CFG, alerts, truth, UP, UP + 300, blind=[(K, K + 10 + SETTLE_S)])["crowding"]
    assert (s["tp"], s["fn"], s["fp"]) == (1, 1, 0), s
    assert s["misses"] == ["cam-0001 crowding at +30s"]
    # an alert dated by a crowd gathering on the old scene, up to EARLY_S before the restart
    gathering = {"cam-0002": [ep("crowding", 200, 240)]}
    early = [alert("cam-0002", "crowding", 60 - EARLY_S + 1, "b1"),
             alert("cam-0002", "crowding", 60 - EARLY_S - 1, "b2")]
    s = score(CFG, early, gathering, UP, UP + 300, blind=[(K, K + 10 + SETTLE_S)])["crowding"]
    assert s["extras"] == [f"cam-0002 crowding at +{60 - EARLY_S - 1:.0f}s"]


def test_two_alerts_on_one_episode_are_doubled() -> None:
    truth = {"cam-0001": [ep("crowding", 30, 90)], "cam-0002": [ep("vending", 30, 90, "frontage")]}
    alerts = [alert("cam-0001", "crowding", 31, "a1"), alert("cam-0001", "crowding", 70, "a2"),
              alert("cam-0002", "vending", 35, "b1")]
    (only,) = doubled(alerts, truth, UP + 300)
    assert only.startswith("cam-0001 crowding square") and only.endswith("a1, a2")


def test_an_episode_needs_its_latency_limit_in_one_watched_stretch() -> None:
    limit = latency_limit(CFG, "vending")
    truth = {"cam-0002": [ep("vending", 20, 200, "frontage")], "cam-0004": [ep("vending", 20, 200, "frontage")]}
    # cam-0002's worker was killed at +30 and its analysis started afresh at +45: still watchable after
    # +45; cam-0004's stretches (+20–30, +45–60) are each shorter than the limit (the run ends at +60)
    gaps = {"cam-0002": [(UP + 30, UP + 45)], "cam-0004": [(UP + 30, UP + 45)]}
    assert 45 + limit + 5 <= 100 and 60 - 45 < limit + 5
    s100 = score(CFG, [], truth | {"cam-0004": []}, UP, UP + 100, unwatched=gaps)["vending"]
    assert s100["fn"] == 1 and s100["misses"] == ["cam-0002 vending at +20s"]
    s60 = score(CFG, [], truth, UP, UP + 60, unwatched=gaps)["vending"]
    assert s60["fn"] == 0  # neither camera watched long enough in one stretch: nothing scored
    assert score(CFG, [], truth, UP, UP + 60)["vending"]["fn"] == 2  # unbroken, both were due
