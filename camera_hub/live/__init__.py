"""Live view: WebRTC playback of any live camera, without re-encoding.

The worker that reads a camera also serves its viewers: it has the encoded packets (the
camera's :class:`~camera_hub.ingest.ring.PacketRing`), so a viewer never opens an RTSP session
of its own and no picture is decoded or encoded for it. The API authenticates the viewer, writes
the audit entry, reserves a place under the per-user limit, finds the worker that holds the camera
and forwards the WHEP offer to it over an internal, HMAC-signed HTTP call; the worker answers.

- :mod:`camera_hub.live.protocol`: Redis keys, the API → worker request signature, SDP helpers;
- :mod:`camera_hub.live.media`: one fan-out per camera, one track per viewer (H.264 Annex B
  packets handed to aiortc as they are, packetised for RTP once per camera);
- :mod:`camera_hub.live.sender`: each viewer's RTP send loop (aiortc's, without the work that is
  the same for every viewer);
- :mod:`camera_hub.live.server`: the worker's live endpoint and its peer connections;
- :mod:`camera_hub.live.client`: a WHEP client (aiortc) for tests and benchmarks.
"""
