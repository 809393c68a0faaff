"""One worker against the RTSP simulator: every fault ends in the right state and reason, in
Redis and Prometheus; the worker survives; the healthy cameras keep their pace; no credential
leaks into Redis, logs or metrics."""

from __future__ import annotations

import asyncio
import logging
import time

import av
import pytest
from ingest_helpers import city, wait_until
from prometheus_client import generate_latest

from camera_hub.events import Sample
from camera_hub.ingest.status import read_states
from camera_hub.ingest.worker import CountingConsumer, Worker
from camera_hub.sim.rtsp_server import SimCameraSpec

PASSWORD = "s3cret-Pw"
FAULTS = {"garbage": "garbage", "resize": "resize", "nokey": "no_keyframes", "stall": "stall", "drop": "drop"}
HEALTHY = ["ok1", "ok2", "ok3"]


@pytest.fixture
async def sim(sim_server_factory):
    ids = [*HEALTHY, *FAULTS, "refused"]
    return await sim_server_factory([SimCameraSpec(i, "smoke") for i in ids], width=320, height=180,
                                    credentials=("admin", PASSWORD))


@pytest.mark.parametrize("receiver", ["native", "pyav"])
async def test_each_fault_ends_in_its_state_and_the_rest_keep_going(sim, redis_client, redis_prefix, caplog,
                                                                   receiver):
    caplog.set_level(logging.DEBUG, logger="camera_hub")
    cams = [{"id": i, "main_url": sim.url(i, "main"), "sub_url": sim.url(i)} for i in [*HEALTHY, *FAULTS,
                                                                                          "refused"]]
    cams += [{"id": "badpw", "main_url": sim.url("ok1").replace(PASSWORD, "wrong")},
             {"id": "nopath", "main_url": sim.url("ok1").replace("/ok1/", "/nobody/")},
             {"id": "closed", "main_url": "rtsp://admin:" + PASSWORD + "@127.0.0.1:9/x"}]
    cfg = city(cams, ingest={"no_keyframe_after_s": 3.0, "read_timeout_s": 2.0, "connect_timeout_s": 2.0,
                             "backoff_base_s": 0.5, "backoff_cap_s": 2.0, "heartbeat_s": 0.5, "receiver": receiver})
    sim.fault("refused", "refuse")
    worker = Worker(cfg, worker_id="w-faults", redis=redis_client, prefix=redis_prefix)
    await worker.start()
    try:
        ids = [c["id"] for c in cams]
        await wait_until(lambda: all(worker.sources.get(i) and worker.sources[i].state == "up"
                                 for i in [*HEALTHY, *FAULTS]), 20, "all good cameras up")
        before = {i: worker.sources[i].samples for i in HEALTHY}
        t_faults = time.time()
        for cid, kind in FAULTS.items():
            sim.fault(cid, kind, None if kind != "drop" else 1.0)

        expected = {"garbage": ("degraded", "decode_errors"), "nokey": ("degraded", "no_keyframe"),
                    "stall": ("down", "stalled"), "badpw": ("down", "auth"), "nopath": ("down", "not_found"),
                    "refused": ("down", "refused"), "closed": ("down", "refused"), "resize": ("up", "")}
        def seen(cid: str) -> set[tuple[str, str]]:
            return {(state, reason) for _, state, reason in worker.sources[cid].history}

        def missing() -> list[str]:
            out = [cid for cid, exp in expected.items() if exp not in seen(cid)]
            if worker.sources["resize"].width != 160:
                out.append("resize width")
            if ("down", "eof") not in seen("drop"):
                out.append("drop")
            return out

        def check() -> bool:
            return not missing()

        await wait_until(check, 25, "every fault's state", missing)
        await wait_until(lambda: worker.sources["drop"].state == "up", 10, "the dropped camera to come back")
        await worker.publish_status(force=True)

        # the contract in Redis, read the way the API reads it
        states = await read_states(redis_client, redis_prefix, ids)
        for cid, (state, reason) in expected.items():
            if cid in ("stall",):  # still down; its reason stays "stalled" while it does not answer
                assert (states[cid].state, states[cid].reason) == (state, reason), cid
            elif cid != "resize":
                assert (states[cid].state, states[cid].reason) == (state, reason), cid
        assert states["resize"].state == "up" and (states["resize"].width, states["resize"].height) == (160, 90)
        # the ring restarted with the new stream format, its parameter sets taken from the stream
        info = worker.ring("resize").info
        assert (info.width, info.height) == (160, 90) and info.extradata.startswith(b"\x00\x00\x00\x01")
        assert states["ok1"].fps > 5 and states["ok1"].codec == "h264" and states["ok1"].worker == "w-faults"
        assert states["ok1"].bitrate > 0 and states["ok1"].last_frame_at > t_faults
        assert states["drop"].reconnects >= 1

        # healthy cameras were not slowed: a keyframe sample every ~2 s each, throughout
        elapsed = time.time() - t_faults
        for i in HEALTHY:
            assert worker.sources[i].samples - before[i] >= int(elapsed / 2) - 2, i
        # the worker is alive: loops running, every source thread still there
        assert all(not t.done() for t in worker._tasks)
        assert all(not s.done.is_set() for s in worker.sources.values())

        metrics_text = generate_latest().decode()
        assert 'camera_hub_camera_state{camera="badpw",reason="auth",state="down"} 1.0' in metrics_text
        assert 'camera_hub_reconnects_total{camera="nopath",reason="not_found"}' in metrics_text
        redis_dump = [v for k in await redis_client.keys(f"{redis_prefix}*") if await redis_client.type(k) == b"hash"
                      for v in (await redis_client.hgetall(k)).values()]
        for text in (metrics_text, caplog.text, repr(redis_dump)):
            assert PASSWORD not in text
    finally:
        await worker.stop()


async def test_keyframe_only_sampling_and_the_ring(sim_server_factory, redis_client, redis_prefix) -> None:
    sim = await sim_server_factory([SimCameraSpec(i, "smoke") for i in ("k1", "f1", "look")],
                                   width=320, height=180, main_size=(480, 272))
    cams = [{"id": i, "main_url": sim.url(i, "main"), "sub_url": sim.url(i)} for i in ("k1", "f1")]
    cams.append({"id": "look", "kind": "lookout", "main_url": sim.url("look", "main"), "sub_url": sim.url("look")})
    cfg = city(cams, ingest={"fps_cameras": {"f1": 5.0}, "ring_seconds": 3.0})
    kept: list[Sample] = []

    class Keeping(CountingConsumer):
        async def handle(self, samples: list[Sample]) -> None:
            kept.extend(samples)
            await super().handle(samples)

    worker = Worker(cfg, worker_id="w-sampling", consumer=Keeping())  # no Redis: holds every camera
    await worker.start()
    try:
        await asyncio.sleep(7.0)
        k, f = worker.sources["k1"], worker.sources["f1"]
        # community cameras read the sub-stream, lookout cameras the main stream
        assert (k.width, worker.sources["look"].width) == (320, 480)
        # keyframe-only: only keyframes reach the decoder (GOP 20 at 10 fps: one each 2 s)
        assert k.packets >= 40 and 2 <= k.sampler.decoded <= k.packets / 15
        assert k.samples == k.sampler.decoded
        assert k.keyframe_interval_s is not None and abs(k.keyframe_interval_s - 2.0) < 0.3  # for the planner
        # each sample carries its frame's own time (the planner's intervals): keyframes 2.0 s apart
        stream = [s.stream_t for s in kept if s.camera_id == "k1"]
        assert len(stream) >= 2 and all(x is not None for x in stream)
        assert all(abs(b - a - 2.0) < 1e-6 for a, b in zip(stream, stream[1:], strict=False)), stream
        # fps mode decodes every frame and samples 5 per second
        assert f.sampler.decoded >= f.packets - 2 and f.samples >= 4 * (f.packets / 10) - 3

        ring = worker.ring("k1")
        now = time.time()
        info, pkts = ring.window(now - 1.0, now)
        assert pkts[0].is_keyframe and pkts[0].received_at <= now - 1.0
        assert (info.codec, info.width, info.height) == ("h264", 320, 180)
        span = pkts[-1].received_at - pkts[0].received_at
        assert span < 3.0 + 2.1  # ring_seconds plus at most one GOP
        # what the clip writer gets is decodable on its own: StreamInfo + packets from the keyframe
        ctx = av.CodecContext.create(info.codec, "r")
        ctx.extradata = info.extradata
        frames = []
        for p in pkts[:5]:
            frames += ctx.decode(av.Packet(p.data))
        assert frames and frames[0].width == 320
    finally:
        await worker.stop()


async def test_a_silent_stream_reads_as_stalled_before_its_reader_gives_up(sim_server_factory, redis_client,
                                                                       redis_prefix) -> None:
    sim = await sim_server_factory([SimCameraSpec("quiet", "smoke")], width=320, height=180)
    cfg = city([{"id": "quiet", "main_url": sim.url("quiet")}],
               ingest={"read_timeout_s": 30.0, "connect_timeout_s": 30.0, "stall_after_s": 1.5})
    worker = Worker(cfg, worker_id="w-stall", redis=redis_client, prefix=redis_prefix)
    await worker.start()
    try:
        async def state() -> tuple[str, str] | None:
            st = (await read_states(redis_client, redis_prefix, ["quiet"])).get("quiet")
            return (st.state, st.reason) if st else None

        await wait_until(lambda: "quiet" in worker.sources and worker.sources["quiet"].state == "up", 15, "up")
        sim.fault("quiet", "stall")
        t0 = time.monotonic()
        while (await state()) != ("down", "stalled"):
            assert time.monotonic() - t0 < 8, await state()
            await asyncio.sleep(0.2)
        assert worker.sources["quiet"].state == "up"  # its reader still waits out its 30 s read timeout
    finally:
        sim.fault("quiet", "clear")
        await worker.stop()


class SlowConsumer:
    """An analysis stage that falls far behind: one batch every 0.5 s."""

    def __init__(self) -> None:
        self.lags: list[float] = []

    async def handle(self, samples) -> None:
        now = time.time()
        self.lags += [now - s.t for s in samples]
        await asyncio.sleep(0.5)


async def test_a_lagging_consumer_drops_the_oldest_and_stays_current(sim_server_factory) -> None:
    sim = await sim_server_factory([SimCameraSpec(i, "smoke") for i in ("a", "b")], width=320, height=180)
    cfg = city([{"id": i, "main_url": sim.url(i)} for i in ("a", "b")],
               ingest={"fps_cameras": {"a": 10.0, "b": 10.0}, "queue_size": 8})
    consumer = SlowConsumer()
    worker = Worker(cfg, worker_id="w-slow", consumer=consumer, batch_size=2)
    await worker.start()
    try:
        await asyncio.sleep(6.0)
        assert len(worker.queue) <= 8
        assert worker.queue.dropped > 0.6 * worker.queue.put_count  # ~20 samples/s offered, 4/s taken
        # what the consumer still gets is fresh: the queue never lets old samples pile up
        late = consumer.lags[len(consumer.lags) // 2:]
        assert late and max(late) < 1.5
        assert worker.stats()["dropped"] == worker.queue.dropped
    finally:
        await worker.stop()
