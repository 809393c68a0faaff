"""Every Prometheus metric of Camera Hub, defined once (DESIGN §4 names them).

Label values never carry a URL or a credential: cameras are labelled by id only.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

NS = "camera_hub"

# --- cameras and ingest
CAMERA_UP = Gauge(f"{NS}_camera_up", "1 while the camera delivers frames (up or degraded)",
                  ["camera", "district", "grid", "kind"])
CAMERA_STATE = Gauge(f"{NS}_camera_state", "1 for the camera's current state and reason, 0 otherwise",
                     ["camera", "state", "reason"])
FRAMES_DECODED = Counter(f"{NS}_frames_decoded_total", "Frames decoded by the sampler", ["camera"])
PACKETS = Counter(f"{NS}_packets_total", "Encoded packets received", ["camera"])
BYTES = Counter(f"{NS}_received_bytes_total", "Encoded bytes received", ["camera"])
RECONNECTS = Counter(f"{NS}_reconnects_total", "Reconnect attempts after a failure", ["camera", "reason"])
FRAME_LAG = Histogram(f"{NS}_frame_lag_seconds", "Delay from frame arrival to its sample being analysed",
                      buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
SAMPLES_DROPPED = Counter(f"{NS}_samples_dropped_total", "Samples dropped because analysis fell behind",
                          ["camera"])
OPENS_IN_FLIGHT = Gauge(f"{NS}_opens_in_flight", "RTSP opens currently in progress in this worker")
WORKER_CAMERAS = Gauge(f"{NS}_worker_cameras", "Cameras this worker holds a lease on", ["worker"])
CAMERA_TRANSPORT = Gauge(f"{NS}_camera_transport", "1 for the RTP transport of the camera's session (tcp, udp)",
                         ["camera", "transport"])
CAMERA_B_FRAMES = Gauge(f"{NS}_camera_b_frames", "1 when the camera's stream has B-frames", ["camera"])
RTP_LOST = Counter(f"{NS}_rtp_packets_lost_total", "RTP packets that never arrived (sequence gaps)", ["camera"])
RTP_REORDERED = Counter(f"{NS}_rtp_packets_reordered_total",
                        "RTP packets that arrived out of order (UDP) and were put back in order", ["camera"])
RTP_LATE = Counter(f"{NS}_rtp_packets_late_total",
                   "RTP packets dropped: duplicates, or later than the jitter buffer waits (UDP)", ["camera"])
RTP_RESYNCS = Counter(f"{NS}_rtp_resyncs_total", "New RTP senders taken up without reopening (ssrc_change) "
                      "and RTCP BYEs received (bye)", ["camera", "cause"])

# --- analytics
INFERENCE_SECONDS = Histogram(f"{NS}_inference_seconds", "Detector run time per batch", ["model"],
                              buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2))
INFERENCE_BATCH = Histogram(f"{NS}_inference_batch_size", "Frames per detector batch", ["model"],
                            buckets=(1, 2, 4, 8, 16, 32))
MOTION_SKIPPED = Counter(f"{NS}_motion_skipped_total", "Samples whose detector run the motion gate skipped",
                         ["camera"])
STAGE_CPU = Counter(f"{NS}_stage_cpu_seconds_total", "CPU time of the thread doing each pipeline stage "
                    "(decode, motion, detector, rules)", ["stage"])
DECODE_CPU, MOTION_CPU = STAGE_CPU.labels(stage="decode"), STAGE_CPU.labels(stage="motion")
DETECTOR_CPU, RULES_CPU = STAGE_CPU.labels(stage="detector"), STAGE_CPU.labels(stage="rules")
# the threads' totals, to split the rest: the reactor's less decode and motion is receiving
REACTOR_CPU, LOOP_CPU = STAGE_CPU.labels(stage="reactor_thread"), STAGE_CPU.labels(stage="loop_thread")
DETECTOR_BACKLOG = Gauge(f"{NS}_detector_backlog", "Samples waiting for the detector")
ANALYSIS_INTERVAL = Gauge(f"{NS}_analysis_interval_seconds",
                          "Video time between the camera's last two analysed frames, by their own timestamps (the "
                          "planner's effective interval; by receive time where those cannot be compared)",
                          ["camera"])
ANALYSIS_STARVED = Gauge(f"{NS}_analysis_starved_cameras",
                         "Live cameras not analysed within their limit (hot or floor interval)", ["worker"])
ANALYSIS_RATE = Gauge(f"{NS}_analysis_rate", "Samples the worker's analysis gets through per busy second "
                      "(moving average; the planner's budget)", ["worker"])
ANALYSIS_IN_FLIGHT = Gauge(f"{NS}_analysis_in_flight", "Cameras armed for a sample or waiting to be analysed",
                           ["worker"])

# --- alerts
ALERTS = Counter(f"{NS}_alerts_total", "Alerts created", ["type"])
ALERT_LATENCY = Histogram(f"{NS}_alert_latency_seconds", "Event onset to alert published", ["type"],
                          buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300))
ALERTS_OPEN = Gauge(f"{NS}_alerts_open", "Alerts not yet resolved or dismissed", ["type", "state"])
SLA_BREACHES = Counter(f"{NS}_sla_breaches_total", "Alerts that passed their due time before closing", ["type"])
CLIPS = Counter(f"{NS}_clips_total", "Alert clips by outcome (written, or why there is none)", ["outcome"])
EVIDENCE_RECORDINGS = Gauge(f"{NS}_evidence_recordings", "Cameras whose keyframes are being kept on disk for clips")
EVIDENCE_DISK_BYTES = Gauge(f"{NS}_evidence_disk_bytes", "Bytes of evidence recordings on this worker's disk")
EVIDENCE_WRITTEN = Counter(f"{NS}_evidence_written_bytes_total", "Bytes written to evidence recordings")
EVIDENCE_REFUSED = Counter(f"{NS}_evidence_refused_total", "Recordings not started or cut short", ["reason"])
SPOOLED = Gauge(f"{NS}_alerts_spooled", "Alerts waiting in the local spool for Redis")

# --- coverage
COVERAGE_RATIO = Gauge(f"{NS}_coverage_ratio", "Covered grids / grids", ["level", "unit", "category"])
COVERAGE_TARGET = Gauge(f"{NS}_coverage_target_ratio", "Coverage target from config", ["category"])
GRIDS_COVERED = Gauge(f"{NS}_grids_covered", "Grids watched by at least one working camera", ["level", "unit"])

# --- API connections (camera_hub/api/server.py)
API_CONNECTIONS = Gauge(f"{NS}_api_connections", "HTTP connections open in this API process")
API_CONNECTIONS_DROPPED = Counter(f"{NS}_api_connections_dropped_total", "HTTP connections refused or closed early: "
                                  "per_client, full (refused), shed (closed for room), read_timeout", ["reason"])
for _reason in ("per_client", "full", "shed", "read_timeout"):
    API_CONNECTIONS_DROPPED.labels(reason=_reason)
