"""``camera-hub detect`` as an analyst runs it: a real process, JSON lines on stdout."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
pytest_plugins = ["tests.sim_fixtures"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "camera_hub.cli", "detect", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=os.environ | {"PYTHONPATH": str(REPO)})


def test_detect_images_and_video(assets):
    img = assets / "images" / "jetson_peds_0.jpg"
    vid = assets / "videos" / "intel_people-detection.gif"
    p = run(str(img), str(vid), "--model", "yolox-nano", "--every", "0.5")
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert lines[0]["source"] == str(img) and lines[0]["frame"] == 0 and lines[0]["t"] == 0.0
    persons = [d for d in lines[0]["detections"] if d["label"] == "person"]
    assert len(persons) >= 4
    for d in persons:
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 < x2 <= 1920 and 0 <= y1 < y2 <= 1080 and 0 < d["score"] <= 1
    video = [x for x in lines[1:] if x["source"] == str(vid)]
    assert [x["t"] for x in video][:3] == [0.0, 0.5, 1.0]  # one sampled frame every 0.5 s of the clip
    assert len({x["frame"] for x in video}) == len(video) >= 4
    assert any(d["label"] == "person" for x in video for d in x["detections"])


def test_detect_with_onnx_path_and_forced_format(assets):
    model = assets / "models" / "nanodet_m_320.onnx"
    p = run(str(assets / "images" / "jetson_peds_1.jpg"), "--model", str(model), "--format", "nanodet")
    assert p.returncode == 0, p.stderr
    (line,) = [json.loads(x) for x in p.stdout.splitlines()]
    assert any(d["label"] == "person" for d in line["detections"])


def test_wrong_format_and_unknown_model_are_clear_errors(assets):
    img = str(assets / "images" / "jetson_peds_1.jpg")
    p = run(img, "--model", str(assets / "models" / "yolox_nano_416x416.onnx"), "--format", "nanodet")
    assert p.returncode == 2 and "are not nanodet outputs" in p.stderr
    p = run(img, "--model", "nope")
    assert p.returncode == 2 and "no model manifest named 'nope'" in p.stderr


def test_stream_password_never_printed(assets):
    url = "rtsp://admin:s3cret-pw@127.0.0.1:9/cam1/main"  # port 9: nothing listens, refused at once
    p = run(url, str(assets / "images" / "jetson_peds_1.jpg"), "--model", "light-person")
    assert p.returncode == 1
    assert "s3cret-pw" not in p.stdout + p.stderr
    assert "rtsp://admin:***@127.0.0.1:9/cam1/main" in p.stderr
    assert len(p.stdout.splitlines()) == 1  # the image after the failed stream is still analysed


def test_missing_file_is_reported(tmp_path):
    p = run(str(tmp_path / "nope.jpg"), "--model", "light-person")
    assert p.returncode in (1, 2)
    assert "no such file" in p.stderr or "not found" in p.stderr


async def test_detect_reads_a_real_rtsp_stream_and_masks_its_password(sim_server_factory, assets):
    import asyncio

    from camera_hub.sim.rtsp_server import SimCameraSpec

    server = await sim_server_factory([SimCameraSpec("cam-1", "smoke")], width=320, height=180,
                                      credentials=("viewer", "pa55-word"))
    url = server.url("cam-1")
    assert "pa55-word" in url
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "camera_hub.cli", "detect", url, "--model", "light-person", "--every", "0.5",
        "--max-frames", "3", cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(x) for x in out.decode().splitlines()]
    assert len(lines) == 3
    assert all(x["source"] == url.replace("pa55-word", "***") for x in lines)
    assert "pa55-word" not in out.decode() + err.decode()
    import time

    assert all(abs(x["t"] - time.time()) < 60 for x in lines)  # a stream's "t" is the wall clock
    frames = [x["frame"] for x in lines]
    assert all(b - a >= 4 for a, b in zip(frames, frames[1:], strict=False))  # ~0.5 s apart at 10 fps


def test_detect_tile_flag_finds_small_people(assets, tmp_path):
    import cv2
    import numpy as np

    small = cv2.resize(cv2.imread(str(assets / "images" / "jetson_peds-007.png")), (384, 216),
                       interpolation=cv2.INTER_AREA)
    wide = tmp_path / "lookout.png"
    cv2.imwrite(str(wide), np.tile(small, (5, 5, 1)))
    counts = []
    for extra in ([], ["--tile"]):
        p = run(str(wide), "--model", "yolox-nano", *extra)
        assert p.returncode == 0, p.stderr
        (line,) = [json.loads(x) for x in p.stdout.splitlines()]
        counts.append(sum(d["label"] == "person" for d in line["detections"]))
    assert counts[0] <= 2 and counts[1] >= 100
