"""Commands on the city config: validate, demo-city generate, cameras import/export."""

from __future__ import annotations

from pathlib import Path

import typer

from camera_hub.config import ConfigError, load_config

DEFAULT_CONFIG = Path("config/demo-city")


def validate(config: Path = typer.Argument(DEFAULT_CONFIG, help="City config folder or YAML file.")) -> None:
    """Check a city config; print each problem with file, line and field."""
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        typer.echo(f"{len(exc.issues)} problem(s) in {config}", err=True)
        raise typer.Exit(1) from None
    grids = sum(1 for _ in cfg.grids())
    lookout = sum(c.kind == "lookout" for c in cfg.cameras)
    typer.echo(
        f"{config}: OK — {len(cfg.districts)} districts, {grids} grids, {len(cfg.patrol_zones)} patrol zones, "
        f"{len(cfg.cameras) - lookout} community + {lookout} lookout cameras"
    )


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
