"""The shared real models on real photos and clips (skipped where ../shared/assets is absent)."""

import numpy as np
import pytest
from det_helpers import image, people

from detectors.sources import frames


def test_sessions_batch_for_real(coco_model):
    # the shared exports have a fixed batch of 1: the rewritten graph was verified at load
    assert coco_model.session.batching == "rewritten"


def test_finds_the_pedestrians_on_the_crossing(coco_model, assets):
    found = people(coco_model.detect([image(assets, "jetson_peds_0.jpg")])[0])
    assert len(found) >= 4  # four people walk over the zebra crossing in the foreground
    heights = [d.box[3] - d.box[1] for d in found[:4]]
    assert min(heights) > 400  # full-height boxes, in pixels of the 1920x1080 photo


@pytest.mark.parametrize(("name", "at_least"), [("jetson_peds-007.png", 6), ("jetson_peds-008.png", 5)])
def test_finds_the_crowd_in_cctv_frames(coco_model, assets, name, at_least):
    found = people(coco_model.detect([image(assets, name)])[0])
    assert len(found) >= at_least
    # spread over the scene, not one blob: distinct centres
    cx = sorted(round((d.box[0] + d.box[2]) / 200) for d in found)
    assert len(set(cx)) >= 4


def test_nothing_person_like_among_the_bottles(coco_model, assets):
    """A hand reaches in from the top-left corner in a few frames; no person stands in the scene:
    every person box there touches the frame border, and most frames have none."""
    sampled = list(frames(str(assets / "videos" / "intel_bottle-detection.mp4"), 2.0))
    results = coco_model.detect([f.image for f in sampled])
    h, w = sampled[0].image.shape[:2]
    with_person = 0
    for dets in results:
        ps = people(dets)
        with_person += bool(ps)
        for d in ps:
            x1, y1, x2, y2 = d.box
            assert x1 < 3 or y1 < 3 or x2 > w - 3 or y2 > h - 3, d
    assert with_person < len(results) / 2
    assert np.median([sum(d.label == "bottle" for d in r) for r in results]) >= 2


def test_counts_rise_and_fall_as_people_come_and_go(coco_model, assets):
    sampled = list(frames(str(assets / "videos" / "intel_one-by-one-person-detection.mp4"), 4.0))
    counts = [len(people(r)) for r in coco_model.detect([f.image for f in sampled])]
    assert len(counts) >= 30
    assert counts[:2] == [0, 0] and counts[-1] == 0  # empty room at start and end
    arrivals = sum(a == 0 and b > 0 for a, b in zip(counts, counts[1:], strict=False))
    assert arrivals >= 3, counts  # several separate visits
    assert sum(c > 0 for c in counts) >= len(counts) // 3


def test_batch_of_8_equals_8_single_runs(yolox, nanodet, assets):
    imgs = [image(assets, n) for n in ("jetson_peds_0.jpg", "jetson_peds_1.jpg", "jetson_peds-007.png",
                                        "jetson_peds-008.png", "jetson_humans_4.jpg")]
    imgs += [imgs[0][:, ::-1].copy(), imgs[2][:540], imgs[3][:, :960]]  # mirrored and cropped variants
    for det in (yolox, nanodet):
        batched = det.detect(imgs)
        singles = [det.detect([im])[0] for im in imgs]
        assert len(batched) == 8
        for b, s in zip(batched, singles, strict=True):
            assert [d.label for d in b] == [d.label for d in s]
            np.testing.assert_allclose([d.box for d in b], [d.box for d in s], atol=0.5)
            np.testing.assert_allclose([d.score for d in b], [d.score for d in s], atol=1e-3)
        assert sum(len(b) for b in batched) > 20


def test_light_person_model_is_person_only(assets):
    from detectors.detector import load_detector

    det = load_detector("light-person")
    assert det.labels == ["person"]
    assert len(det.detect([image(assets, "jetson_peds_0.jpg")])[0]) >= 4
