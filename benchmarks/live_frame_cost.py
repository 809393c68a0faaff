"""What a live viewer costs per frame in the thread that reads the camera, where the fan-out and
the lean RTP send run (camera_hub/live/media.py, camera_hub/live/sender.py), with the real parts:
the camera's PacketRing, its LiveCamera, a ViewerTrack on aiortc's RTCRtpSender with the lean send
installed, a libsrtp session (AES-CM/HMAC-SHA1, keys made here: no DTLS), the UDP socket, and a
separate process receiving the datagrams on 127.0.0.1. The frames are the simulator's `smoke`
scene (1080p 25 fps by default, GOP 2 s), appended to the ring as the camera's thread does, either
40 ms apart (``cold``: what a 25 fps camera gives, caches cold between frames) or back to back
(``hot``); the thread's CPU (``time.thread_time_ns``) around each append is summed.

Rows: the ring alone (no live view), the fan-out subscribed with no viewer, one viewer, two
(the second one's share), and one viewer with SRTP, or the ``sendto`` system call, taken out (an
identity cipher, a socket that sends nothing) to show their part. benchmarks/live_view.py measures
the whole worker process; this shows where the first viewer's share goes (benchmarks/README.md,
Live view).

    .venv/bin/python benchmarks/live_frame_cost.py [--frames 250] [--size 1080p|360p]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aioice.ice import StunProtocol  # noqa: E402
from aiortc import RTCRtpSender  # noqa: E402
from aiortc.rtcdtlstransport import State  # noqa: E402
from aiortc.rtcrtpparameters import (  # noqa: E402
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
)
from pylibsrtp import Policy, Session  # noqa: E402

from camera_hub.annexb import join  # noqa: E402
from camera_hub.events import EncodedPacket, StreamInfo  # noqa: E402
from camera_hub.ingest.ring import PacketRing  # noqa: E402
from camera_hub.live.media import LiveCamera, ViewerTrack  # noqa: E402
from camera_hub.live.sender import install  # noqa: E402
from camera_hub.sim.encode import encode_scene  # noqa: E402

TB = Fraction(1, 90000)
SIZES = {"1080p": (1920, 1080, 25, 50), "360p": (640, 360, 10, 20)}
RECEIVER = "import socket, sys\ns = socket.socket(fileno=int(sys.argv[1]))\nwhile True:\n    s.recv(65536)\n"


class NoSend(socket.socket):
    """A UDP socket whose ``sendto`` does nothing: the row without the system call."""

    def sendto(self, *args: Any) -> int:  # type: ignore[override]
        return 0


class Identity:
    """A cipher that leaves the packet as it is: the row without SRTP."""

    def protect(self, data: bytes) -> bytes:
        return data

    def protect_rtcp(self, data: bytes) -> bytes:
        return data


def srtp_session() -> Session:
    return Session(Policy(key=os.urandom(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                          srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80))


async def add_viewer(cam: LiveCamera, sock: socket.socket, addr: Any,
                     srtp: Any) -> tuple[ViewerTrack, asyncio.Task[None]]:
    """A connected viewer as the worker makes one: its RTCRtpSender's transport is the selected
    pair's socket and the SRTP session, which is all the lean send uses of it."""
    protocol = StunProtocol(None)
    protocol.transport = SimpleNamespace(_sock=sock)
    pair = SimpleNamespace(protocol=protocol, remote_addr=addr)
    transport = SimpleNamespace(state="connected", _state=State.CONNECTED, _tx_srtp=srtp,
                                transport=SimpleNamespace(_connection=SimpleNamespace(_nominated={1: pair})))
    track = ViewerTrack()
    sender = RTCRtpSender(track, transport)
    sender._RTCRtpSender__rtp_header_extensions_map.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
        RTCRtpHeaderExtensionParameters(id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time")]))
    sender._RTCRtpSender__mid = "0"
    if not install(sender):
        raise SystemExit("this aiortc's RTCRtpSender is not the one the lean send knows")
    cam.add(track)
    task = asyncio.create_task(sender._run_rtp(RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000,
                                                                      payloadType=102)))
    await asyncio.sleep(0.1)  # run_direct took over
    return track, task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=list(SIZES), default="1080p")
    ap.add_argument("--frames", type=int, default=250, help="frames per row and mode (250: 10 s at 25 fps)")
    args = ap.parse_args()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(rx.fileno())], pass_fds=[rx.fileno()])
    try:
        rows = asyncio.run(run(args, rx.getsockname()))
    finally:
        receiver.kill()
        receiver.wait()
        rx.close()
    width, height, fps, _ = SIZES[args.size]
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.machine())
    print(f"\n{args.size} {fps} fps smoke scene, {args.frames} frames a row; {os.cpu_count()} CPUs ({model}), "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}\n")
    print(f"| camera thread, per frame | cold ({1000 // fps} ms apart) | cores at {fps} fps | hot (back to back) |")
    print("|---|---:|---:|---:|")
    for name, cold, hot in rows:
        print(f"| {name} | {cold:.0f} µs | {cold * fps / 1e6:.4f} | {hot:.0f} µs |")


async def run(args: argparse.Namespace, addr: Any) -> list[tuple[str, float, float]]:
    width, height, fps, gop = SIZES[args.size]
    print(f"encoding or loading the smoke scene at {width}x{height} {fps} fps (cached after the first run)", flush=True)
    scene = await asyncio.to_thread(encode_scene, "smoke", width, height, fps=fps, gop=gop)
    units = [join(nals) for nals in scene.frames]
    info = StreamInfo("h264", width, height, join([scene.sps, scene.pps]), TB)
    step = 90000 // fps

    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setblocking(False)
    quiet = NoSend(socket.AF_INET, socket.SOCK_DGRAM)
    ring = PacketRing(60, 256 << 20)
    ring.set_info(info)
    cam = LiveCamera("cam", ring, asyncio.get_running_loop())
    n = 0

    def append(count: int, gap_s: float) -> float:
        """µs of this thread's CPU per append (and what the ring's listeners do in it)."""
        nonlocal n
        spent = 0
        for _ in range(count):
            i = n % len(units)
            pkt = EncodedPacket(units[i], n * step, n * step, scene.keyframes[i], TB, time.time())
            n += 1
            t0 = time.thread_time_ns()
            ring.append(pkt)
            spent += time.thread_time_ns() - t0
            if gap_s:
                time.sleep(gap_s)
        return spent / count / 1000

    async def measure() -> tuple[float, float]:
        await asyncio.to_thread(append, gop, 1 / fps)  # settle
        cold = await asyncio.to_thread(append, args.frames, 1 / fps)
        hot = await asyncio.to_thread(append, args.frames, 0.0)
        return cold, hot

    rows: list[tuple[str, float, float]] = []
    try:
        await asyncio.to_thread(append, gop, 0.0)  # a GOP in the ring before anyone subscribes
        rows.append(("the ring alone (no live view)", *await measure()))
        cam.start()
        rows.append(("fan-out, no viewer", *await measure()))
        viewers = [await add_viewer(cam, tx, addr, srtp_session())]
        rows.append(("1 viewer", *await measure()))
        viewers.append(await add_viewer(cam, tx, addr, srtp_session()))
        rows.append(("2 viewers", *await measure()))
        variants = (("1 viewer, no SRTP", tx, Identity()), ("1 viewer, no sendto", quiet, srtp_session()))
        for variant, sock, srtp in variants:
            for track, task in viewers:
                track.stop()
                await task
            viewers = [await add_viewer(cam, sock, addr, srtp)]
            rows.append((variant, *await measure()))
        for track, task in viewers:
            track.stop()
            await task
    finally:
        cam.close()
        for s in (tx, quiet):
            s.close()
    return rows


if __name__ == "__main__":
    main()
