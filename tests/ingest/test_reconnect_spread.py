"""100 real Sources whose camera refuses at the same instant: their retries are spread
(after the first retry no 100 ms window holds more than 10 % of the reconnect attempts)."""

from __future__ import annotations

import socket
import time

from camera_hub.config import RtspUrl
from camera_hub.ingest.backoff import Backoff, OpenGate, max_window_share
from camera_hub.ingest.ring import PacketRing
from camera_hub.ingest.sampler import Sampler
from camera_hub.ingest.source import Source


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_100_cameras_refused_together_retry_spread_out() -> None:
    url = RtspUrl(f"rtsp://user:pw@127.0.0.1:{closed_port()}/cam")
    gate = OpenGate(100)
    sources = [Source(f"c{i}", url, sampler=Sampler(f"c{i}", 2.0), ring=PacketRing(1, 1 << 20), gate=gate,
                      backoff=Backoff(1.0, 60.0)) for i in range(100)]
    for s in sources:
        s.start()
    time.sleep(7.0)
    for s in sources:
        s.stop()
    for s in sources:
        assert s.done.wait(5)
    firsts = [s.attempts[0] for s in sources]
    assert max(firsts) - min(firsts) < 1.0  # they did fail together
    retries = [t for s in sources for t in list(s.attempts)[1:]]
    assert all(len(s.attempts) >= 2 for s in sources)
    assert all((s.state, s.reason) == ("down", "refused") for s in sources)
    assert len(retries) > 150
    assert max_window_share(retries) <= 0.10
