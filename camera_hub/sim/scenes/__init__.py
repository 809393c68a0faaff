"""Scene scripts (YAML in this folder) and their OpenCV renderer.

``SceneRenderer(scene_name, width, height, seed=0).frame(i) -> (bgr, [(label, (x1, y1, x2, y2))])``
gives frames and labelled boxes (``person``, ``goods``, ``stall``, ``vehicle``) for detector
training; :func:`scene_for_camera` maps a configured camera to the scene the simulator plays.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from camera_hub.sim.scenes.render import RENDERER_VERSION, SceneRenderer
from camera_hub.sim.scenes.script import ZONES, EpisodeTruth, SceneScript, builtin_scenes, load_script

if TYPE_CHECKING:
    from camera_hub.config import Camera

__all__ = [
    "RENDERER_VERSION", "ZONES", "EpisodeTruth", "SceneRenderer", "SceneScript", "builtin_scenes",
    "load_script", "scene_for_camera", "camera_offset_s", "scene_effects", "STREET_SCENES", "SQUARE_SCENES",
]

STREET_SCENES = ["street_vending", "street_quiet", "street_tamper", "street_moved", "street_night"]
SQUARE_SCENES = ["square_crowd", "square_quiet"]


def scene_for_camera(camera: Camera) -> str:
    """lookout → ``lookout``; a vending rule → a street scene; a crowding rule → a square scene;
    the variant picked by a stable hash of the camera id."""
    if camera.kind == "lookout":
        return "lookout"
    rules = {r.type for z in camera.zones for r in z.rules}
    if "vending" in rules:
        variants = STREET_SCENES
    elif "crowding" in rules:
        variants = SQUARE_SCENES
    else:
        variants = STREET_SCENES + SQUARE_SCENES
    return variants[zlib.crc32(camera.id.encode()) % len(variants)]


# a camera's first views must stay normal this long: its tamper reference is learned from its
# first 3 samples, and an idle camera is sampled every 15 s
COMMISSION_S = 45.0


def camera_offset_s(camera_id: str, loop_s: float = 180.0, effects: Sequence[tuple[float, float]] = ()) -> float:
    """Where in its loop a camera starts (spreads episodes over time across cameras). A camera is
    commissioned aimed right: it never starts inside a tamper effect (``effects``: start, end in
    the loop) nor within ``COMMISSION_S`` before one. A camera that starts knocked off aim learns
    that view as its reference, as a real one would: the alert then comes when it is put right."""
    h = zlib.crc32(camera_id.encode())
    ok = [t for t in range(int(loop_s)) if not any(s - COMMISSION_S <= t < e for s, e in effects)]
    return float(ok[h % len(ok)] if ok else h % int(loop_s))


@functools.lru_cache(maxsize=64)
def scene_effects(scene: str) -> tuple[tuple[float, float], ...]:
    """The (start, end) of each tamper effect in a built-in scene's loop."""
    return tuple((e.start, e.end) for e in load_script(scene).effects)
