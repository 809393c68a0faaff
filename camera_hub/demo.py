"""`camera-hub demo`: the whole system on the demo city, under one supervisor.

Starts, as child processes: a private Redis (unless one is given), the camera simulator, the
ingest worker(s) and the API with the operator page. Each part owns its own start and stop
(its own CLI command); this module only writes the runtime config and supervises. Ctrl-C
stops everything in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import typer

from camera_hub import paths
from camera_hub.config import CityConfig, load_config
from camera_hub.redact import mask_text
from camera_hub.sim.demo_city import dump_yaml

DEMO_CONFIG = paths.packaged_demo_city()  # the demo city itself, wherever the command is run from
DEMO_OFFLINE_GRACE_S = 30.0  # shorter than a city's default so the scripted outage shows quickly
OUTAGE_AFTER_S, OUTAGE_S = 20.0, 240.0  # one camera loses power 20 s in, for 4 minutes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def live_subset(cfg: CityConfig, n_community: int) -> set[str]:
    """The cameras the simulator serves: the first N community cameras and every lookout."""
    community = [c.id for c in cfg.cameras if c.kind == "community"][:n_community]
    return set(community) | {c.id for c in cfg.cameras if c.kind == "lookout"}


def write_runtime_config(src: Path, out: Path, *, live: set[str], sim_port: int, redis_url: str,
                         data_dir: Path, api_port: int) -> CityConfig:
    """The demo city as this run sees it: live cameras point at the simulator's port, the rest
    are disabled (counted as not yet connected, so coverage stays honest)."""
    from camera_hub.config import camera_dump

    cfg = load_config(src)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "city.yaml", out / "city.yaml")
    cameras = []
    for cam in cfg.cameras:
        data = camera_dump(cam)
        if cam.id in live:
            data["main_url"] = cam.main_url.with_host("127.0.0.1", sim_port).reveal()
            if cam.sub_url is not None:
                data["sub_url"] = cam.sub_url.with_host("127.0.0.1", sim_port).reveal()
        else:
            data["enabled"] = False
        cameras.append(data)
    (out / "cameras.yaml").write_text(dump_yaml({"cameras": cameras}), encoding="utf-8")
    settings = cfg.settings.model_dump(mode="json")
    settings["redis"]["url"] = redis_url
    settings["alerts"]["data_dir"] = str(data_dir)
    settings["api"]["port"] = api_port
    settings["alerts"]["offline_grace_s"] = DEMO_OFFLINE_GRACE_S
    (out / "settings.yaml").write_text(dump_yaml({"settings": settings}), encoding="utf-8")
    return load_config(out)


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: asyncio.subprocess.Process | None = None
    tail: list[str] = field(default_factory=list)


class Supervisor:
    """Runs child processes, prefixes their output, and stops them all when one dies or on Ctrl-C."""

    def __init__(self, quiet: Sequence[str] = ()) -> None:
        self.children: list[Child] = []
        self.quiet = set(quiet)  # children whose output is only kept for a failure report
        self.stopping = False

    async def start(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv)
        child.proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only the supervisor; it stops children in order
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.children.append(child)
        asyncio.create_task(self._pump(child))
        return child

    async def _pump(self, child: Child) -> None:
        assert child.proc is not None and child.proc.stdout is not None
        async for raw in child.proc.stdout:
            line = mask_text(raw.decode(errors="replace").rstrip())
            child.tail = (child.tail + [line])[-30:]
            if child.name not in self.quiet:
                typer.echo(f"[{child.name}] {line}")

    def latest(self, name: str) -> Child:
        """The child started under ``name`` (after :meth:`restart`, the new process)."""
        return next(c for c in reversed(self.children) if c.name == name)

    async def restart(self, name: str, sig: signal.Signals = signal.SIGTERM, down_s: float = 0.0) -> Child:
        """Send ``sig`` to the child, wait for it to exit, ``down_s`` more, then start it again with
        the same command line (same ports, ids and folders)."""
        old = self.latest(name)
        if old.proc is not None and old.proc.returncode is None:
            old.proc.send_signal(sig)
            await old.proc.wait()
        await asyncio.sleep(down_s)
        new = await self.start(name, old.argv)
        self.children.remove(new)  # in the old one's place: stop() still goes in reverse start order
        self.children[self.children.index(old)] = new
        return new

    async def watch(self) -> str | None:
        """Return the name of the first child that exits (None while stopping)."""
        waits = {asyncio.create_task(c.proc.wait()): c for c in self.children if c.proc}
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            if task not in done:
                task.cancel()
        return None if self.stopping else waits[next(iter(done))].name

    async def stop(self, grace_s: float = 10.0) -> None:
        self.stopping = True
        for child in reversed(self.children):
            proc = child.proc
            if proc is None or proc.returncode is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace_s)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def wait_http(url: str, limit_s: float, what: str, child: Child) -> None:
    deadline = time.monotonic() + limit_s
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if child.proc is not None and child.proc.returncode is not None:
                raise RuntimeError(f"{what} exited with code {child.proc.returncode}:\n" + "\n".join(child.tail))
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code < 500:
                    return
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{what} did not answer at {url} within {limit_s:.0f} s:\n" + "\n".join(child.tail))


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "camera_hub.cli", *args]


async def start_private_redis(sup: Supervisor, data_dir: Path, *, aof: str | None = None) -> str:
    """A redis-server under ``sup`` (child ``redis``) keeping its files in DATA_DIR/redis; its URL.
    ``aof``: None keeps nothing on disk (a demo starts afresh); ``everysec`` or ``always`` turns the
    append-only file on with that fsync policy, so a restart on the same port and folder reloads
    everything (``Supervisor.restart("redis")``, then :func:`wait_redis`)."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server not found on PATH. Install it (Debian/Ubuntu: sudo apt-get install "
                           "redis-server; scripts/setup.sh does) or pass --redis-url redis://HOST:PORT/0")
    port = free_port()
    (data_dir / "redis").mkdir(parents=True, exist_ok=True)
    persist = ["--appendonly", "no"] if aof is None else ["--appendonly", "yes", "--appendfsync", aof]
    child = await sup.start("redis", [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", *persist,
                                      "--dir", str(data_dir / "redis")])
    url = f"redis://127.0.0.1:{port}/0"
    await wait_redis(url, child)
    return url


async def wait_redis(url: str, child: Child, limit_s: float = 10.0) -> None:
    """Until the Redis that ``child`` runs answers PING (after loading its append-only file)."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    deadline = time.monotonic() + limit_s
    try:
        while time.monotonic() < deadline:
            if child.proc is not None and child.proc.returncode is not None:
                raise RuntimeError("redis-server exited:\n" + "\n".join(child.tail))
            with contextlib.suppress(Exception):
                await client.ping()
                return
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    raise RuntimeError(f"private redis-server did not answer within {limit_s:.0f} s")


async def create_demo_login(cfg: CityConfig, user: str, password: str) -> None:
    """The demo's admin: a password for the page's login form and no API token (logins last
    settings.api.token_ttl_h; a CLI token would outlive the demo by a year)."""
    import redis.asyncio as aioredis

    from camera_hub.api.auth import Auth

    client = aioredis.from_url(cfg.settings.redis.url)
    try:
        auth = Auth(client, cfg.settings.redis.prefix)
        outcome = await auth.add_user(user, "admin", password)
        await auth.audit("demo", "user_add", user, detail=f"role=admin {outcome}")
    finally:
        await client.aclose()


async def remove_demo_login(cfg: CityConfig, user: str) -> None:
    """Remove the demo's admin and revoke its logins: on a Redis given with --redis-url they would
    outlive the demo, with a password printed on the console."""
    import redis.asyncio as aioredis

    from camera_hub.api.auth import remove_user

    client = aioredis.from_url(cfg.settings.redis.url)
    try:
        await remove_user(client, cfg.settings.redis.prefix, user)
    finally:
        await client.aclose()


async def scripted_outage(control_port: int, camera_id: str, after_s: float = OUTAGE_AFTER_S,
                          duration_s: float = OUTAGE_S) -> None:
    """Cut one simulated camera off (connections dropped, new ones refused) for the offline alert."""
    await asyncio.sleep(after_s)
    async with httpx.AsyncClient(timeout=5.0) as client:
        with contextlib.suppress(httpx.HTTPError):
            await client.post(f"http://127.0.0.1:{control_port}/cameras/{camera_id}/fault",
                              json={"kind": "restart", "duration_s": duration_s})


def outage_camera(live: set[str]) -> str:
    """The live community camera the scripted outage cuts off (the last one)."""
    return [c for c in sorted(live) if c.startswith("cam-")][-1]


@dataclass(frozen=True)
class DemoOptions:
    config: Path | None = None  # None: the search order of camera_hub.paths (ends at the packaged demo city)
    cameras: int = 1000  # every community camera of the demo city (with the 4 lookouts: 1,004)
    workers: int = 1
    api_port: int = 8080
    redis_url: str | None = None
    data_dir: Path = Path("data/demo")
    user: str = "demo"
    password: str = "demo-password"
    open_browser: bool = True
    worker_stats: bool = False  # each worker writes its counters to DATA_DIR/workerN-stats.json on exit
    models: Path | None = None  # the workers' --models folder (camera_hub.paths)
    redis_aof: str | None = None  # the private Redis's append-only fsync policy (everysec, always); None: off


@dataclass(frozen=True)
class System:
    """A running demo system: what a client needs to reach it."""

    cfg: CityConfig  # the runtime config (live cameras point at the simulator, the rest disabled)
    live: set[str]
    api_url: str  # http://host:port (no trailing slash)
    control_port: int  # the simulator's control API (faults, ground truth)
    metrics_urls: list[str]  # one per worker


async def start_system(sup: Supervisor, opts: DemoOptions, say: Callable[[str], None] = typer.echo) -> System:
    """Private Redis (unless one is given), simulator, worker(s) and API under ``sup``, each waited
    for, then the login ``opts.user``. Raises RuntimeError when a part does not come up."""
    data_dir = opts.data_dir.resolve()
    say("demo: starting Redis" if opts.redis_url is None else "demo: using the given Redis")
    redis_url = opts.redis_url or await start_private_redis(sup, data_dir, aof=opts.redis_aof)
    try:
        src_path = paths.find_config(opts.config).path
    except paths.NotFound as exc:
        raise RuntimeError(str(exc)) from None
    src = load_config(src_path)
    live = live_subset(src, opts.cameras)
    sim_port, control_port = free_port(), free_port()
    runtime_dir = data_dir / "config"
    cfg = write_runtime_config(src_path, runtime_dir, live=live, sim_port=sim_port, redis_url=redis_url,
                               data_dir=data_dir, api_port=opts.api_port)
    say(f"demo: {len(live)} live cameras of {len(cfg.cameras)} in the registry (the rest count as not yet connected)")
    say("demo: starting the camera simulator (the first run renders and encodes the scenes: ~1 min)")
    sim = await sup.start("sim", cli_argv("sim", "--config", str(runtime_dir), "--cameras", str(opts.cameras),
                                          "--port", str(sim_port), "--control-port", str(control_port)))
    await wait_http(f"http://127.0.0.1:{control_port}/cameras", 900, "the simulator", sim)
    say("demo: starting the ingest worker(s) and loading the detector")
    # live view (WHEP): the workers and the API share a secret; the children inherit it from here
    os.environ.setdefault("CAMERA_HUB_LIVE_SECRET", secrets.token_urlsafe(24))
    metrics_urls = []
    for i in range(opts.workers):
        metrics_port = free_port()
        stats = ["--stats-json", str(data_dir / f"worker{i + 1}-stats.json")] if opts.worker_stats else []
        models = ["--models", str(opts.models.resolve())] if opts.models is not None else []
        await sup.start(f"worker{i + 1}", cli_argv("worker", "--config", str(runtime_dir),
                                                   "--worker-id", f"demo-{i + 1}",
                                                   "--metrics-port", str(metrics_port), *stats, *models))
        metrics_urls.append(f"http://127.0.0.1:{metrics_port}/metrics")
    api = await sup.start("api", cli_argv("api", "--config", str(runtime_dir)))
    api_url = f"http://{cfg.settings.api.host}:{cfg.settings.api.port}"
    await wait_http(api_url + "/healthz", 120, "the API", api)
    await create_demo_login(cfg, opts.user, opts.password)
    return System(cfg, live, api_url, control_port, metrics_urls)


async def run_demo(opts: DemoOptions, ready: asyncio.Event | None = None) -> int:
    """Bring the demo up, wait until a child exits or we are told to stop; return an exit code."""
    sup = Supervisor(quiet=("redis",))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    system: System | None = None
    try:
        system = await start_system(sup, opts)
        url = system.api_url + "/"
        typer.echo("")
        typer.echo(f"  Camera Hub demo is up: {url}")
        typer.echo(f"  log in as {opts.user!r} with password {opts.password!r}  (Ctrl-C stops everything)")
        typer.echo(f"  Prometheus metrics: {url}metrics " + " ".join(system.metrics_urls))
        typer.echo("  scripted vending, crowding and tamper episodes raise alerts within the first minutes")
        typer.echo("")
        if opts.open_browser and (os.environ.get("DISPLAY") or sys.platform == "darwin"):
            import webbrowser

            webbrowser.open(url)
        cut = outage_camera(system.live)
        outage = asyncio.create_task(scripted_outage(system.control_port, cut))
        typer.echo(f"  camera {cut} will go offline {OUTAGE_AFTER_S:.0f} s from now (scripted outage)")
        if ready is not None:
            ready.set()
        watcher = asyncio.create_task(sup.watch())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({watcher, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if watcher.done() and (dead := watcher.result()) is not None:
            child = next(c for c in sup.children if c.name == dead)
            typer.echo(f"demo: {dead} exited unexpectedly; last output:\n" + "\n".join(child.tail), err=True)
            return 1
        stopper.cancel()
        outage.cancel()
        return 0
    except RuntimeError as exc:
        typer.echo(f"demo: {mask_text(str(exc))}", err=True)
        return 1
    finally:
        typer.echo("demo: stopping")
        await sup.stop()
        if system is not None and opts.redis_url is not None:  # a private Redis goes with everything in it
            with contextlib.suppress(Exception):
                await remove_demo_login(system.cfg, opts.user)


CAMERAS_PER_WORKER = 500  # one worker process's share on a 2-core machine (benchmarks/README.md, City scale)


def default_workers(cameras: int, cores: int | None = None) -> int:
    """One worker process per CAMERAS_PER_WORKER live cameras, at most one per core: a worker's
    Python threads share one GIL, so a second process on the second core more than doubled the
    analysis at 1,004 cameras; more processes than cores only add their memory."""
    cores = cores or os.cpu_count() or 1
    return max(1, min(cores, math.ceil(cameras / CAMERAS_PER_WORKER)))


def demo(
    config: Path = typer.Option(None, "--config", help=paths.CONFIG_HELP, show_default=False),
    cameras: int = typer.Option(1000, "--cameras", min=1,
                                 help="Community cameras served live (plus the 4 lookouts); default: all of them."),
    workers: int = typer.Option(None, "--workers", min=1, show_default=False,
                                help="Ingest worker processes; default: one per 500 live cameras, at most one "
                                     "per core (each has its own GIL: docs/operations.md, Sizing)."),
    port: int = typer.Option(8080, "--port", help="API and operator page port."),
    redis_url: str = typer.Option(None, "--redis-url", envvar="CAMERA_HUB_REDIS_URL",
                                  help="Use this Redis instead of starting a private one."),
    data_dir: Path = typer.Option(Path("data/demo"), "--data-dir", help="Runtime config, snapshots and clips."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open a browser."),
    models: Path = typer.Option(None, "--models", help=paths.MODELS_HELP, show_default=False),
) -> None:
    """Run the whole system on the demo city: simulator, worker(s), API and operator page."""
    config = paths.cli_config(config)
    paths.cli_models(models, exit_code=1)
    opts = DemoOptions(config=config, cameras=cameras, workers=workers or default_workers(cameras), api_port=port,
                       redis_url=redis_url, data_dir=data_dir, open_browser=not no_browser, models=models)
    raise typer.Exit(asyncio.run(run_demo(opts)))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
