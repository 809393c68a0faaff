"""End to end on the simulator's scenes: rendered frames → a real detector → analyzer → episodes,
against the scene script's ground truth; one 180 s loop per scene, a sample every 2 s, with the
demo city's rule parameters. With YOLOX-nano (which knows nothing of the simulator) vending rests
on the class-agnostic path; the demo model (``sim-detector``, when built) knows goods and stalls."""

from __future__ import annotations

import functools

import pytest
from rule_helpers import city

from camera_hub.analytics.analyzer import Analyzer
from camera_hub.events import Sample
from detectors.detector import load_detector

scenes = pytest.importorskip("camera_hub.sim.scenes")

INTERVAL = 2.0
T0 = 1_780_000_000.0  # the loop starts at this wall-clock time
VIEW = {"id": "view", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "rules": [{"type": "tamper"}]}
STREET = [{"id": "frontage", "polygon": [[0.05, 0.52], [0.95, 0.52], [0.95, 0.8], [0.05, 0.8]],
           "rules": [{"type": "vending", "min_dwell_s": 30}]}, VIEW]
SQUARE = [{"id": "square", "polygon": [[0.1, 0.3], [0.9, 0.3], [0.9, 0.95], [0.1, 0.95]],
           "rules": [{"type": "crowding", "min_duration_s": 20}]}, VIEW]
DWELL = {"vending": 30.0, "crowding": 20.0, "tamper": 10.0}


@functools.cache
def _detector(model: str):
    return load_detector(model)


@pytest.fixture(params=["yolox-nano", "sim-detector"])
def model(request, assets) -> str:
    if request.param == "sim-detector":
        from detectors.manifest import ModelError, find_manifest, resolve_file

        try:
            m = find_manifest("sim-detector")
            if m is None:
                raise ModelError("no manifest")
            resolve_file(m)
        except ModelError as exc:
            pytest.skip(f"demo model not built: {exc}")
    return request.param


async def play(scene: str, model: str, start_s: float = 0.0, loops: float = 1.0) -> tuple[list, list]:
    """Episodes of a camera that starts ``start_s`` into the loop and runs ``loops`` loops."""
    zones = SQUARE if scene.startswith("square") else STREET
    an = Analyzer(city([{"id": "cam", "zones": zones}]), _detector(model))
    r = scenes.SceneRenderer(scene, 640, 360, seed=0)
    step = int(INTERVAL * r.fps)
    eps = []
    first = round(start_s * r.fps)
    for i in range(first, first + round(loops * r.frame_count), step):
        frame, _ = r.frame(i)
        eps += await an.handle([Sample("cam", T0 + i / r.fps, None, frame, True)])
    return eps, r.episodes()


def starts(eps, kind: str) -> list:
    return [e for e in eps if e.type == kind and e.kind == "start"]


@pytest.mark.slow
@pytest.mark.parametrize("scene", ["street_vending", "street_quiet", "square_crowd", "square_quiet",
                                   "street_tamper", "street_moved"])
async def test_scene_episodes_match_the_script(scene, model):
    eps, truth = await play(scene, model)
    expected = {(g.type, g.zone_id) for g in truth}
    raised = {(e.type, e.zone_id) for e in eps if e.kind == "start"}
    assert raised == expected, [(e.kind, e.type, e.t - T0, e.detail) for e in eps]
    for g in truth:
        (ep,) = starts(eps, g.type)  # exactly one episode per scripted one
        due = g.start + DWELL[g.type]
        if g.type == "crowding":
            # YOLOX counts 8 people (the rule's threshold) while the crowd is still forming,
            # before the script's ">= 10 people" mark: allow the onset that much earlier
            assert g.start - 15 <= ep.started_at - T0 <= g.start + 2 * INTERVAL
        else:
            assert abs((ep.t - T0) - due) <= 2 * INTERVAL, (ep.t - T0, due)
        if g.reason:
            assert ep.detail == g.reason
        ends = [e for e in eps if e.type == g.type and e.kind == "end"]
        if g.end < 180 - 40:  # the episode ends within the loop: the alert closes, once
            assert len(ends) == 1 and ends[0].t - T0 >= g.end


@pytest.mark.slow
async def test_camera_started_while_goods_are_out_raises_each_episode_on_time(model):
    # the camera comes up 50 s into the loop with the goods (out 20-120 s) already there, so the
    # learned empty scene holds them. The next loop's episode (200-300 s) is raised one dwell after
    # it starts, dated when the goods came out (not by the ghost the cleared goods left in the
    # background) and held open until they go; with a model that knows goods, the episode under
    # way is raised one dwell after the camera first saw them. Passers-by in front of the stall
    # used to restart its dwell (late alerts; open ones ended early, while the goods stayed) and
    # the ghost dated the next episode before the goods were there.
    eps, _ = await play("street_vending", model, start_s=50, loops=1.7)
    vending = [(e.kind, round(e.started_at - T0), round(e.t - T0)) for e in eps if e.type == "vending"]
    late = [v for v in vending if v[2] >= 150]
    assert [k for k, _, _ in late if k != "update"] == ["start", "end"], vending
    _, onset, raised = late[0]
    assert 200 - 2 * INTERVAL <= onset <= 200 + 2 * INTERVAL, vending
    assert raised <= 200 + DWELL["vending"] + 2 * INTERVAL and late[-1][2] >= 300, vending
    if model == "sim-detector":  # class-agnostic only, goods in the learned empty scene are unseen
        early = [(k, t) for k, _, t in vending if t < 150 and k != "update"]
        assert [k for k, _ in early] == ["start", "end"], vending
        assert early[0][1] <= 50 + DWELL["vending"] + 2 * INTERVAL and early[1][1] >= 120, vending
