"""``camera-hub sim``: serve a city's cameras from the simulator until Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from camera_hub import paths

if TYPE_CHECKING:
    from camera_hub.config import CityConfig
    from camera_hub.sim.rtsp_server import SimCameraSpec


def plan(cfg: CityConfig, cameras: int, scene: str | None = None) -> tuple[list[SimCameraSpec],
                                                                            tuple[str, str] | None, bool]:
    """The first ``cameras`` community cameras plus every lookout, each with its scene and loop
    offset; the credentials found in their URLs; whether those credentials differ between cameras."""
    from urllib.parse import unquote, urlsplit

    from camera_hub.sim.rtsp_server import SimCameraSpec
    from camera_hub.sim.scenes import camera_offset_s, scene_effects, scene_for_camera

    community = [c for c in cfg.cameras if c.kind == "community" and c.enabled][:cameras]
    chosen = community + [c for c in cfg.cameras if c.kind == "lookout" and c.enabled]
    creds: set[tuple[str, str]] = set()
    for cam in chosen:
        for url in (cam.main_url, cam.sub_url):
            parts = urlsplit(url.reveal()) if url is not None else None
            if parts is not None and parts.username is not None:
                creds.add((unquote(parts.username), unquote(parts.password or "")))
    scenes = {c.id: scene or scene_for_camera(c) for c in chosen}
    specs = [SimCameraSpec(c.id, scenes[c.id], camera_offset_s(c.id, effects=scene_effects(scenes[c.id])))
             for c in chosen]
    return specs, (sorted(creds)[0] if creds else None), len(creds) > 1


def sim(
    config: Path = typer.Option(None, "--config", help=paths.CONFIG_HELP, show_default=False),
    cameras: int = typer.Option(40, "--cameras", min=0, help="First N community cameras (plus every lookout)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8554, "--port", min=0, max=65535, help="RTSP port (0: any free port)."),
    control_port: int = typer.Option(8555, "--control-port", min=0, max=65535, help="HTTP control API port."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Encoded scenes cache [~/.cache/camera-hub/sim]."),
    scene: str | None = typer.Option(None, "--scene", help="Play this scene on every camera (e.g. 'smoke')."),
    encode_main: bool = typer.Option(False, "--encode-main", help="Encode every main stream now (lookout mains "
                                     "always are; others otherwise on first request, which may time out once)."),
    log_level: str = typer.Option("INFO", "--log-level"),
) -> None:
    """Simulated RTSP cameras for a city config: a scene per camera (from its zones' rules),
    credentials from the cameras' URLs. Scenes are encoded once (progress shown) and cached."""
    import asyncio
    import logging
    import signal

    from camera_hub.config import ConfigError, load_config
    from camera_hub.redact import mask_url, setup_logging
    from camera_hub.sim.rtsp_server import SimServer

    setup_logging(log_level)
    logging.getLogger("camera_hub.sim.encode").setLevel(logging.WARNING)  # the progress lines say it
    config = paths.cli_config(config)
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(1) from None
    specs, credentials, mixed = plan(cfg, cameras, scene)
    if not specs:
        typer.echo("no cameras to serve", err=True)
        raise typer.Exit(1)
    if mixed:
        typer.echo("warning: cameras use different credentials; the simulator accepts one set only", err=True)

    last: dict[str, int] = {}

    def progress(label: str, done: int, total: int) -> None:
        pct = done * 100 // total
        if label not in last or pct // 10 != last[label] // 10:
            last[label] = pct
            typer.echo(f"  encoding {label}: {pct:3d}% ({done}/{total} frames)", err=True)

    server = SimServer(specs, host=host, port=port, control_port=control_port, credentials=credentials,
                       cache_dir=cache_dir, eager_main=lambda s: encode_main or s.scene == "lookout",
                       progress=progress)

    async def run() -> None:
        # SIGINT and SIGTERM stop it through the loop: as a container's PID 1 SIGTERM has no default
        # action, and a parent that ignores SIGINT would pass that on (Python then never raises
        # KeyboardInterrupt)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        n_scenes = len({s.scene for s in specs})
        typer.echo(f"preparing {len(specs)} cameras, {n_scenes} scenes (encodes are cached after the first run)")
        await server.start()
        try:
            scenes: dict[str, int] = {}
            for s in specs:
                scenes[s.scene] = scenes.get(s.scene, 0) + 1
            typer.echo(f"serving {len(specs)} cameras on rtsp://{host}:{server.port}/<camera>/<main|sub>")
            typer.echo("  scenes: " + ", ".join(f"{k} x{v}" for k, v in sorted(scenes.items())))
            for s in specs[:3] + ([specs[-1]] if len(specs) > 3 else []):
                typer.echo(f"  {s.camera_id}: {mask_url(server.url(s.camera_id, 'sub'))} ({s.scene})")
            if server.control_port is not None:
                typer.echo(f"control API: http://{host}:{server.control_port}/cameras (faults, log, ground truth)")
            typer.echo("Ctrl-C to stop", err=False)
            await stop.wait()
        finally:
            await server.stop()

    asyncio.run(run())
    typer.echo("stopped")


def register(app: typer.Typer) -> None:
    app.command("sim")(sim)
