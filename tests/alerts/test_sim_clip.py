"""End to end over real RTSP: the camera simulator serves a scene, the ingest Source keeps its
packets in a PacketRing, the publisher cuts the clip of the scene's vending episode around its
onset. The MP4 decodes with PyAV and spans pre-roll + post-roll."""

from __future__ import annotations

import asyncio
import time

import av
import pytest
from alertkit import make_city

from camera_hub.alerts.media import media_path
from camera_hub.alerts.publisher import AlertPublisher
from camera_hub.config import RtspUrl
from camera_hub.events import Episode
from camera_hub.ingest.backoff import Backoff, OpenGate
from camera_hub.ingest.ring import PacketRing
from camera_hub.ingest.sampler import Sampler
from camera_hub.ingest.source import Source

PRE, POST = 2.0, 2.0


@pytest.mark.slow
async def test_clip_of_a_simulator_episode_plays(redis_client, redis_prefix, tmp_path) -> None:
    sim = pytest.importorskip("camera_hub.sim.rtsp_server")
    server = sim.SimServer([sim.SimCameraSpec("cam0", "smoke")], width=320, height=180, fps=10, gop=10,
                           cache_dir=tmp_path / "sim-cache")
    await server.start()
    ring = PacketRing(30, 64 << 20)
    source = Source("cam0", RtspUrl(server.url("cam0")), sampler=Sampler("cam0", 5.0), ring=ring,
                    gate=OpenGate(2), backoff=Backoff(0.2, 1.0))
    source.start()
    try:
        # wait for an episode onset with PRE seconds of video before it in the ring
        deadline = time.monotonic() + 30
        onset = None
        while onset is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            first = ring.window(0, time.time())
            for ep in server.ground_truth("cam0"):
                if first and ep.start - PRE >= first[1][0].received_at and ep.start + POST < time.time() + 8:
                    onset = ep
                    break
        assert onset is not None, f"no episode with pre-roll (ring: {len(ring)} packets, state {source.state})"
        pub = AlertPublisher(make_city(1, pre_roll_s=PRE, post_roll_s=POST), redis_client, prefix=redis_prefix,
                             data_dir=tmp_path / "data", clip_source_for=lambda cam: ring)
        aid = await pub.publish(Episode("start", "vending", "cam0", onset.zone_id, onset.start, onset.start,
                                        score=0.8, count=1))
        await asyncio.wait_for(pub.wait_clips(), 20)
    finally:
        source.stop()
        await server.stop()
    alert = await pub.store.get(aid)
    assert alert.clip_url is not None
    with av.open(str(media_path(tmp_path / "data", aid, "clip"))) as c:
        v = c.streams.video[0]
        pts = [float(f.pts * v.time_base) for f in c.decode(v)]
    assert (v.width, v.height) == (320, 180)
    assert pts[-1] - pts[0] >= PRE + POST - 0.3, pts[-1] - pts[0]
