"""Encode a scene loop to H.264 once per (script, size, rate) and keep it on disk.

The cache key hashes the script's content, the renderer version and the encoder settings, so
editing a scene script or the drawing code invalidates exactly what it changes. Files are
written under a temporary name and renamed, so concurrent processes never see half a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from camera_hub.sim.scenes import RENDERER_VERSION, EpisodeTruth, SceneRenderer, SceneScript, load_script
from camera_hub.sim.stamp import draw as draw_stamp

log = logging.getLogger(__name__)

# x264: one slice per frame, fixed GOP (keyframes exactly every `gop` frames so that a stream can
# switch resolution at any keyframe), no B-frames, SPS/PPS repeated before every IDR.
X264_PARAMS = "scenecut=0:sliced-threads=0:slices=1:bframes=0:repeat-headers=1:aud=0"
ENCODER_VERSION = 1

Progress = Callable[[str, int, int], None]  # (label, frames done, frames total)

NAL_SPS, NAL_PPS, NAL_IDR, NAL_SEI, NAL_AUD = 7, 8, 5, 6, 9


def default_cache_dir() -> Path:
    base = os.environ.get("CAMERA_HUB_SIM_CACHE")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "camera-hub" / "sim"


@dataclass(frozen=True)
class EncodedScene:
    """One loop of a scene as H.264 access units: per frame, its NAL units (no start codes)."""

    scene: str
    width: int
    height: int
    fps: int
    gop: int
    loop_s: float
    frames: list[list[bytes]]
    keyframes: list[bool]
    sps: bytes
    pps: bytes
    episodes: list[EpisodeTruth]
    path: Path  # the .h264 file; ground truth and per-frame boxes in the .json beside it

    @property
    def profile_level_id(self) -> str:
        return self.sps[1:4].hex()


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream, start codes removed."""
    out: list[bytes] = []
    i, n = 0, len(data)
    starts: list[int] = []
    while True:
        j = data.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append(j + 3)
        i = j + 3
    for k, s in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else n
        nal = data[s:end]
        if k + 1 < len(starts) and nal.endswith(b"\x00"):  # 4-byte start code of the next unit
            nal = nal[:-1]
        if nal:
            out.append(nal)
    return out


def cache_key(script: SceneScript, width: int, height: int, fps: int, gop: int) -> str:
    parts = f"{script.digest()}|r{RENDERER_VERSION}|e{ENCODER_VERSION}|{X264_PARAMS}|{width}x{height}|{fps}|{gop}"
    return hashlib.sha256(parts.encode()).hexdigest()[:16]


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def encode_scene(scene: str | SceneScript, width: int, height: int, *, fps: int = 10, gop: int = 20,
                 cache_dir: Path | None = None, progress: Progress | None = None,
                 stamp: bool = False) -> EncodedScene:
    """The encoded loop, from the cache when there, else rendered and encoded now (slow: seconds
    to a minute per scene; run it off the event loop). ``stamp``: each frame carries its index in
    the loop (:mod:`camera_hub.sim.stamp`, for measuring delay; cached apart)."""
    script = scene if isinstance(scene, SceneScript) else load_script(scene)
    if width % 2 or height % 2:
        raise ValueError(f"H.264 needs an even size, got {width}x{height}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    stem = f"{script.name}-{width}x{height}-{fps}fps-g{gop}{'-stamped' if stamp else ''}-" \
           f"{cache_key(script, width, height, fps, gop)}"
    video, meta = cache / f"{stem}.h264", cache / f"{stem}.json"
    with _locks_guard:
        lock = _locks.setdefault(stem, threading.Lock())
    with lock:
        if not (video.is_file() and meta.is_file()):
            _encode_to(script, width, height, fps, gop, video, meta, progress, stamp)
        return _load(script, video, meta)


def _encode_to(script: SceneScript, width: int, height: int, fps: int, gop: int, video: Path, meta: Path,
               progress: Progress | None, stamp: bool = False) -> None:
    import av

    renderer = SceneRenderer(script, width, height, fps=fps)
    total = renderer.frame_count
    label = f"{script.name} {width}x{height}"
    log.info("encoding scene %s: %d frames (cached afterwards)", label, total)
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, fps), Fraction(fps)
    ctx.gop_size = gop
    ctx.options = {
        "preset": "ultrafast", "tune": "zerolatency", "profile": "baseline", "crf": "26", "threads": "1",
        "x264-params": f"keyint={gop}:min-keyint={gop}:{X264_PARAMS}",
    }
    index: list[list[int]] = []
    boxes: list[list[list[object]]] = []
    offset = 0
    tmp_video, tmp_meta = video.with_suffix(f".h264.{os.getpid()}.tmp"), meta.with_suffix(f".json.{os.getpid()}.tmp")
    step = max(1, total // 10)
    try:
        with tmp_video.open("wb") as out:

            def write(packets: list[av.Packet]) -> None:
                nonlocal offset
                for p in packets:
                    data = bytes(p)
                    out.write(data)
                    index.append([offset, len(data), int(p.is_keyframe)])
                    offset += len(data)

            for i in range(total):
                img, objs = renderer.frame(i)
                if stamp:
                    img = img.copy()
                    draw_stamp(img, i)
                frame = av.VideoFrame.from_ndarray(img, format="bgr24")
                frame.pts = i
                write(ctx.encode(frame))
                boxes.append([[label_, *box] for label_, box in objs])
                if progress is not None:
                    progress(label, i + 1, total)
                elif (i + 1) % step == 0:
                    log.info("encoding %s: %d%%", label, round(100 * (i + 1) / total))
            write(ctx.encode(None))
        if len(index) != total:
            raise RuntimeError(f"encoder gave {len(index)} packets for {total} frames")
        doc = {
            "scene": script.name, "width": width, "height": height, "fps": fps, "gop": gop,
            "loop_s": script.loop_s, "frames": index,
            "episodes": [e.to_json() for e in renderer.episodes()],
            "boxes": boxes,
        }
        tmp_meta.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp_video, video)
        os.replace(tmp_meta, meta)
    finally:
        tmp_video.unlink(missing_ok=True)
        tmp_meta.unlink(missing_ok=True)


def _load(script: SceneScript, video: Path, meta: Path) -> EncodedScene:
    doc = json.loads(meta.read_text(encoding="utf-8"))
    data = video.read_bytes()
    frames: list[list[bytes]] = []
    keys: list[bool] = []
    sps = pps = b""
    for off, length, _key in doc["frames"]:
        nals = [n for n in split_annexb(data[off:off + length]) if n[0] & 0x1F not in (NAL_SEI, NAL_AUD)]
        types = [n[0] & 0x1F for n in nals]
        if NAL_SPS in types:
            sps = sps or nals[types.index(NAL_SPS)]
            pps = pps or nals[types.index(NAL_PPS)]
        frames.append(nals)
        keys.append(NAL_IDR in types)
    if not sps or not keys[0]:
        raise RuntimeError(f"{video.name}: no SPS/PPS or no keyframe first; delete it to re-encode")
    episodes = [
        EpisodeTruth(e["type"], e["zone_id"], e["start"], e["end"], e["reason"],
                     [(b["label"], tuple(b["box"])) for b in e["boxes"]])
        for e in doc["episodes"]
    ]
    return EncodedScene(script.name, doc["width"], doc["height"], doc["fps"], doc["gop"], doc["loop_s"],
                        frames, keys, sps, pps, episodes, video)


def frame_boxes(encoded: EncodedScene) -> list[list[tuple[str, tuple[int, int, int, int]]]]:
    """Per-frame object boxes (pixels) stored beside an encoded scene, for detector training."""
    doc = json.loads(encoded.path.with_suffix(".json").read_text(encoding="utf-8"))
    return [[(b[0], (b[1], b[2], b[3], b[4])) for b in frame] for frame in doc["boxes"]]
