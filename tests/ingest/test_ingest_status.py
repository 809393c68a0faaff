"""The camera status contract in Redis: write, read back in one pipeline, stale = down."""

from __future__ import annotations

from camera_hub.ingest.status import CameraStatus, read_states, status_key, write_states


async def test_status_round_trip_and_missing_and_stale(redis_client, redis_prefix) -> None:
    up = CameraStatus(camera_id="c1", state="up", since=10.0, last_frame_at=99.5, fps=10.0, bitrate=500000,
                      width=640, height=360, codec="h264", reconnects=2, worker="w1", updated_at=100.0)
    down = CameraStatus(camera_id="c2", state="down", reason="auth", since=50.0, worker="w1", updated_at=10.0)
    await write_states(redis_client, redis_prefix, [up, down])
    raw = await redis_client.hgetall(status_key(redis_prefix, "c1"))
    assert {k.decode() for k in raw} >= {"state", "reason", "since", "last_frame_at", "fps", "bitrate", "width",
                                          "height", "codec", "reconnects", "worker"}
    got = await read_states(redis_client, redis_prefix, ["c1", "c2", "never"], now=101.0)
    assert got["c1"] == up and got["c2"] == down
    assert "never" not in got  # missing key = never connected
    # the worker stopped refreshing c1: it reads as down/stale, not up forever
    stale = await read_states(redis_client, redis_prefix, ["c1"], now=200.0, stale_after_s=30.0)
    assert (stale["c1"].state, stale["c1"].reason) == ("down", "stale")


async def test_a_bad_hash_reads_as_down(redis_client, redis_prefix) -> None:
    await redis_client.hset(status_key(redis_prefix, "odd"), mapping={"state": "exploded"})
    got = await read_states(redis_client, redis_prefix, ["odd"])
    assert (got["odd"].state, got["odd"].reason) == ("down", "error")
