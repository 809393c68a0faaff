"""fit_into against a plain reference (a letterboxed canvas, then float, colour order, scale,
mean/std), and buffer reuse: one input buffer serves frames of every size in turn."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from detectors.formats import FORMATS
from detectors.preprocess import downscale, fit_into


def reference(frame, w, h, *, keep_aspect, fill, centre, rgb, scale=1.0, mean=None, std=None):
    fh, fw = frame.shape[:2]
    if keep_aspect:
        r = min(w / fw, h / fh)
        nw, nh = max(1, round(fw * r)), max(1, round(fh * r))
        px, py = ((w - nw) // 2, (h - nh) // 2) if centre else (0, 0)
    else:
        nw, nh, px, py = w, h, 0, 0
    canvas = np.full((h, w, 3), fill, np.uint8)
    canvas[py:py + nh, px:px + nw] = downscale(frame, (nw, nh))
    x = (canvas[:, :, ::-1] if rgb else canvas).astype(np.float32) * scale
    if mean is not None:
        x = (x - np.float32(mean)) / np.float32(std)
    return x.transpose(2, 0, 1)


CASES = [
    dict(keep_aspect=True, fill=114, centre=False, rgb=False),
    dict(keep_aspect=True, fill=114, centre=True, rgb=True, scale=1 / 255),
    dict(keep_aspect=True, fill=0, centre=False, rgb=False, mean=(103.5, 116.3, 123.7), std=(57.4, 57.1, 58.4)),
    dict(keep_aspect=False, fill=0, centre=False, rgb=False),
]
SHAPES = [(360, 640), (1080, 1920), (97, 301), (400, 120), (224, 384), (10, 10)]


@pytest.mark.parametrize("how", CASES)
def test_fit_into_matches_the_reference_for_any_frame_in_a_reused_buffer(how):
    rng = np.random.default_rng(1)
    out = np.full((3, 224, 384), np.nan, np.float32)
    for fh, fw in SHAPES + SHAPES[::-1]:  # big then small then big: nothing of the last frame may remain
        frame = rng.integers(0, 256, (fh, fw, 3), np.uint8)
        tf = fit_into(frame, out, **{k: v for k, v in how.items() if k != "scale" or v != 1.0})
        np.testing.assert_allclose(out, reference(frame, 384, 224, **how), rtol=1e-6, atol=1e-5)
        corner = np.array([[0, 0, fw, fh]], np.float32)
        canvas = np.array([[tf.pad_x, tf.pad_y, tf.pad_x + fw * tf.sx, tf.pad_y + fh * tf.sy]], np.float32)
        np.testing.assert_allclose(tf.to_frame(canvas), corner, atol=1e-3)


def test_every_format_gives_the_same_input_allocated_or_in_place():
    frame = np.random.default_rng(2).integers(0, 256, (360, 640, 3), np.uint8)
    for fmt in FORMATS.values():
        fresh, tf1 = fmt.preprocess(frame, (320, 192))
        buf = np.zeros((2, 3, 192, 320), np.float32)
        same, tf2 = fmt.preprocess(frame, (320, 192), buf[1])
        assert same.base is buf and tf1 == tf2
        np.testing.assert_array_equal(buf[1], fresh)
        assert not buf[0].any()


def test_threads_do_not_share_the_resize_buffer():
    """Two threads preprocessing different frames at once each get their own frame's input."""
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (360 + 40 * i, 640, 3), np.uint8) for i in range(2)]
    want = [reference(f, 384, 224, keep_aspect=True, fill=114, centre=False, rgb=False) for f in frames]
    bad: list[int] = []

    def work(i: int) -> None:
        out = np.empty((3, 224, 384), np.float32)
        for _ in range(200):
            fit_into(frames[i], out)
            if not np.array_equal(out, want[i]):
                bad.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_downscale_matches_area_averaging() -> None:
    """Halvings then bilinear: the size asked for, pixels within two grey levels on average of
    OpenCV's INTER_AREA (the slow path it replaces) on a busy picture; powers of two are area
    averages to the rounding."""
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8), (0, 0), 2.0)
    for size in ((384, 216), (160, 90), (320, 180), (158, 29), (100, 100), (640, 360)):
        out = downscale(img, size)
        ref = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        assert out.shape == ref.shape, size
        diff = np.abs(out.astype(int) - ref.astype(int))
        assert diff.mean() < 2.0, (size, diff.mean())
        if size in ((160, 90), (320, 180), (640, 360)):
            assert diff.max() <= 1, (size, diff.max())
    dst = np.empty((216, 384, 3), np.uint8)
    assert downscale(img, (384, 216), dst) is dst
