import numpy as np

from camera_hub.analytics.tracker import Tracker
from camera_hub.events import Detection


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
