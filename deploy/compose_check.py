#!/usr/bin/env python3
"""Build the image and run the compose stack for real under Podman, check it, take it down.

    .venv/bin/python deploy/compose_check.py     # as root; README, Deployment: what it printed here

Phases, each timed:

1. base images, made locally: no container registry is reachable on this project's machines, so
   Debian bookworm root file systems come from the Debian mirror (mmdebstrap) and are imported
   into Podman: Debian's Python 3.11 with a venv on PATH (for python:3.11-slim-bookworm),
   redis-server (for redis:7-alpine) and prometheus (for prom/prometheus). Kept between runs,
   remade when their recipe below changes. The compose file takes them through
   CAMERA_HUB_BASE_IMAGE, CAMERA_HUB_REDIS_IMAGE and CAMERA_HUB_PROMETHEUS_IMAGE. Then a probe:
   where Podman cannot run a container as configured (this project's sandbox: no
   CAP_SYS_RESOURCE, so no rlimit can be raised; crun fails on its hybrid cgroups), the rest runs
   with CONTAINERS_CONF=deploy/podman/containers.conf, and where a container's open-files limit
   cannot be raised to the API's 65,536, with deploy/podman/sandbox.yml added to the compose file.
2. the application image: `compose build` of deploy/docker-compose.yml (the Dockerfile; its
   `pip install .` reaches PyPI from inside the build).
3. a city for this run: the first N community cameras of the demo city pointed at the compose
   service `sim`, one more pointed there that the simulator does not serve (it is down: an
   offline alert, and data for the "cameras down" panel), the rest disabled.
4. `compose --profile sim up -d redis api worker sim prometheus` with CAMERA_HUB_WORKERS=2, under
   the project name camera-hub-check, on the project's own Podman network, host ports chosen
   free. Grafana is left out: Debian has no package for it; every query of its dashboards is run
   against the running Prometheus instead.
5. checks through the published ports: every live camera comes up, the cameras shared by both
   workers; the unserved one is down; an alert arrives in the API and its snapshot is served
   (written by a worker, read by the API: the shared volume); Prometheus scrapes every target (the
   API and both workers, found by DNS), its rules load, the detector ran, every dashboard query
   has data.
6. `compose down -v`, then nothing of the project may be left: no container, pod, network or
   volume. Images are kept (a next run reuses them; `down` leaves images too).

Needs: Debian's podman, runc and mmdebstrap (with netavark, aardvark-dns and iptables), and
podman-compose >= 1.4 from PyPI (Debian 12's 1.0.3 does not scale services); whatever of these is
missing is installed first (apt-get, via sudo when not root; pip into the venv this runs from).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
PROJECT = "camera-hub-check"
SERVICES = ["redis", "api", "worker", "sim", "prometheus"]
WORKERS = 2
# runc: see deploy/podman/containers.conf; netavark + aardvark-dns: the project network and its DNS
# (service names; every worker under one name); iptables: netavark's NAT and published ports
DEBIAN_PACKAGES = ["podman", "runc", "mmdebstrap", "netavark", "aardvark-dns", "iptables"]
STOP_TIMEOUT_S = 20  # `down`'s grace before SIGKILL
MIRROR = os.environ.get("CAMERA_HUB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY = os.environ.get("CAMERA_HUB_DEBIAN_SECURITY", "http://deb.debian.org/debian-security")
SANDBOX_CONF = "deploy/podman/containers.conf"
SANDBOX_COMPOSE = "deploy/podman/sandbox.yml"
PATH_ENV = "PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Base:
    """A Debian bookworm image made with mmdebstrap: packages, customize hooks (run on the host with
    the root file system as $1; {cas}: a folder of the host's own extra CA certificates), and the
    image settings `podman import --change` sets."""

    name: str
    packages: list[str]
    hooks: list[str]
    changes: list[str]

    def recipe(self, cas: list[str]) -> str:
        own_cas = cas if any("{cas}" in h for h in self.hooks) else []
        text = json.dumps([self.packages, self.hooks, self.changes, MIRROR, SECURITY, own_cas])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


BASES = {
    # python:3.11-slim-bookworm has pip and python on PATH and lets pip install into it: a venv does
    # the same on Debian's own Python (which refuses pip installs into the system, PEP 668). It
    # trusts the CAs this host trusts beyond Debian's: where a proxy re-signs TLS (this project's
    # machines), `pip install` in the Dockerfile reaches PyPI through it; pip reads PIP_CERT, not
    # the system store
    "base": Base("localhost/camera-hub-base/python:3.11-bookworm", ["python3", "python3-venv", "ca-certificates"],
                 ['chroot "$1" python3 -m venv /opt/venv',
                  'mkdir -p "$1/usr/local/share/ca-certificates" && cp {cas}/. "$1/usr/local/share/ca-certificates/" -r'
                  ' && chroot "$1" update-ca-certificates'],
                 [f"ENV {PATH_ENV}", "ENV LANG=C.UTF-8", "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
                  'CMD ["python3"]']),
    # as in redis:7-alpine: runs as redis in /data (the compose file's command names redis-server)
    "redis": Base("localhost/camera-hub-base/redis:bookworm", ["redis-server"],
                  ['mkdir -p "$1/data"', 'chroot "$1" chown redis:redis /data'],
                  ["WORKDIR /data", "USER redis", 'CMD ["redis-server"]']),
    # as in prom/prometheus: the binary is the entry point, runs as nobody with its TSDB in
    # /prometheus (Debian's build would put it in /var/lib/prometheus, which is Debian's user's)
    "prometheus": Base("localhost/camera-hub-base/prometheus:bookworm", ["prometheus"],
                       ['mkdir -p "$1/prometheus"', 'chroot "$1" chown nobody:nogroup /prometheus'],
                       ["WORKDIR /prometheus", "USER nobody",
                        'ENTRYPOINT ["/usr/bin/prometheus", "--storage.tsdb.path=/prometheus"]',
                        'CMD ["--config.file=/etc/prometheus/prometheus.yml"]']),
}


@dataclass
class Run:
    timings: dict[str, float] = field(default_factory=dict)
    facts: dict[str, object] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str):  # noqa: ANN201
        say(f"== {name}")
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(time.monotonic() - t0, 1)
            say(f"   {name}: {self.timings[name]} s")


def say(msg: str) -> None:
    print(msg, flush=True)


def sh(argv: list[str], *, env: dict[str, str] | None = None, check: bool = True, quiet: bool = False,
       timeout: float = 1800, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command; its output is shown unless ``quiet`` (then only on failure)."""
    res = subprocess.run(argv, env=env, text=True, capture_output=True, timeout=timeout, input=stdin)
    if not quiet and (res.stdout or res.stderr):
        say((res.stdout + res.stderr).rstrip())
    if check and res.returncode != 0:
        if quiet:
            say((res.stdout + res.stderr)[-4000:].rstrip())
        raise SystemExit(f"failed ({res.returncode}): {' '.join(argv)}")
    return res


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, limit_s: float, probe: Callable[[], object], interval_s: float = 3.0) -> object:
    """Call ``probe`` until it returns something true; fail with its last complaint after ``limit_s``.
    A probe returns a value when done, or None / raises AssertionError with the reason it is not."""
    deadline = time.monotonic() + limit_s
    last = "never probed"
    while time.monotonic() < deadline:
        try:
            got = probe()
            if got:
                return got
            last = "not yet"
        except AssertionError as exc:
            last = str(exc)
        except Exception as exc:  # noqa: BLE001 - a service not answering yet
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(interval_s)
    raise SystemExit(f"{what}: not within {limit_s:.0f} s: {last}")


# ------------------------------------------------------------------ tools and base images
def ensure_tools() -> list[str]:
    """Debian's packages below, podman-compose from PyPI; returns the compose command."""
    missing = [p for p in DEBIAN_PACKAGES
               if "ok installed" not in sh(["dpkg-query", "-W", "-f=${Status}", p], quiet=True, check=False).stdout]
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        say(f"installing from Debian: {' '.join(missing)}")
        sh([*sudo, "apt-get", "update", "-qq"], quiet=True)
        sh([*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
            "--no-install-recommends", *missing], quiet=True)
    here = Path(sys.executable).parent
    exe = shutil.which("podman-compose", path=str(here)) or shutil.which("podman-compose")
    version = sh([exe, "--version"], quiet=True, check=False).stdout if exe else ""
    if not exe or "version 1.0" in version or "version 0." in version:
        say("installing podman-compose (>= 1.4: scales services) from PyPI")
        sh([sys.executable, "-m", "pip", "install", "-q", "podman-compose>=1.4,<2"], quiet=True)
        exe = shutil.which("podman-compose", path=str(here))
    assert exe is not None
    return [exe]


def host_extra_cas() -> list[str]:
    """CA certificates this host trusts that Debian's ca-certificates does not ship (a sandbox's
    TLS proxy, a company CA): the blocks of the system bundle not found in /usr/share/ca-certificates."""
    import re

    pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if not bundle.exists():
        return []
    stock = {"".join(b.split()) for f in Path("/usr/share/ca-certificates").rglob("*.crt")
             for b in pem.findall(f.read_text(errors="replace"))}
    return [b for b in pem.findall(bundle.read_text(errors="replace")) if "".join(b.split()) not in stock]


def image_id(image: str) -> str | None:
    res = sh(["podman", "image", "inspect", "--format", "{{.Id}}", image], quiet=True, check=False)
    return res.stdout.strip() if res.returncode == 0 else None


def image_label(image: str, label: str) -> str | None:
    res = sh(["podman", "image", "inspect", "--format", "{{index .Labels \"" + label + "\"}}", image],
             quiet=True, check=False)
    return res.stdout.strip() if res.returncode == 0 else None


def make_base(base: Base, work: Path, cas: list[str]) -> str:
    """The image ``base`` from the Debian mirror, unless one of the same recipe is there; returns
    what was done."""
    recipe = base.recipe(cas)
    if image_label(base.name, "camera-hub.recipe") == recipe:
        return "kept"
    stem = base.name.rsplit("/", 1)[1].replace(":", "_")
    tar, ca_dir = work / f"{stem}.tar", work / f"{stem}-cas"
    ca_dir.mkdir()
    for i, cert in enumerate(cas):
        (ca_dir / f"host-extra-{i}.crt").write_text(cert + "\n")
    hooks = [f"--customize-hook={h.replace('{cas}', str(ca_dir))}" for h in base.hooks]
    sh(["mmdebstrap", "--variant=minbase", "--include=" + ",".join(base.packages), *hooks,
        "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*.bin",
        "bookworm", str(tar),
        f"deb {MIRROR} bookworm main", f"deb {MIRROR} bookworm-updates main",
        f"deb {SECURITY} bookworm-security main"], quiet=True)
    changes = [*base.changes, f"LABEL camera-hub.recipe={recipe}"]
    sh(["podman", "import", *[a for c in changes for a in ("--change", c)], str(tar), base.name], quiet=True)
    tar.unlink()
    return "made"


def why(res: subprocess.CompletedProcess[str]) -> str:
    """The gist of a failed `podman run`: what follows the runtime's "container init:"."""
    text = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
    return text.split("container init: ")[-1][:160]


def engine_fit(image: str) -> list[str]:
    """Make Podman run containers on this host: with deploy/podman/containers.conf where it cannot
    as it is configured; returns compose files to add (deploy/podman/sandbox.yml where a container's
    open-files limit cannot be raised to the API's 65,536)."""
    probe = sh(["podman", "run", "--rm", image, "true"], quiet=True, check=False)
    if probe.returncode != 0 and "CONTAINERS_CONF" not in os.environ:
        os.environ["CONTAINERS_CONF"] = str(REPO / SANDBOX_CONF)
        say(f"   podman run failed ({why(probe)}): using CONTAINERS_CONF={SANDBOX_CONF}")
        probe = sh(["podman", "run", "--rm", image, "true"], quiet=True, check=False)
    if probe.returncode != 0:
        raise SystemExit(f"podman cannot run a container here: {probe.stderr.strip()}")
    probe = sh(["podman", "run", "--rm", "--ulimit", "nofile=65536:65536", image, "true"], quiet=True, check=False)
    if probe.returncode == 0:
        return []
    say(f"   a container's open-files limit cannot be raised to 65536 here ({why(probe)}): "
        f"adding {SANDBOX_COMPOSE}")
    return ["-f", str(REPO / SANDBOX_COMPOSE)]


# ------------------------------------------------------------------ the city for this run
def write_city(out: Path, n: int) -> tuple[list[str], str]:
    """The demo city with its first ``n`` community cameras at the simulator (host ``sim``), one
    more pointed there that the simulator does not serve, the rest disabled. Returns (live, dead)."""
    sys.path.insert(0, str(REPO))
    from camera_hub.config import camera_dump, load_config
    from camera_hub.sim.demo_city import dump_yaml

    src = REPO / "config" / "demo-city"
    cfg = load_config(src)
    community = [c for c in cfg.cameras if c.kind == "community" and c.enabled]
    # `camera-hub sim --cameras n` serves the first n enabled community cameras: the next one is not served
    live, dead = [c.id for c in community[:n]], community[n].id
    cameras = []
    for cam in cfg.cameras:
        data = camera_dump(cam)
        if cam.id in live or cam.id == dead:
            data["main_url"] = cam.main_url.with_host("sim", 8554).reveal()
            if cam.sub_url is not None:
                data["sub_url"] = cam.sub_url.with_host("sim", 8554).reveal()
        else:
            data["enabled"] = False
        cameras.append(data)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "city.yaml", out / "city.yaml")
    (out / "cameras.yaml").write_text(dump_yaml({"cameras": cameras}), encoding="utf-8")
    settings = cfg.settings.model_dump(mode="json")
    settings["alerts"]["offline_grace_s"] = 30.0  # the dead camera's alert within a minute, not two
    (out / "settings.yaml").write_text(dump_yaml({"settings": settings}), encoding="utf-8")
    # the containers run as uid 10001 (the Dockerfile's hub): the folder must be readable to others
    out.chmod(0o755)
    for f in out.iterdir():
        f.chmod(0o644)
    load_config(out)  # valid as written
    return live, dead


# ------------------------------------------------------------------ leftovers
def leftovers() -> dict[str, list[str]]:
    """Everything of the project Podman still has: by compose label and by name prefix."""
    found: dict[str, list[str]] = {}
    labels = [f"label=io.podman.compose.project={PROJECT}", f"label=com.docker.compose.project={PROJECT}"]
    kinds = {"containers": (["podman", "ps", "-a"], "{{.Names}}"),
             "pods": (["podman", "pod", "ps"], "{{.Name}}"),
             "networks": (["podman", "network", "ls"], "{{.Name}}"),
             "volumes": (["podman", "volume", "ls"], "{{.Name}}")}
    for kind, (argv, fmt) in kinds.items():
        names: set[str] = set()
        for label in labels:
            res = sh([*argv, "--filter", label, "--format", fmt], quiet=True, check=False)
            names |= set(res.stdout.split())
        every = sh([*argv, "--format", fmt], quiet=True, check=False).stdout.split()
        names |= {n for n in every if n.replace("-", "_").startswith(PROJECT.replace("-", "_"))
                  or n == f"pod_{PROJECT}"}
        if names:
            found[kind] = sorted(names)
    return found


def killed_since(since: str) -> list[str]:
    """Containers of the project that died with exit code 137 (SIGKILL after the stop timeout)."""
    res = sh(["podman", "events", "--stream=false", "--since", since, "--filter", "type=container",
              "--filter", "event=died", "--format", "json"], quiet=True, check=False)
    killed = []
    for line in res.stdout.splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if event.get("Name", "").startswith(f"{PROJECT}_") and event.get("ContainerExitCode") == 137:
                killed.append(event["Name"].removeprefix(f"{PROJECT}_"))
    return sorted(killed)


def show_logs() -> None:
    names = sh(["podman", "ps", "-a", "--filter", f"label=io.podman.compose.project={PROJECT}", "--format",
                "{{.Names}} {{.Status}}"], quiet=True, check=False).stdout.splitlines()
    for line in names:
        name = line.split()[0]
        say(f"---- {line}")
        res = sh(["podman", "logs", "--tail", "25", name], quiet=True, check=False)
        say((res.stdout + res.stderr).rstrip())


# ------------------------------------------------------------------ checks on the running stack
def checks(run: Run, api: str, prom: str, token: str, live: list[str], dead: str) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}

    with run.phase("cameras up"):
        def cameras_up() -> dict | None:
            body = httpx.get(f"{api}/api/v1/cameras", headers=headers, timeout=10).json()
            by_id = {c["id"]: c for c in body["items"]}
            states = {cid: (by_id[cid]["status"] or {}).get("state", "never") for cid in [*live, dead]}
            not_up = {c: s for c, s in states.items() if c in live and s != "up"}
            assert not not_up, f"not up: {not_up}"
            assert states[dead] == "down", f"the unserved camera {dead} is {states[dead]}"
            workers = {by_id[c]["status"]["worker"] for c in live}
            assert len(workers) == WORKERS, f"cameras held by {sorted(workers)}"
            return {"states": body["states"], "workers": sorted(workers)}

        got = wait_for("every live camera up, on both workers", 600, cameras_up)
        run.facts["cameras"] = got
        say(f"   {len(live)} live cameras up on workers {got['workers']}; {dead} down; states {got['states']}")

    with run.phase("first alert"):
        def an_alert() -> list | None:
            res = httpx.get(f"{api}/api/v1/alerts", params={"limit": 200}, headers=headers, timeout=10)
            items = res.json()["items"]
            return [a for a in items if a["snapshot_url"]] or None

        alerts = wait_for("an alert with a snapshot in the API", 420, an_alert)
        first = alerts[-1]
        snap = httpx.get(f"{api}/api/v1/alerts/{first['id']}/snapshot", headers=headers, timeout=10)
        assert snap.status_code == 200 and snap.content[:2] == b"\xff\xd8", f"snapshot: {snap.status_code}"
        everything = httpx.get(f"{api}/api/v1/alerts", params={"limit": 200}, headers=headers, timeout=10).json()
        run.facts["alert types"] = sorted({a["type"] for a in everything["items"]})
        say(f"   alert {first['id']} ({first['type']} on {first['camera_id']}), snapshot {len(snap.content)} bytes; "
            f"types so far: {run.facts['alert types']}")

    with run.phase("prometheus targets"):
        def targets_up() -> list | None:
            active = httpx.get(f"{prom}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
            jobs = [(t["labels"]["job"], t["labels"]["instance"], t["health"]) for t in active]
            assert sum(j == "camera-hub-api" for j, _, _ in jobs) == 1, f"targets: {jobs}"
            assert sum(j == "camera-hub-worker" for j, _, _ in jobs) == WORKERS, f"targets: {jobs}"
            assert all(h == "up" for _, _, h in jobs), f"targets: {jobs}"
            return jobs

        jobs = wait_for("Prometheus scraping the API and every worker", 180, targets_up)
        groups = httpx.get(f"{prom}/api/v1/rules", timeout=10).json()["data"]["groups"]
        bad = [r["name"] for g in groups for r in g["rules"] if r.get("health") == "err"]
        assert groups and not bad, f"rule groups {len(groups)}, failing rules {bad}"
        run.facts["targets"] = jobs
        say(f"   targets up: {jobs}; {sum(len(g['rules']) for g in groups)} rules loaded")

    with run.phase("dashboard queries"):
        queries = [(panel["title"], t["expr"])
                   for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
                   for panel in json.loads(path.read_text())["panels"] for t in panel.get("targets", [])]
        queries.append(("detector ran", 'sum(camera_hub_inference_batch_size_count) > 0'))

        def all_have_data() -> bool:
            empty = []
            for title, expr in queries:
                res = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10).json()
                assert res["status"] == "success", f"{title}: {expr}: {res}"
                if not res["data"]["result"]:
                    empty.append(title)
            assert not empty, f"no data yet: {empty}"
            return True

        wait_for("every dashboard query with data", 240, all_have_data, interval_s=5)
        say(f"   {len(queries)} queries, each with data")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", type=int, default=6, help="live simulated cameras (one more is left down)")
    ap.add_argument("--keep-up", action="store_true", help="leave the stack running (then: compose down -v)")
    args = ap.parse_args()
    run = Run()
    t_all = time.monotonic()
    compose_cmd = ensure_tools()
    say(sh(["podman", "--version"], quiet=True).stdout.strip() + "; " +
        sh([*compose_cmd, "--version"], quiet=True).stdout.strip().splitlines()[0])
    if leftovers():
        raise SystemExit(f"project {PROJECT} exists already: {leftovers()} (take it down first)")

    work = Path(tempfile.mkdtemp(prefix="camera-hub-compose-"))
    try:
        with run.phase("base images"):
            from concurrent.futures import ThreadPoolExecutor

            cas = host_extra_cas()
            with ThreadPoolExecutor(len(BASES)) as pool:  # mostly downloads: side by side
                done = pool.map(lambda b: make_base(b, work, cas), BASES.values())
                for base, what in zip(BASES.values(), done, strict=True):
                    say(f"   {base.name}: {what}")
            overrides = engine_fit(BASES["base"].name)

        city = work / "city"
        live, dead = write_city(city, args.cameras)
        api_port, prom_port = free_port(), free_port()
        env = {**os.environ,
               "CAMERA_HUB_REDIS_PASSWORD": secrets.token_hex(16),
               "CAMERA_HUB_LIVE_SECRET": secrets.token_urlsafe(24),
               "CAMERA_HUB_CONFIG": str(city),
               "CAMERA_HUB_SIM_CAMERAS": str(args.cameras),
               "CAMERA_HUB_WORKERS": str(WORKERS),
               "CAMERA_HUB_API_PORT": str(api_port),
               "CAMERA_HUB_PROMETHEUS_PORT": str(prom_port),
               "CAMERA_HUB_BASE_IMAGE": BASES["base"].name,
               "CAMERA_HUB_REDIS_IMAGE": BASES["redis"].name,
               "CAMERA_HUB_PROMETHEUS_IMAGE": BASES["prometheus"].name}
        compose = [*compose_cmd, "-f", str(COMPOSE_FILE), *overrides, "-p", PROJECT, "--profile", "sim"]

        with run.phase("image build"):
            before = image_id("camera-hub:latest")
            sh([*compose, "build", "api"], env=env, quiet=True)
            if before and before != image_id("camera-hub:latest"):  # the previous build, now untagged
                sh(["podman", "rmi", before], quiet=True, check=False)
            size = sh(["podman", "image", "inspect", "--format", "{{.Size}}", "camera-hub:latest"], quiet=True)
            run.facts["image MB"] = round(int(size.stdout.strip()) / 1e6)
            say(f"   camera-hub:latest, {run.facts['image MB']} MB")

        ok = False
        api, prom = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{prom_port}"
        try:
            with run.phase("compose up"):
                sh([*compose, "up", "-d", *SERVICES], env=env, quiet=True)
            import httpx

            with run.phase("api ready"):
                wait_for("the API's /readyz", 180, lambda: httpx.get(f"{api}/readyz", timeout=5).status_code == 200)
                res = sh([*compose, "exec", "-T", "api", "camera-hub", "users", "add", "compose-check",
                          "--role", "viewer", "--config", "/config"], env=env, quiet=True)
                token = res.stdout.strip().splitlines()[-1]
            checks(run, api, prom, token, live, dead)
            ok = True
        finally:
            if not ok:
                show_logs()
            if not args.keep_up:
                with run.phase("compose down"):
                    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
                    down = sh([*compose, "down", "-v", "-t", str(STOP_TIMEOUT_S)], env=env, quiet=True, check=False)
                    left = leftovers()
                    if left:
                        say((down.stdout + down.stderr)[-3000:])
                        raise SystemExit(f"left behind by down: {left}")
                    say("   no container, pod, network or volume of the project left")
                    killed = killed_since(since)
                    run.facts["killed at down"] = killed
                    if killed:  # not a failure of the deployment; said so it is not hidden
                        say(f"   note: not stopped within {STOP_TIMEOUT_S} s of SIGTERM, killed (exit 137): {killed}")
            else:
                conf = f"CONTAINERS_CONF={os.environ['CONTAINERS_CONF']} " if "CONTAINERS_CONF" in os.environ else ""
                say(f"left up: the API at {api}, Prometheus at {prom}, the city in {city}. Take it down with\n"
                    f"  {conf}CAMERA_HUB_REDIS_PASSWORD=x CAMERA_HUB_WORKERS={WORKERS} {' '.join(compose)} down -v"
                    f" && rm -r {work}")
    finally:
        if not args.keep_up:  # the running containers mount the city from there
            shutil.rmtree(work, ignore_errors=True)
    run.timings["total"] = round(time.monotonic() - t_all, 1)
    say("compose check passed. timings (s): " + ", ".join(f"{k} {v}" for k, v in run.timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
