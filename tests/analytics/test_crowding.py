import pytest
from rule_helpers import NOON, SQUARE, run, track, zone

from camera_hub.analytics.rules.crowding import CrowdingState, threshold
from camera_hub.config import CrowdingRule

RULE = CrowdingRule(type="crowding", min_people=8, min_duration_s=30, end_after_s=20, end_ratio=0.75)


def people(n: int, label: str = "person", inside: bool = True):
    y = 250 if inside else 60  # the square spans y 108..342 px
    return [track(i, label, 80 + i * 25, y) for i in range(n)]


def state(rule=RULE, **zkw):
    return CrowdingState("cam1", zone(SQUARE, "square", **zkw), rule)


def test_crowd_held_long_enough_starts_once_and_ends_after_dispersal():
    script = lambda i, t: people(10) if i < 40 else (people(2) if i < 60 else None)  # noqa: E731
    eps = run(state(), script)
    kinds = [k for k, _, _ in eps]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("start") == 1 and kinds.count("end") == 1
    _, t_start, start = eps[0]
    assert t_start == 30 and start.started_at == NOON and start.count == 10  # onset, not detection time
    assert len(start.boxes) == 10 and all(0 <= b[0] <= 1 and b[4] == "person" for b in start.boxes)
    _, t_end, end = eps[-1]
    assert t_end == 78 + 20  # last seen crowded at 78 s, ended end_after_s later
    assert end.key == start.key


def test_duration_just_below_threshold_raises_nothing():
    script = lambda i, t: people(10) if i < 15 else (people(0) if i < 40 else None)  # noqa: E731  (28 s)
    assert run(state(), script) == []


def test_duration_just_above_threshold_raises():
    script = lambda i, t: people(10) if i <= 15 else (people(0) if i < 40 else None)  # noqa: E731  (30 s)
    assert [k for k, _, _ in run(state(), script)] == ["start", "end"]


def test_oscillating_around_threshold_does_not_flicker():
    # 8, 7, 8, 7 ... for 4 minutes: one alert, held open (7 >= 0.75 * 8), never re-opened
    script = lambda i, t: people(8 if i % 2 == 0 else 7) if i < 120 else None  # noqa: E731
    kinds = [k for k, _, _ in run(state(), script)]
    assert kinds.count("start") == 1 and "end" not in kinds


def test_short_dips_are_forgiven_long_ones_end():
    def script(i, t):
        if i >= 100:
            return None
        if 30 <= i < 35:  # 10 s with only 3 people: shorter than end_after_s
            return people(3)
        if 60 <= i:
            return people(3)
        return people(10)

    eps = run(state(), script)
    assert [k for k, _, _ in eps][:1] == ["start"] and [k for k, _, _ in eps].count("end") == 1
    assert [t for k, t, _ in eps if k == "end"] == [118 + 20]


def test_people_outside_zone_and_other_classes_do_not_count():
    script = lambda i, t: people(10, inside=False) + people(10, "car") if i < 40 else None  # noqa: E731
    assert run(state(), script) == []


def test_density_threshold_when_zone_has_area():
    rule = CrowdingRule(type="crowding", min_people=20, max_density_per_m2=0.5, min_duration_s=10)
    assert threshold(rule, 10.0) == 5 and threshold(rule, None) == 20
    script = lambda i, t: people(6) if i < 20 else None  # noqa: E731
    assert [k for k, _, _ in run(state(rule, area_m2=10.0), script)] == ["start"]
    assert run(state(rule), script) == []


def test_outside_zone_hours_nothing():
    script = lambda i, t: people(12) if i < 40 else None  # noqa: E731
    assert run(state(hours="20:00-23:00"), script) == []  # the script runs at noon
    assert len(run(state(hours="11:00-13:00"), script)) == 1


@pytest.mark.parametrize("n", [7, 8])
def test_exact_count_edge(n):
    script = lambda i, t: people(n) if i < 30 else None  # noqa: E731
    assert len(run(state(), script)) == (1 if n >= 8 else 0)
