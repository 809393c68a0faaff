"""Commands on the city config: validate, demo-city generate, cameras import/export."""

from __future__ import annotations

from pathlib import Path

import typer

from camera_hub import paths
from camera_hub.config import CONFIG_FILES, CityConfig, ConfigError, load_config, load_files


def validate(config: Path = typer.Argument(None, help=paths.CONFIG_HELP, show_default=False)) -> None:
    """Check a city config; print each problem with file, line and field."""
    config = paths.cli_config(config, option="CONFIG")
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


demo_city_app = typer.Typer(help="The built-in demo city.", no_args_is_help=True)
cameras_app = typer.Typer(help="Import or export the camera list as CSV.", no_args_is_help=True)


@demo_city_app.command("generate")
def demo_city_generate(
    out: Path = typer.Option(paths.LOCAL_CONFIG, "--out",
                             help="Folder to write city.yaml, cameras.yaml, settings.yaml."),
    seed: int = typer.Option(None, help="Random seed (the committed demo city uses the default)."),
) -> None:
    """Generate the demo city (same bytes on every machine for the same seed)."""
    from camera_hub.sim import demo_city

    files = demo_city.write(out, demo_city.SEED if seed is None else seed, progress=typer.echo)
    for f in files:
        typer.echo(f"wrote {f}")


@cameras_app.command("export")
def cameras_export(
    csv_path: Path = typer.Argument(..., help="CSV file to write ('-' for standard output)."),
    config: Path = typer.Option(None, "--config", help=paths.CONFIG_HELP, show_default=False),
    include_passwords: bool = typer.Option(False, help="Write camera passwords (masked by default)."),
) -> None:
    """Write the camera list as CSV."""
    from camera_hub.camera_csv import export_csv

    config = paths.cli_config(config)
    cfg = _load_or_exit(config)
    text = export_csv(cfg.cameras, include_passwords=include_passwords)
    if str(csv_path) == "-":
        typer.echo(text, nl=False)
    else:
        csv_path.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {len(cfg.cameras)} cameras to {csv_path}")


@cameras_app.command("import")
def cameras_import(
    csv_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV file with the camera list."),
    config: Path = typer.Option(None, "--config", show_default=False,
                                help="City config folder whose cameras.yaml to replace (default: $CAMERA_HUB_CONFIG, "
                                     "else ./config/demo-city; never the packaged demo city)."),
) -> None:
    """Replace the config's cameras.yaml with the cameras in a CSV file, after validating both."""
    from camera_hub.camera_csv import import_csv
    from camera_hub.sim.demo_city import write_cameras

    config = paths.cli_config(config, writable=True)
    if not config.is_dir():
        raise typer.BadParameter("must be a config folder holding cameras.yaml", param_hint="--config")
    try:
        cameras = import_csv(csv_path)
    except ConfigError as exc:
        _print_issues(exc, csv_path)
        raise typer.Exit(1) from None
    cfg = _load_or_exit(config)
    merged = cfg.model_copy(update={"cameras": cameras})
    target = config / "cameras.yaml"
    tmp = config / "cameras.imported.yaml"
    write_cameras(merged, tmp)
    try:  # the whole config must still load (grids exist, ids unique) before we replace the file
        load_files([config / n if n != "cameras.yaml" else tmp for n in CONFIG_FILES if n == "cameras.yaml"
                    or (config / n).exists()])
    except ConfigError as exc:
        tmp.unlink()
        _print_issues(exc, config)
        raise typer.Exit(1) from None
    tmp.replace(target)
    typer.echo(f"imported {len(cameras)} cameras into {target}")


def _print_issues(exc: ConfigError, where: Path) -> None:
    for issue in exc.issues:
        typer.echo(str(issue), err=True)
    typer.echo(f"{len(exc.issues)} problem(s) in {where}", err=True)


def _load_or_exit(config: Path) -> CityConfig:
    try:
        return load_config(config)
    except ConfigError as exc:
        _print_issues(exc, config)
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.add_typer(demo_city_app, name="demo-city")
    app.add_typer(cameras_app, name="cameras")
