import itertools

import numpy as np

from camera_hub.analytics.tracker import INFEASIBLE, Tracker, similarity
from camera_hub.events import Detection, Track


def det(x, y, w=30, h=80, label="person", score=0.9):
    return Detection(label, score, (x, y, x + w, y + h))


def test_ids_stable_for_people_walking_between_samples_seconds_apart():
    tr = Tracker()
    xs: dict[int, list[float]] = {}
    for k in range(10):  # two people walking past each other, 20 px per sample, crossing at k=7.5
        for s in tr.update([det(100 + 20 * k, 100), det(400 - 20 * k, 110)], t=2.0 * k):
            xs.setdefault(s.track_id, []).append(s.box[0])
    assert set(xs) == {1, 2}
    assert xs[1] == [100 + 20 * k for k in range(10)]  # still walking right after the crossing
    assert xs[2] == [400 - 20 * k for k in range(10)]


def test_close_neighbours_keep_their_ids_global_assignment():
    # A moved towards B's old spot: greedy best-IoU would give A B's id
    tr = Tracker()
    tr.update([det(100, 100, w=40), det(135, 100, w=40)], t=0)
    seen = tr.update([det(125, 100, w=40), det(160, 100, w=40)], t=2)
    by_x = {round(s.box[0]): s.track_id for s in seen}
    assert by_x == {125: 1, 160: 2}


def test_low_score_second_pass_keeps_track_and_low_scores_never_start_one():
    tr = Tracker()
    (a,) = tr.update([det(100, 100, score=0.9)], t=0)
    (b,) = tr.update([det(104, 100, score=0.2)], t=2)  # occluded: weak detection, same person
    assert b.track_id == a.track_id and b.hits == 2
    assert tr.update([det(400, 100, score=0.2)], t=4) == []  # a lone weak detection: no new track


def test_labels_never_mix_and_stale_tracks_expire():
    tr = Tracker()
    (p,) = tr.update([det(100, 100)], t=0)
    (g,) = tr.update([det(100, 100, label="goods")], t=2)
    assert g.track_id != p.track_id
    tr.update([], t=30)
    assert tr.tracks == []
    (again,) = tr.update([det(100, 100)], t=32)
    assert again.track_id not in (p.track_id, g.track_id)


def test_far_jump_is_a_new_track():
    tr = Tracker()
    (a,) = tr.update([det(100, 100)], t=0)
    (b,) = tr.update([det(500, 100)], t=2)
    assert b.track_id != a.track_id
    assert np.isclose(b.first_seen, 2)



def test_matching_is_the_global_optimum_on_rectangular_problems():
    """lap.lapjv on a padded (rectangular) cost: its pairs have the least total cost of every
    assignment (brute force; an infeasible pair, other label or too far, costs INFEASIBLE and is
    never kept), and every track and detection is either paired or left over."""
    rng = np.random.default_rng(3)
    tr = Tracker()
    for n_tracks, n_dets in ((3, 5), (5, 3), (4, 4), (1, 6), (6, 1)):
        for _ in range(20):
            tracks = [Track(i, str(rng.choice(["person", "goods"], p=[0.8, 0.2])),
                            det(*rng.uniform(0, 200, 2)).box, 0.9, 0.0, 0.0) for i in range(n_tracks)]
            dets = [det(*rng.uniform(0, 200, 2)) for _ in range(n_dets)]
            pairs, left, new = tr._match(tracks, dets, 1.0)
            cost = 1 - similarity(np.array([t.box for t in tracks], np.float32),
                                  np.array([d.box for d in dets], np.float32), tr.params.distance_scale)
            feasible = (cost <= tr.params.match_cost) & np.array([[t.label == "person" for _ in dets] for t in tracks])
            cost = np.where(feasible, cost, INFEASIBLE).astype(np.float64)
            k = min(n_tracks, n_dets)
            best = min(sum(cost[r, c] for r, c in zip(rows, range(n_dets), strict=False)) if n_tracks >= n_dets
                       else sum(cost[r, c] for r, c in zip(range(n_tracks), rows, strict=False))
                       for rows in itertools.permutations(range(max(n_tracks, n_dets)), k))
            got = sum(cost[r, c] for r, c in pairs) + INFEASIBLE * (k - len(pairs))
            assert abs(got - best) < 1e-6, (pairs, cost)
            assert all(feasible[r, c] for r, c in pairs)
            assert sorted(left + [r for r, _ in pairs]) == list(range(n_tracks))
            assert sorted(new + [c for _, c in pairs]) == list(range(n_dets))
