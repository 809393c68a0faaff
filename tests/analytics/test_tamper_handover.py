"""A camera taken over while it is tampered with (issue #12): the new worker judges it against the
reference the old one learned and saved in Redis. Learning its own from the tampered view, it was
blind to that tamper and alerted when the view came right (chaos run at 250 cameras: 10 tamper
episodes missed, 2 false ones, on cameras that moved while knocked off aim)."""

from __future__ import annotations

import numpy as np
from test_tamper_offline import RULE, feed, scene

from camera_hub.analytics.references import load_references, save_references
from camera_hub.analytics.rules.tamper import TamperState


def learned() -> TamperState:
    old = TamperState("cam0", RULE)
    assert feed(old, [scene()] * 5) == []
    return old


async def test_a_worker_taking_a_moved_camera_over_sees_it_with_the_saved_reference(redis_client, redis_prefix):
    await save_references(redis_client, redis_prefix, "cam0", {"view": learned().reference()})
    refs = await load_references(redis_client, redis_prefix, "cam0")
    new = TamperState("cam0", RULE)
    new.adopt_reference(*refs["view"])
    moved, right = [scene(shift=70)] * 8, [scene()] * 10
    assert [(kind, detail) for kind, _, detail in feed(new, moved + right)] == [("start", "moved"), ("end", "moved")]


def test_without_it_the_tampered_view_becomes_the_reference() -> None:
    """What the rule did before: blind while moved, then a false alert when the camera is put right."""
    fresh = TamperState("cam0", RULE)
    eps = feed(fresh, [scene(shift=70)] * 8 + [scene()] * 10)
    assert eps and eps[0][0] == "start" and eps[0][1] >= 8 * 2.0  # only after the view came right


async def test_a_reference_survives_the_png_round_trip(redis_client, redis_prefix) -> None:
    grey, sharp = learned().reference()
    await save_references(redis_client, redis_prefix, "cam0", {"view": (grey, sharp)})
    (zone, (back, back_sharp)), = (await load_references(redis_client, redis_prefix, "cam0")).items()
    assert zone == "view" and back.shape == grey.shape and back_sharp == sharp
    assert float(np.abs(back - grey).max()) <= 0.5  # rounded to whole grey levels
    assert await load_references(redis_client, redis_prefix, "other") == {}
