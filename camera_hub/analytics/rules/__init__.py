"""Rules: one module per alert type, each a small state machine fed with tracks (or frame
statistics, or camera states) and the clock, returning :class:`camera_hub.events.Episode` s."""
