"""Tiled inference finds people a few dozen pixels high in a lookout-size frame."""

import cv2
import numpy as np
from det_helpers import image, people

from detectors.tiling import tile_grid


def test_tile_grid_covers_frame_with_overlap():
    tiles = tile_grid(1920, 1080, (416, 416), 0.25)
    assert len(tiles) == 6 * 4  # 416 px tiles stepping at most 312 px
    assert all(x2 - x1 == 416 and y2 - y1 == 416 for x1, y1, x2, y2 in tiles)
    assert max(t[2] for t in tiles) == 1920 and max(t[3] for t in tiles) == 1080
    xs = sorted({t[0] for t in tiles})
    assert all(416 - (b - a) >= 0.25 * 416 for a, b in zip(xs, xs[1:], strict=False))
    assert tile_grid(300, 200, (416, 416), 0.25) == [(0, 0, 300, 200)]


def _lookout_frame(assets) -> np.ndarray:
    """The CCTV atrium shrunk 5x (people 20-45 px high) and laid out 5 x 5 into a 1920x1080 frame."""
    small = cv2.resize(image(assets, "jetson_peds-007.png"), (384, 216), interpolation=cv2.INTER_AREA)
    return np.tile(small, (5, 5, 1))


def test_tiling_finds_small_people_a_single_pass_misses(yolox, assets):
    from detectors.tiling import detect_tiled

    frame = _lookout_frame(assets)
    single = people(yolox.detect([frame])[0])
    tiled = people(detect_tiled(yolox, [frame])[0])
    assert len(single) <= 2
    assert len(tiled) >= 100  # about ten people in each of the 25 copies
    heights = [d.box[3] - d.box[1] for d in tiled]
    assert np.median(heights) < 60
    # found across the whole frame, not in one tile: most of the 25 copies hold at least one
    copies = {(int((d.box[0] + d.box[2]) / 2 // 384), int((d.box[1] + d.box[3]) / 2 // 216)) for d in tiled}
    assert len(copies) >= 20


def test_tiling_keeps_large_objects_whole(yolox, assets):
    from detectors.tiling import detect_tiled

    frame = image(assets, "jetson_peds_0.jpg")
    tiled = people(detect_tiled(yolox, [frame])[0])
    tall = [d for d in tiled if d.box[3] - d.box[1] > 600]
    assert len(tall) >= 4  # the full-frame pass keeps the walkers whole; cut halves are dropped
    assert len(tiled) <= len(people(yolox.detect([frame])[0])) + 6


def test_tiles_only_where_rules_look(yolox, assets):
    from detectors.tiling import detect_tiled

    frame = _lookout_frame(assets)
    left = people(detect_tiled(yolox, [frame], regions=[(0, 0, 960, 1080)])[0])
    assert len(left) >= 40
    assert all((d.box[0] + d.box[2]) / 2 < 960 + 50 for d in left)
