"""The camera simulator: scene scripts and their renderer (``scenes``), encoding with a cache
(``encode``), RFC 6184 packetisation (``rtp``), the RTSP server with fault injection
(``rtsp_server``) and its HTTP control API (``control``), a raw RTSP client for tests and
benchmarks (``rtsp_client``), the ``camera-hub sim`` command (``cli``) and the demo city
generator (``demo_city``)."""
