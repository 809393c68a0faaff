"""RTSP servers we did not write, for the interop tests (issue #13): launch code and footage.

- :func:`serve_gst`: GStreamer's gst-rtsp-server (``gst_rtsp_server.py`` under Debian's
  ``/usr/bin/python3`` with python3-gi), several mounts in one process;
- :func:`serve_vlc`: VLC's ``#rtp{sdp=rtsp://…}`` output (Debian ``vlc-bin``), one file per
  process, run as ``nobody`` through ``setpriv`` when we are root (VLC refuses root);
- :func:`ffmpeg_serve`, :func:`ffmpeg_listen`: FFmpeg (Debian ``ffmpeg``) asked to serve a
  file, and its ``-rtsp_flags listen`` input, which is a recording server only (ANNOUNCE/RECORD):
  FFmpeg serves no RTSP playback, see :data:`FFMPEG_NO_PLAYBACK`.

:func:`transcode` makes the footage from a shared asset clip (``../shared/assets``) with PyAV's
libx264/libx265 into a temporary folder: 640x360, 10 fps, MPEG-TS (it loops cleanly), each frame
stamped with its number (:func:`read_stamp`) so a clip's frames can be checked for display order.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from camera_hub.sim.stamp import draw as stamp
from camera_hub.sim.stamp import read as read_stamp  # noqa: F401 - the tests read stamps through this module

HERE = Path(__file__).resolve().parent
ASSETS = Path(os.environ.get("CAMERA_HUB_ASSETS", HERE.parents[2] / "shared" / "assets"))
CLIP = "intel_one-by-one-person-detection.mp4"
SYSTEM_PYTHON = "/usr/bin/python3"
NOBODY = 65534
W, H, FPS = 640, 360, 10


@dataclass(frozen=True)
class Variant:
    """One kind of footage: the encoder and its options, the codec name as FFmpeg and the Source
    say it, and whether it has B-frames."""

    encoder: str
    codec: str
    b_frames: bool
    options: dict[str, str]


# every one with a keyframe every `gop` frames (the x264/x265 keyint is filled in by transcode)
VARIANTS = {
    # sliced threads (zerolatency): x264 sends each frame as several slices, unlike the simulator
    "h264": Variant("libx264", "h264", False, {"preset": "ultrafast", "tune": "zerolatency"}),
    "h264-bframes": Variant("libx264", "h264", True, {"preset": "ultrafast", "x264-params": "bframes=2:b-adapt=0"}),
    "h265": Variant("libx265", "hevc", False, {"preset": "ultrafast", "x265-params": "bframes=0:log-level=error"}),
}

def transcode(src: Path, dst: Path, variant: str = "h264", seconds: float = 8, gop: int = 20) -> int:
    """``seconds`` of ``src`` as 640x360 10 fps MPEG-TS in ``variant`` (:data:`VARIANTS`), a
    keyframe every ``gop`` frames, each frame stamped with its number; returns the frame count."""
    import av

    v = VARIANTS[variant]
    options = dict(v.options)
    key = "x264-params" if v.encoder == "libx264" else "x265-params"
    gop_params = f"keyint={gop}:min-keyint={gop}:scenecut=0"
    options[key] = f"{gop_params}:{options[key]}" if key in options else gop_params
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mpegts") as out:
        stream = out.add_stream(v.encoder, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = options
        vin = inp.streams.video[0]
        step = max(1, round(float(vin.average_rate or FPS) / FPS))
        n = 0
        for i, frame in enumerate(inp.decode(vin)):
            if i % step:
                continue
            img = frame.reformat(W, H, "rgb24").to_ndarray()
            stamp(img, n % 65536)
            picture = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            picture.pts, picture.time_base = n, Fraction(1, FPS)
            out.mux(stream.encode(picture))
            n += 1
            if n >= seconds * FPS:
                break
        out.mux(stream.encode())
    return n


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def describes_video(url: str, port: int) -> bool:
    """Does the server answer DESCRIBE with a video track yet? (VLC listens a moment before its
    stream is set up, and answers 404 or 5xx meanwhile.)"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n".encode())
            reply = b""
            while b"m=video" not in reply and len(reply) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
            return reply.startswith(b"RTSP/1.0 200") and b"m=video" in reply
    except OSError:
        return False


def host_port(url: str) -> tuple[str, int]:
    host, _, port = url.split("/")[2].rpartition(":")
    return host, int(port)


def listening(port: int) -> bool:
    """Is a TCP socket listening on 127.0.0.1:``port``? (from /proc/net/tcp, without connecting)"""
    try:
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(r.split()[1] == f"0100007F:{port:04X}" and r.split()[3] == "0A" for r in rows)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------------- GStreamer
@dataclass(frozen=True)
class GstServer:
    port: int

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount}"


def gst_missing() -> str | None:
    """Why GStreamer's RTSP server cannot run here, or None."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} (Debian's, for python3-gi) not found"
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    if subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode != 0:
        return "GStreamer RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) not installed"
    return None


@contextmanager
def serve_gst(mounts: dict[str, tuple[Path, str]]) -> Iterator[GstServer]:
    """GStreamer's RTSP server on a free port, one mount per ``name: (file.ts, "h264"|"h265")``,
    each looping its file and shared between clients."""
    args = [f"--mount=/{name}={path}:{codec}" for name, (path, codec) in mounts.items()]
    proc = subprocess.Popen([SYSTEM_PYTHON, str(HERE / "gst_rtsp_server.py"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("PORT "):
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"GStreamer RTSP server did not start: {line!r} {err[-2000:]}")
        port = int(line.split()[1])
        print(f"GStreamer RTSP server on port {port}", file=sys.stderr)
        yield GstServer(port)
    finally:
        _stop(proc)


# ---------------------------------------------------------------------------------- VLC
def vlc_missing() -> str | None:
    """Why VLC's RTSP server cannot run here, or None."""
    if shutil.which("cvlc") is None:
        return "VLC (cvlc: Debian vlc-bin, vlc-plugin-base) not installed"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "VLC refuses to run as root and setpriv (util-linux) is absent"
    return None


def readable_dir(prefix: str) -> Path:
    """A new temporary folder that ``nobody`` can read (not pytest's tmp_path, which is private
    to us): VLC runs as nobody when we are root. The caller removes it."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    work.chmod(0o755)
    return work


@contextmanager
def serve_vlc(media: Path, *, start_timeout_s: float = 15.0) -> Iterator[str]:
    """VLC serving ``media`` (looped, video only) at ``rtsp://127.0.0.1:<free port>/x``; yields
    the URL once it answers DESCRIBE with a video track. ``media`` and its folder must be
    readable by ``nobody`` (:func:`readable_dir`) when we are root."""
    cvlc = shutil.which("cvlc")
    assert cvlc is not None, vlc_missing()
    as_root = os.geteuid() == 0
    home = Path(tempfile.mkdtemp(prefix="vlc-home-"))
    if as_root:
        home.chmod(0o755)
        os.chown(home, NOBODY, NOBODY)
    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/x"
    cmd = [cvlc, str(media), "--loop", "--no-audio", "--sout", f"#rtp{{sdp={url}}}"]
    if as_root:
        cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]
    log_path = home / "vlc.log"
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HOME": str(home)})
            try:
                deadline = time.monotonic() + start_timeout_s
                while not describes_video(url, port):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log.flush()
                        raise RuntimeError(f"VLC did not serve RTSP: {log_path.read_text(errors='replace')[-2000:]}")
                    time.sleep(0.1)
                yield url
            finally:
                _stop(proc)
    finally:
        shutil.rmtree(home, ignore_errors=True)


# ---------------------------------------------------------------------------------- FFmpeg
# What Debian's ffmpeg (5.1) does, checked by test_interop_matrix.py (the ffmpeg rows and
# test_ffmpeg_listen_mode_is_record_only):
FFMPEG_NO_PLAYBACK = (
    "FFmpeg has no RTSP server for playback: `-rtsp_flags listen` is a flag of the RTSP demuxer (input). "
    "The muxer ignores it and connects out to ANNOUNCE/RECORD to a server (nothing listens: connection "
    "refused); `ffmpeg -rtsp_flags listen -i rtsp://…` takes one client's ANNOUNCE/RECORD and answers "
    "DESCRIBE with a reset, over TCP and UDP alike")


def ffmpeg_missing() -> str | None:
    return None if shutil.which("ffmpeg") else "FFmpeg (Debian ffmpeg) not installed"


def _ffmpeg(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _until_listening(proc: subprocess.Popen, port: int, timeout_s: float) -> bool:
    """Wait for ``proc`` to listen on ``port`` (True) or to exit (False). Not by connecting:
    FFmpeg's listen mode takes one connection and ends with it."""
    deadline = time.monotonic() + timeout_s
    while not listening(port):
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            raise RuntimeError(f"ffmpeg neither listens on {port} nor ends")
        time.sleep(0.05)
    return True


@contextmanager
def ffmpeg_serve(media: Path, *, timeout_s: float = 10.0) -> Iterator[tuple[str, subprocess.Popen, str]]:
    """``ffmpeg -re -stream_loop -1 -i media -c copy -f rtsp -rtsp_flags listen rtsp://…`` (how
    one would ask FFmpeg to serve a file); yields the URL, the process and what it said on stderr
    once it listens or has ended. Debian's ffmpeg ends at once: see :data:`FFMPEG_NO_PLAYBACK`."""
    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/x"
    proc = _ffmpeg(["-re", "-stream_loop", "-1", "-i", str(media), "-c", "copy", "-f", "rtsp",
                    "-rtsp_flags", "listen", url])
    try:
        said = "" if _until_listening(proc, port, timeout_s) else (proc.stderr.read() if proc.stderr else "")
        yield url, proc, said
    finally:
        _stop(proc)


@contextmanager
def ffmpeg_listen(*, timeout_s: float = 10.0) -> Iterator[str]:
    """``ffmpeg -rtsp_flags listen -i rtsp://127.0.0.1:<port>/x`` (FFmpeg's only RTSP server
    mode: it waits for one client to ANNOUNCE and RECORD); yields the URL once it listens."""
    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/x"
    proc = _ffmpeg(["-rtsp_flags", "listen", "-timeout", "20", "-i", url, "-f", "null", "-"])
    try:
        if not _until_listening(proc, port, timeout_s):
            raise RuntimeError(f"ffmpeg did not listen: {proc.stderr.read() if proc.stderr else ''}")
        yield url
    finally:
        _stop(proc)
