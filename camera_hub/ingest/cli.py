"""``camera-hub worker``: one ingest worker process (run several per node, on several nodes)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker(
    config: Annotated[Path, typer.Option("--config", help="City config folder or YAML file")],
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
) -> None:
    """Ingest a shard of the city's cameras: RTSP sources, sampling, packet rings, status, leases."""
    import asyncio
    import json
    import signal

    import redis.asyncio as aioredis

    from camera_hub.config import ConfigError, load_config
    from camera_hub.ingest.worker import Worker
    from camera_hub.redact import mask_url, setup_logging

    setup_logging(log_level)
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
        consumer = planner = None
        if not ingest_only:
            from camera_hub.analytics.planner import AnalysisPlanner
            from camera_hub.pipeline import build_consumer

            typer.echo(f"worker {wid}: loading detector {cfg.settings.detector.model}", err=True)
            consumer = build_consumer(cfg, client, prefix=prefix, data_dir=data_dir,
                                      clip_source_for=lambda cid: w.ring(cid))
            await consumer.start()
            planner = AnalysisPlanner(cfg.settings.analysis, worker=wid)
        w = Worker(cfg, worker_id=wid, redis=client, prefix=prefix, cameras=cams, consumer=consumer, planner=planner)
        typer.echo(f"worker {wid}: {len(cams)} cameras in the pool", err=True)
        try:
            await w.run(stop)
        finally:
            if consumer is not None:
                await consumer.stop()
            if stats_json is not None:
                stats_json.write_text(json.dumps(w.final_stats or w.stats(with_lags=True)))
            await client.aclose()

    asyncio.run(main())
