"""``camera-hub worker``: one ingest worker process (run several per node, on several nodes)."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Annotated

import typer

from camera_hub import paths


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker(
    config: Annotated[Path | None, typer.Option("--config", help=paths.CONFIG_HELP, show_default=False)] = None,
    worker_id: Annotated[str | None, typer.Option("--worker-id", envvar="CAMERA_HUB_WORKER_ID",
                                                  help="Default: host-pid")] = None,
    redis_url: Annotated[str | None, typer.Option("--redis-url", envvar="CAMERA_HUB_REDIS_URL",
                                                  help="Default: settings.redis.url")] = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Redis key prefix")] = None,
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", help="Serve /metrics here")] = None,
    cameras: Annotated[int | None, typer.Option("--cameras", help="Only the first N cameras")] = None,
    stats_json: Annotated[Path | None, typer.Option("--stats-json", help="Write counters here on exit")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Snapshots, clips and the alert spool "
                                                  "(default: settings.alerts.data_dir)")] = None,
    ingest_only: Annotated[bool, typer.Option("--ingest-only", help="Only ingest: no detector, rules or alerts "
                                              "(for capacity tests)")] = False,
    log_level: Annotated[str, typer.Option("--log-level")] = "INFO",
    models: Annotated[Path | None, typer.Option("--models", help=paths.MODELS_HELP, show_default=False)] = None,
    live_secret: Annotated[str | None, typer.Option("--live-secret", envvar="CAMERA_HUB_LIVE_SECRET",
                                                    help="Live view: the secret shared with the API (prefer the "
                                                    "environment variable); none: no live view")] = None,
    live_host: Annotated[str | None, typer.Option("--live-host", help="Live view endpoint address for the API "
                                                  "(default: settings.live.host)")] = None,
    live_port: Annotated[int | None, typer.Option("--live-port", help="Live view endpoint port for the API "
                                                  "(default: settings.live.port)")] = None,
    live_advertise: Annotated[str | None, typer.Option("--live-advertise", envvar="CAMERA_HUB_LIVE_ADVERTISE",
                                                       help="Address the API reaches this worker at "
                                                       "(default: settings.live.advertise_host)")] = None,
    ice_addresses: Annotated[str | None, typer.Option("--ice-addresses", envvar="CAMERA_HUB_ICE_ADDRESSES",
                                                      help="Extra ICE host addresses, comma-separated (added "
                                                      "to settings.live.ice_addresses)")] = None,
    ice_udp_ports: Annotated[str | None, typer.Option("--ice-udp-ports", envvar="CAMERA_HUB_ICE_UDP_PORTS",
                                                      help="Bind ICE (live view media) in this UDP port range, "
                                                      "LOW-HIGH (default: settings.live.udp_ports)")] = None,
) -> None:
    """Ingest a shard of the city's cameras: RTSP sources, sampling, packet rings, status, leases."""
    import asyncio
    import json
    import signal

    import redis.asyncio as aioredis

    from camera_hub.config import ConfigError, load_config
    from camera_hub.ingest.worker import Worker
    from camera_hub.redact import mask_url, setup_logging
    from camera_hub.runtime import trim_loop, tune_gc, tune_malloc

    setup_logging(log_level)
    tune_malloc()  # before the camera threads start: their arenas follow it
    config = paths.cli_config(config, exit_code=2)
    paths.cli_models(models)
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    cams = [c for c in cfg.cameras if c.enabled][:cameras]
    wid = worker_id or f"{socket.gethostname()}-{os.getpid()}"
    url = redis_url or cfg.settings.redis.url

    async def main() -> None:
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port)
        client = aioredis.from_url(url)
        try:
            await client.ping()
        except Exception as exc:  # noqa: BLE001
            typer.echo(f"Redis not reachable at {mask_url(url)}: {type(exc).__name__}", err=True)
            raise typer.Exit(3) from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        consumer = planner = evidence = None
        if not ingest_only:
            from camera_hub.analytics.planner import AnalysisPlanner
            from camera_hub.evidence import EvidenceRecorder
            from camera_hub.pipeline import build_consumer

            typer.echo(f"worker {wid}: loading detector {cfg.settings.detector.model}", err=True)
            data = Path(data_dir if data_dir is not None else cfg.settings.alerts.data_dir)
            # per worker: it empties its folder at start
            evidence = EvidenceRecorder(data / "recordings" / re.sub(r"[^A-Za-z0-9_.-]", "_", wid),
                                        lambda cid: w.ring(cid), cfg.settings.evidence)
            consumer = build_consumer(cfg, client, prefix=prefix, data_dir=data_dir, clip_source_for=evidence.source)
            await consumer.start()
            planner = AnalysisPlanner(cfg.settings.analysis, worker=wid)
        w = Worker(cfg, worker_id=wid, redis=client, prefix=prefix, cameras=cams, consumer=consumer, planner=planner,
                   evidence=evidence)
        typer.echo(f"worker {wid}: {len(cams)} cameras in the pool", err=True)
        from camera_hub.live.server import serve_live  # live view (WHEP) of the cameras this worker reads

        live = await serve_live(cfg, w, client, prefix=prefix, secret=live_secret, host=live_host, port=live_port,
                                advertise=live_advertise, ice_addresses=ice_addresses, udp_ports=ice_udp_ports)
        tune_gc()  # the model, config and servers are loaded: freeze them out of the collections
        trimming = asyncio.create_task(trim_loop())
        try:
            await w.run(stop)
        finally:
            trimming.cancel()
            if live is not None:
                await live.stop()
            if consumer is not None:
                await consumer.stop()
            if stats_json is not None:
                stats_json.write_text(json.dumps(w.final_stats or w.stats(with_lags=True)))
            await client.aclose()

    asyncio.run(main())
