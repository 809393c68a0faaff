"""The simulator over real sockets, read by PyAV (FFmpeg) and by a raw RTSP client: many
cameras at the right rate, continuous timestamps across the scene loop, Digest auth, 404,
bounded memory for slow readers, the control API and ground truth."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import av
import httpx
import pytest

from camera_hub.sim import rtsp_server
from camera_hub.sim.rtsp_client import RtspClient
from camera_hub.sim.rtsp_server import SimCameraSpec
from tests.sim.sim_helpers import open_av, read_stream

SMALL = {"width": 320, "height": 180}


async def test_fifty_cameras_at_ten_fps(sim_server_factory) -> None:
    specs = [SimCameraSpec(f"cam-{i:03d}", "smoke", offset_s=i * 0.37) for i in range(50)]
    server = await sim_server_factory(specs, control_port=None, **SMALL)

    def measure(cid: str):
        return read_stream(server.url(cid), 4.0)

    with ThreadPoolExecutor(50) as pool:
        readings = await asyncio.gather(*(asyncio.get_running_loop().run_in_executor(pool, measure, s.camera_id)
                                          for s in specs))
    for cid, r in zip((s.camera_id for s in specs), readings, strict=True):
        assert r.ended is None, (cid, r.ended)
        pts = [p for _, p, _ in r.packets if p is not None]
        steps = {b - a for a, b in zip(pts, pts[1:], strict=False)}
        assert steps == {9000}, (cid, steps)  # 10 fps on the 90 kHz clock, no gaps
        # wall-clock rate once the opening burst (the GOP so far) is over
        window = [t for t, _, _ in r.packets if r.opened_at + 1.0 <= t <= r.opened_at + 4.0]
        assert 7 <= len(window) / 3.0 <= 13, (cid, len(window))
    plays = [e for e in server.connection_log if e.event == "play"]
    assert {e.camera_id for e in plays} == {s.camera_id for s in specs}


async def test_timestamps_continue_across_the_loop(sim_server_factory) -> None:
    # smoke loops every 6 s; starting at 4.5 s into it, the loop boundary comes 1.5 s after start
    server = await sim_server_factory([SimCameraSpec("cam-1", "smoke", offset_s=4.5)], **SMALL)
    reading = await asyncio.to_thread(read_stream, server.url("cam-1"), 4.0, decode=True)
    pts = [p for _, p, _ in reading.packets if p is not None]
    assert len(pts) >= 40
    assert all(b - a == 9000 for a, b in zip(pts, pts[1:], strict=False))
    assert reading.decode_errors == 0 and len(reading.frames) >= len(pts) - 2

    def raw() -> list:
        with RtspClient(server.url("cam-1")) as c:
            c.play()
            packets = [c.read_packet()]
            while len({p.timestamp for p in packets}) <= 45 or not packets[-1].marker:
                packets.append(c.read_packet())
            return packets

    packets = await asyncio.to_thread(raw)
    seqs = [p.seq for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    stamps = sorted({p.timestamp for p in packets})
    # from the keyframe at 4.0 s into the loop, 45 frames cross the loop's end at 6.0 s
    assert len(stamps) > 45
    assert all((b - a) == 9000 for a, b in zip(stamps, stamps[1:], strict=False))
    assert all(p.marker == (i + 1 == len(packets) or packets[i + 1].timestamp != p.timestamp)
               for i, p in enumerate(packets))
    assert {p.nal_type for p in packets} >= {7, 8, 5, 1}


async def test_digest_auth(sim_server_factory) -> None:
    server = await sim_server_factory([SimCameraSpec("cam-1", "smoke")], credentials=("admin", "s3cret!"), **SMALL)
    ok = await asyncio.to_thread(read_stream, server.url("cam-1"), 1.0)
    assert len(ok.packets) > 5

    bad = f"rtsp://admin:wrong@127.0.0.1:{server.port}/cam-1/sub"
    with pytest.raises(av.error.FFmpegError):
        await asyncio.to_thread(open_av, bad)
    with pytest.raises(av.error.FFmpegError):
        await asyncio.to_thread(open_av, server.url("cam-1", with_credentials=False))

    def statuses() -> tuple[int, str, int, int]:
        with RtspClient(server.url("cam-1", with_credentials=False)) as c:
            r = c.request("DESCRIBE")
            first, challenge = r.status, r.headers.get("www-authenticate", "")
        with RtspClient(bad) as c:
            wrong = c.request("DESCRIBE").status
        with RtspClient(server.url("cam-1")) as c:
            right = c.request("DESCRIBE").status
        return first, challenge, wrong, right

    first, challenge, wrong, right = await asyncio.to_thread(statuses)
    assert first == 401 and challenge.startswith("Digest ") and "nonce=" in challenge
    assert (wrong, right) == (401, 200)
    assert "s3cret" not in repr(server.connection_log)


async def test_unknown_paths_are_404(sim_server_factory) -> None:
    server = await sim_server_factory([SimCameraSpec("cam-1", "smoke")], **SMALL)

    def statuses() -> list[int]:
        out = []
        for path in ("cam-2/sub", "cam-1/third", "cam-1", "cam-1/sub/x/y"):
            with RtspClient(f"rtsp://127.0.0.1:{server.port}/{path}") as c:
                out.append(c.request("DESCRIBE").status)
        return out

    assert await asyncio.to_thread(statuses) == [404, 404, 404, 404]
    with pytest.raises(av.error.FFmpegError):
        await asyncio.to_thread(open_av, f"rtsp://127.0.0.1:{server.port}/nope/sub")


async def test_main_stream_is_the_larger_size(sim_server_factory) -> None:
    server = await sim_server_factory([SimCameraSpec("cam-1", "smoke")], main_size=(640, 360), **SMALL)
    r = await asyncio.to_thread(read_stream, server.url("cam-1", "main"), 1.0, decode=True)
    assert {(w, h) for _, w, h in r.frames} == {(640, 360)}


async def test_a_reader_that_cannot_keep_up_is_cut_off(sim_server_factory, monkeypatch) -> None:
    monkeypatch.setattr(rtsp_server, "SLOW_READER_BYTES", 16 * 1024)
    monkeypatch.setattr(rtsp_server, "SLOW_READER_CLOSE_S", 1.0)
    monkeypatch.setattr(rtsp_server, "SEND_BUFFER_BYTES", 4096)
    server = await sim_server_factory([SimCameraSpec("cam-1", "smoke")], **SMALL)
    client = RtspClient(server.url("cam-1"), rcvbuf=4096)
    try:
        await asyncio.to_thread(client.play)  # then never read again
        peak = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(e.event == "close" for e in server.connection_log):
            peak = max([peak] + [c.transport.get_write_buffer_size() for c in server._conns if c.transport])
            await asyncio.sleep(0.05)
        assert [e.event for e in server.connection_log] == ["play", "close"]
        assert peak < 16 * 1024 + 64 * 1024  # never more than the limit plus one frame
    finally:
        client.close()


async def test_control_api(sim_server_factory) -> None:
    server = await sim_server_factory([SimCameraSpec("cam-1", "smoke"), SimCameraSpec("cam-2", "smoke", 3.0)],
                                      credentials=("admin", "pw-secret"), **SMALL)
    base = f"http://127.0.0.1:{server.control_port}"
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        cams = (await http.get("/cameras")).json()
        assert [c["id"] for c in cams] == ["cam-1", "cam-2"] and cams[0]["scene"] == "smoke"
        assert "pw-secret" not in str(cams) and cams[0]["urls"]["sub"].endswith("/cam-1/sub")

        await asyncio.to_thread(read_stream, server.url("cam-1"), 0.5)
        for _ in range(250):  # the server sees the close a moment after the reader made it
            if len(server.connection_log) == 2:
                break
            await asyncio.sleep(0.02)
        log = (await http.get("/log", params={"since": 0})).json()
        assert [e["event"] for e in log["events"]] == ["play", "close"] and log["next"] == 2
        assert (await http.get("/log", params={"since": 2})).json() == {"next": 2, "events": []}

        r = await http.post("/cameras/cam-2/fault", json={"kind": "refuse", "duration_s": 30})
        assert r.status_code == 200 and r.json()["fault"] == "refuse"
        assert server.fault_of("cam-2") == "refuse"

        def describe() -> int:
            with RtspClient(server.url("cam-2")) as c:
                return c.request("DESCRIBE").status

        assert await asyncio.to_thread(describe) == 503
        await http.post("/cameras/cam-2/fault", json={"kind": "clear"})
        assert await asyncio.to_thread(describe) == 200

        # smoke: a crate stands in the frontage 2-5 s into the loop
        at = server.started_at + 3.5
        objects = (await http.get("/objects/cam-1", params={"t": at})).json()
        assert {"label": "goods", "box": [round(v, 4) for v in server.ground_truth("cam-1")[0].boxes[0][1]]} in objects
        assert "goods" not in {o["label"] for o in (await http.get("/objects/cam-1", params={"t": at - 2})).json()}
        truth = (await http.get("/ground_truth/cam-1")).json()
        assert truth and truth[0]["type"] == "vending" and truth[0]["zone_id"] == "frontage"
        assert (await http.post("/cameras/cam-1/fault", json={"kind": "explode"})).status_code == 400
        assert (await http.post("/cameras/nope/fault", json={"kind": "drop"})).status_code == 404
        assert (await http.get("/ground_truth/nope")).status_code == 404
        assert (await http.get("/nothing")).status_code == 404


async def test_ground_truth_follows_each_cameras_timeline(sim_server_factory) -> None:
    # smoke: a crate in the frontage 2-5 s of each 6 s loop
    server = await sim_server_factory([SimCameraSpec("a", "smoke", 0.0), SimCameraSpec("b", "smoke", 3.0)], **SMALL)
    t0 = server.started_at
    a, b = server.ground_truth("a"), server.ground_truth("b")
    assert [(e.type, e.zone_id) for e in a] == [("vending", "frontage")]
    assert a[0].start == pytest.approx(t0 + 2) and a[0].end == pytest.approx(t0 + 5)
    # b starts 3 s into its loop: the episode is in progress at start (clipped); the next loop
    # (episode at t0 + 5) has not begun yet
    assert len(b) == 1 and b[0].start == pytest.approx(t0) and b[0].end == pytest.approx(t0 + 2)
    (label, box), = a[0].boxes
    assert label == "goods" and 0.05 <= box[0] < box[2] <= 0.95 and 0.5 <= box[3] <= 0.8


async def test_ground_truth_over_many_loops_merges_what_continues(sim_server_factory, tmp_path) -> None:
    script = tmp_path / "tiny_night.yaml"
    script.write_text("name: tiny_night\nlayout: street\nloop_s: 4\nwalkers: 1\nnight: true\n"
                      "goods:\n  - {kind: pile, x: 0.5, y: 0.7, start: 1, end: 2}\n")
    server = await sim_server_factory([SimCameraSpec("n", str(script), offset_s=0.0)], width=160, height=96,
                                      control_port=None)
    t0 = server.started_at
    truth = server.ground_truth("n", now=t0 + 9.0)  # loops 0, 1 and the current one (2)
    def rel(episodes, kind=None) -> list:
        return [(e.type, round(e.start - t0, 6), round(e.end - t0, 6)) for e in episodes if kind in (None, e.type)]

    assert rel(truth, "vending") == [("vending", 1, 2), ("vending", 5, 6), ("vending", 9, 10)]
    assert rel(truth, "night") == [("night", 0, 12)]  # one night, not three
    early = server.ground_truth("n", now=t0 + 0.5)  # only the first loop has begun
    assert rel(early) == [("night", 0, 4), ("vending", 1, 2)]


def test_connection_log_is_bounded_and_read_by_absolute_index(monkeypatch):
    """The log keeps its newest CONNECTION_LOG_MAX entries; ``since`` counts every entry ever
    logged, so a reader that fell behind gets what is left and the right ``next``."""
    from types import SimpleNamespace

    from camera_hub.sim import rtsp_server

    server = rtsp_server.SimServer.__new__(rtsp_server.SimServer)
    server.connection_log = rtsp_server.deque(maxlen=5)
    server.log_dropped = 0
    for i in range(8):
        sess = SimpleNamespace(camera=SimpleNamespace(spec=SimpleNamespace(camera_id=f"c{i}")), stream="main",
                               id=str(i), conn=SimpleNamespace(peer="127.0.0.1"))
        server._log(sess, "play")
    assert len(server.connection_log) == 5 and server.log_dropped == 3
    events, after = server.log_since(0)  # behind: what is kept
    assert [e.camera_id for e in events] == ["c3", "c4", "c5", "c6", "c7"] and after == 8
    events, after = server.log_since(6)
    assert [e.camera_id for e in events] == ["c6", "c7"] and after == 8
    assert server.log_since(8) == ([], 8)
