"""A GStreamer RTSP server for interop tests (a real, independent RTSP implementation).

Run with Debian's ``/usr/bin/python3`` (python3-gi, gir1.2-gst-rtsp-server-1.0)::

    /usr/bin/python3 tests/interop/gst_rtsp_server.py --mount /h264=clip264.ts:h264 --mount /h265=clip265.ts:h265

Each mount loops an MPEG-TS file (a raw elementary-stream loop would restart timestamps at 0)
and is shared between clients. Rate control is turned off so the looped media is not offered
for seeking: FFmpeg's PLAY carries ``Range: npt=0-`` and a failed seek answers 503 (FFmpeg still
gets 503 where the stream starts past 0, as with B-frames, or another client already plays it;
our native reader asks for the SDP's ``a=range``). Binds a free
port and prints ``PORT <n>`` on stdout once it listens.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PARSE = {"h264": ("h264parse", "rtph264pay"), "h265": ("h265parse", "rtph265pay")}


def _non_seekable(_factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
    media.set_property("suspend-mode", GstRtspServer.RTSPSuspendMode.NONE)
    if hasattr(media, "set_rate_control"):
        media.set_rate_control(False)


def make_factory(path: str, codec: str) -> GstRtspServer.RTSPMediaFactory:
    parse, pay = PARSE[codec]
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( multifilesrc location={path} loop=true ! tsdemux ! {parse} ! "
        f"{pay} name=pay0 pt=96 config-interval=-1 )"
    )
    factory.set_shared(True)
    factory.connect("media-configure", _non_seekable)
    return factory


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mount", action="append", required=True, help="/path=file.ts:h264|h265")
    args = ap.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for spec in args.mount:
        mount, _, rest = spec.partition("=")
        path, _, codec = rest.rpartition(":")
        mounts.add_factory(mount, make_factory(path, codec))
    if server.attach(None) == 0:
        sys.exit("could not bind the RTSP server")
    print(f"PORT {server.get_bound_port()}", flush=True)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    loop.run()


if __name__ == "__main__":
    main()
