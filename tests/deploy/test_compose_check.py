"""deploy/compose_check.py runs the compose stack for real under Podman (minutes, and it installs
Podman: not part of this suite; README, Deployment, has what it printed). What it relies on
without containers is checked here: the city it writes is valid, the simulator would serve
exactly its live cameras and not the one meant to stay down, every camera it enables points at
the compose service `sim`, and the sandbox override only takes the API's ulimits away."""

from __future__ import annotations

import importlib.util
import stat
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from camera_hub.config import load_config
from camera_hub.sim.cli import plan

REPO = Path(__file__).resolve().parents[2]


def load_compose_check():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("compose_check", REPO / "deploy" / "compose_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def test_the_city_it_writes(tmp_path: Path) -> None:
    check = load_compose_check()
    live, dead = check.write_city(tmp_path / "city", 6)
    cfg = load_config(tmp_path / "city")
    # what `camera-hub sim --cameras 6` (the compose service, CAMERA_HUB_SIM_CAMERAS=6) serves
    specs, credentials, mixed = plan(cfg, 6)
    assert [s.camera_id for s in specs] == live and len(live) == 6
    assert dead not in live and credentials is not None and not mixed
    enabled = [c for c in cfg.cameras if c.enabled]
    assert {c.id for c in enabled} == {*live, dead}
    for cam in enabled:
        for url in (cam.main_url, cam.sub_url):
            assert url is not None
            parts = urlsplit(url.reveal())
            assert (parts.hostname, parts.port) == ("sim", 8554), cam.id
    assert len(cfg.cameras) == len(load_config(REPO / "config" / "demo-city").cameras)  # the rest: disabled
    # the containers run as the image's user (uid 10001), not as the folder's owner
    assert stat.S_IMODE((tmp_path / "city").stat().st_mode) & 0o005 == 0o005
    for f in (tmp_path / "city").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) & 0o004, f


def test_sandbox_override_only_resets_the_api_ulimits() -> None:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!reset", lambda loader, node: "RESET")
    override = yaml.load((REPO / "deploy" / "podman" / "sandbox.yml").read_text(), Loader=Loader)  # noqa: S506
    assert override == {"services": {"api": {"ulimits": "RESET"}}}
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
    assert "ulimits" in compose["services"]["api"]  # what it resets exists
