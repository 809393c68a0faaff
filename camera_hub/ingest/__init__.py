"""Ingest: RTSP cameras in, samples and packet rings out, health and shard membership in Redis.

- :mod:`.source` — one thread per camera opening RTSP (native reader or PyAV); state machine and reconnects
- :mod:`.rtsp`, :mod:`.rtp`, :mod:`.reactor` — the native RTSP reader: RTP over TCP or UDP (jitter
  buffer, RTCP), read for every camera of a worker by one epoll thread
- :mod:`.backoff` — capped exponential backoff with full jitter; the bound on opens in flight
- :mod:`.sampler` — keyframe-only (or every-frame) decoding to BGR samples
- :mod:`.ring` — the last seconds of encoded packets per camera, from a keyframe (clip pre-roll)
- :mod:`.queue` — the bounded, drop-oldest hand-off from sources to the analysis consumer
- :mod:`.worker` — one asyncio process holding a shard of cameras (``camera-hub worker``)
- :mod:`.shard` — heartbeat membership, rendezvous hashing, per-camera leases in Redis
- :mod:`.status` — the camera status hashes in Redis (written here, read by the API)
"""
