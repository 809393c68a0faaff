"""``camera-hub users add`` and ``camera-hub api``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from camera_hub import paths

users_app = typer.Typer(help="API users and tokens.", no_args_is_help=True)


def _config(path: Path | None):  # noqa: ANN202
    from camera_hub.config import ConfigError, load_config

    path = paths.cli_config(path)
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="User name."),
    role: str = typer.Option("viewer", "--role", help="viewer | operator | analyst | admin"),
    password: bool = typer.Option(False, "--password", help="Also set a password (asked for) for the login form."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
    config: Path = typer.Option(None, "--config", help=paths.CONFIG_HELP, show_default=False),
    redis_url: str = typer.Option(None, "--redis-url", envvar="CAMERA_HUB_REDIS_URL",
                                 help="Redis URL (default: settings.redis.url)."),
    ttl_days: float = typer.Option(365.0, "--ttl-days", help="Token lifetime."),
) -> None:
    """Add or update a user and print a new API token for it (a role or password change revokes its
    other tokens)."""
    import re
    import sys

    from camera_hub.api.auth import ROLES, create_user
    from camera_hub.config import ID_PATTERN

    if role not in ROLES:
        typer.echo(f"unknown role {role!r}; one of {', '.join(ROLES)}", err=True)
        raise typer.Exit(2)
    if not re.match(ID_PATTERN, name):
        typer.echo("user names are letters, digits, '_', '.', '-' (up to 64)", err=True)
        raise typer.Exit(2)
    pw = None
    if password_stdin:
        pw = sys.stdin.readline().rstrip("\n")
    elif password:
        pw = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if pw is not None and len(pw) < 8:
        typer.echo("a password needs at least 8 characters", err=True)
        raise typer.Exit(2)
    cfg = _config(config)
    url = redis_url or cfg.settings.redis.url

    token = _on_redis(url, lambda r: create_user(r, cfg.settings.redis.prefix, name, role, pw,  # type: ignore[arg-type]
                                                 token_ttl_s=ttl_days * 86400))
    typer.echo(token)


def _on_redis(url: str, call: Any) -> Any:
    """Run ``call(redis)`` on a fresh connection; an unreachable Redis exits 1 (URL masked)."""
    import asyncio

    from camera_hub.alerts.store import connect
    from camera_hub.redact import mask_url

    async def run() -> Any:
        r = connect(url)
        try:
            return await call(r)
        finally:
            await r.aclose()

    try:
        return asyncio.run(run())
    except Exception as exc:
        typer.echo(f"cannot reach Redis at {mask_url(url)}: {type(exc).__name__}", err=True)
        raise typer.Exit(1) from None


@users_app.command("remove")
def users_remove(
    name: str = typer.Argument(..., help="User name."),
    config: Path = typer.Option(None, "--config", help=paths.CONFIG_HELP, show_default=False),
    redis_url: str = typer.Option(None, "--redis-url", envvar="CAMERA_HUB_REDIS_URL",
                                 help="Redis URL (default: settings.redis.url)."),
) -> None:
    """Remove a user and revoke every token it holds (exit 1 if there is no such user)."""

    from camera_hub.api.auth import remove_user

    cfg = _config(config)
    url = redis_url or cfg.settings.redis.url

    existed = _on_redis(url, lambda r: remove_user(r, cfg.settings.redis.prefix, name))
    if not existed:
        typer.echo(f"no user {name!r} (any tokens left for it are revoked)", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed {name} and revoked its tokens")


def api(
    config: Path = typer.Option(None, "--config", help=paths.CONFIG_HELP, show_default=False),
    host: str = typer.Option(None, "--host", help="Default: settings.api.host."),
    port: int = typer.Option(None, "--port", help="Default: settings.api.port."),
    redis_url: str = typer.Option(None, "--redis-url", envvar="CAMERA_HUB_REDIS_URL",
                                 help="Redis URL (default: settings.redis.url)."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Snapshots and clips (default: settings.alerts.data_dir)."),
    live_secret: str = typer.Option(None, "--live-secret", envvar="CAMERA_HUB_LIVE_SECRET",
                                    help="Live view: the secret shared with the workers (prefer the environment "
                                    "variable); none: live view answers 503."),
) -> None:
    """Serve the HTTP API and the operator page."""
    from camera_hub.api.app import create_app
    from camera_hub.api.server import build_server
    from camera_hub.redact import setup_logging

    setup_logging()
    cfg = _config(config)
    app = create_app(cfg, redis_url=redis_url, data_dir=data_dir)
    app.state.live_secret = live_secret  # camera_hub/api/live.py
    api_settings = cfg.settings.api
    build_server(app, api_settings, host or api_settings.host, port or api_settings.port).run()


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.command("api")(api)
