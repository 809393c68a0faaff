"""The wheel is the product: built from the repository, it carries the demo city, the demo models
and the operator page (and no tests or shared assets); installed into a fresh venv, `camera-hub
demo` runs from an empty folder until the first alert arrives through the API, and stops cleanly.

Installing: ``python -m venv`` + ``pip install camera_hub-*.whl`` from the package index took
1.5-2 minutes here (resolving ~50 packages, writing 700 MB; up to 3 minutes on a loaded machine).
So the resolution and the install are split, each done honestly:

- resolution: ``pip download`` of the wheel's own requirements from the configured index, as
  ``pip install`` would resolve them, kept as a wheelhouse in ``~/.cache/camera-hub/wheelhouse``
  (``$CAMERA_HUB_WHEELHOUSE``) per dependency list, Python, platform and ISO week (new upstream
  releases are picked up within a week); ~30 s when it is made, nothing afterwards;
- install: into a fresh venv, ``--no-index`` from that wheelhouse, with ``uv`` (a dev
  dependency; hard links from its cache: ~3 s warm, ~20 s cold) or, where uv is missing, pip
  (~15 s on an idle machine, 60-100 s on a loaded one).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from camera_hub.demo import free_port
from tests.system.demo_checks import CHROMIUM, TYPES, check_operator_page, prometheus_scraping

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
WHEELHOUSE = Path(os.environ.get("CAMERA_HUB_WHEELHOUSE") or Path(
    os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "camera-hub" / "wheelhouse")
# what the repository keeps at its top and the wheel must carry, byte for byte (setup.py, BUNDLE)
BUNDLED = {"camera_hub/bundled/demo-city": (REPO / "config" / "demo-city", ["*.yaml"]),
           "camera_hub/bundled/models": (REPO / "models", ["*.yaml", "*.onnx"])}
# environment that would point a command back at this checkout or at another city
LEAKY_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CAMERA_HUB_CONFIG", "CAMERA_HUB_MANIFEST_PATH",
             "CAMERA_HUB_MODEL_PATH", "CAMERA_HUB_REDIS_URL", "CAMERA_HUB_ASSETS")
TIMINGS: dict[str, float] = {}


def run(argv: list[str | Path], what: str, **kw) -> subprocess.CompletedProcess[str]:
    t0 = time.monotonic()
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=kw.pop("timeout", 600), **kw)
    TIMINGS[what] = round(time.monotonic() - t0, 1)
    assert res.returncode == 0, f"{what} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel --no-deps`` of a copy of the tree a fresh clone has (tracked and new files, not
    what .gitignore ignores): building in place would write build/ into the shared checkout."""
    work = tmp_path_factory.mktemp("wheel")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    src = work / "src"
    for name in filter(None, listed):
        if (REPO / name).is_file():  # a tracked file may be deleted in the working tree
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", work / "dist", src], "build the wheel")
    (found,) = (work / "dist").glob("camera_hub-*.whl")
    return found


def requirements(whl: Path) -> list[str]:
    with zipfile.ZipFile(whl) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    return sorted(line.split(":", 1)[1].strip() for line in meta.splitlines()
                  if line.startswith("Requires-Dist:") and "extra ==" not in line)


def wheelhouse(whl: Path) -> Path:
    """Wheels of ``whl``'s dependencies for this interpreter (the fresh venv's base), downloaded
    once per key (module doc)."""
    year, week, _ = datetime.date.today().isocalendar()
    key = hashlib.sha256(json.dumps([requirements(whl), platform.python_version(), sys.platform, platform.machine(),
                                     f"{year}-W{week:02d}"]).encode()).hexdigest()[:16]
    folder = WHEELHOUSE / key
    if (folder / ".complete").exists():
        TIMINGS["download dependencies"] = 0.0
        return folder
    fresh = WHEELHOUSE / f".{key}.{os.getpid()}"
    shutil.rmtree(fresh, ignore_errors=True)
    run([sys.executable, "-m", "pip", "download", "-q", "-d", fresh, whl], "download dependencies")
    for f in fresh.glob("camera_hub-*.whl"):
        f.unlink()
    (fresh / ".complete").touch()
    for old in WHEELHOUSE.iterdir():  # an older week's or dependency list's wheels
        if old.is_dir() and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    try:
        fresh.rename(folder)
    except OSError:  # another run filled it meanwhile
        shutil.rmtree(fresh, ignore_errors=True)
    return folder


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its dependencies; returns its bin folder."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    python = root / "bin" / "python"
    house = wheelhouse(wheel)
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is not None:
        base = getattr(sys, "_base_executable", sys.executable)
        run([uv, "venv", "-q", "--python", base, root], "create the venv (uv)")
        run([uv, "pip", "install", "-q", "--python", python, "--no-index", "--find-links", house, wheel],
            "install the wheel (uv)")
    else:
        run([sys.executable, "-m", "venv", root], "create the venv")
        run([python, "-m", "pip", "install", "-q", "--no-index", "--find-links", house, wheel], "install the wheel")
    return root / "bin"


def clean_env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LEAKY_ENV}
    return env | {"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}


def test_wheel_carries_the_demo_and_nothing_else(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for dest, (src, patterns) in BUNDLED.items():
            files = sorted({f for p in patterns for f in src.glob(p)})
            assert files, src
            for f in files:
                assert z.read(f"{dest}/{f.name}") == f.read_bytes(), f"{dest}/{f.name} differs from {f}"
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    for f in (REPO / "camera_hub" / "api" / "web").rglob("*"):  # the operator page, every asset
        if f.is_file():
            assert f.relative_to(REPO).as_posix() in names, f"{f.relative_to(REPO)} is not in the wheel"
    for f in (REPO / "camera_hub" / "sim" / "scenes").glob("*.yaml"):
        assert f.relative_to(REPO).as_posix() in names
    assert {"camera_hub/bundled/models/sim-detector-int8.onnx", "camera_hub/bundled/models/sim-detector.onnx",
            "camera_hub/bundled/demo-city/cameras.yaml"} <= names
    assert "camera-hub = camera_hub.cli:main" in entry_points
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"camera_hub", "detectors"}, tops
    unwanted = [n for n in names if re.search(r"(^|/)(tests?|shared|benchmarks|deploy|__pycache__)/", n)
                or (n.startswith("camera_hub/bundled/") and n.endswith(".py"))]
    assert not unwanted, f"in the wheel but should not be: {unwanted}"
    size = wheel.stat().st_size
    assert size < 5_000_000, f"the wheel is {size} bytes: something large got in"


@pytest.mark.timeout(900)
def test_installed_demo_from_an_empty_folder_raises_every_alert_type(venv: Path, tmp_path: Path) -> None:
    """`camera-hub demo` as a user runs it from the installed wheel: it comes up from an empty
    folder, every alert type appears (vending, crowding, tamper, camera_offline), Prometheus
    scrapes it with our rules and every dashboard query has data, the operator page shows the
    alerts in headless Chromium, camera passwords are never printed, Ctrl-C stops it all."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not on PATH (Debian: apt-get install redis-server)")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = clean_env(venv)
    where = run([venv / "python", "-c", "import camera_hub, detectors; print(camera_hub.__file__, detectors.__file__)"],
                "import check", cwd=empty, env=env).stdout.split()
    assert all(Path(p).is_relative_to(venv.parent) for p in where), f"not imported from the venv: {where}"
    export = run([venv / "camera-hub", "cameras", "export", "out.csv"], "cameras export", cwd=empty, env=env)
    assert "the packaged demo city" in export.stderr and "wrote 1004 cameras" in export.stdout
    assert len((empty / "out.csv").read_text().splitlines()) == 1005
    (empty / "out.csv").unlink()

    port = free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen([venv / "camera-hub", "demo", "--cameras", "10", "--no-browser", "--port", str(port)],
                            cwd=empty, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    up = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Prometheus metrics:" in line:  # printed after "Camera Hub demo is up"
                up.set()

    threading.Thread(target=pump, daemon=True).start()
    first: dict | None = None
    scraping = contextlib.ExitStack()
    try:
        assert up.wait(420), "demo did not come up:\n" + "".join(lines[-40:])
        TIMINGS["demo up"] = round(time.monotonic() - t0, 1)
        metrics_line = next(ln for ln in lines if "Prometheus metrics:" in ln)
        check_dashboards = None
        if shutil.which("prometheus"):  # scraping from now on; checked once every alert type is in
            targets = [u.split("//")[1].split("/")[0] for u in metrics_line.split()[2:]]
            check_dashboards = scraping.enter_context(prometheus_scraping(targets[0], targets[1:], tmp_path / "prom"))
        base = f"http://127.0.0.1:{port}"
        login = httpx.post(f"{base}/api/v1/auth/login", json={"username": "demo", "password": "demo-password"})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        deadline = time.monotonic() + 240
        while first is None and time.monotonic() < deadline and proc.poll() is None:
            items = httpx.get(f"{base}/api/v1/alerts", params={"limit": 5}, headers=headers).json()["items"]
            first = items[0] if items else None
            time.sleep(2)
        TIMINGS["first alert"] = round(time.monotonic() - t0, 1)
        assert first is not None, "no alert within 4 minutes of the demo being up:\n" + "".join(lines[-40:])
        seen: set[str] = set()
        while time.monotonic() < deadline and seen != TYPES:
            seen = {a["type"] for a in httpx.get(f"{base}/api/v1/alerts", params={"limit": 200},
                                                 headers=headers).json()["items"]}
            time.sleep(3)
        TIMINGS["every type"] = round(time.monotonic() - t0, 1)
        assert seen == TYPES, f"alert types seen: {sorted(seen)}\n" + "".join(lines[-30:])
        coverage = httpx.get(f"{base}/api/v1/coverage", headers=headers).json()
        assert 0 < coverage["city"]["covered"] < coverage["city"]["grids"]  # only the live subset covers
        if CHROMIUM.exists():
            check_operator_page(base)
            TIMINGS["operator page"] = round(time.monotonic() - t0, 1)
        worker_metrics = httpx.get(metrics_line.split()[3]).text
        if check_dashboards is not None:
            check_dashboards()
            TIMINGS["dashboards"] = round(time.monotonic() - t0, 1)
        assert "demo-only-password" not in "".join(lines)  # camera passwords never printed
    finally:
        scraping.close()
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        code = proc.wait(60)
    out = "".join(lines)
    print(f"\nwheel test timings (s): {TIMINGS}; first alert: {first and first['type']}")
    assert code == 0, out[-3000:]
    assert "demo: stopping" in out
    assert f"city config: {venv.parent}" in out and "(the packaged demo city)" in out
    inferences = re.search(r'^camera_hub_inference_batch_size_count\{model="sim-detector-int8"\} (\S+)',
                           worker_metrics, re.M)
    assert inferences and float(inferences.group(1)) > 0, "the packaged demo model never ran"
    left = subprocess.run(["pgrep", "-af", str(empty)], capture_output=True, text=True).stdout.strip()
    assert left == "", f"children left running: {left}"
    assert sorted(p.name for p in empty.iterdir()) == ["data"]  # the demo wrote only its data folder
