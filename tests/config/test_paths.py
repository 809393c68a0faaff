"""The search order for the city config and the models (camera_hub/paths.py), and that a command
run from any folder finds the demo city."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from camera_hub import paths

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current folder and none of the search path's variables set."""
    for name in (paths.CONFIG_ENV, paths.MANIFEST_ENV, paths.MODEL_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(paths, "_models_flag", None)
    return tmp_path


def test_config_order(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packaged = paths.find_config(None)
    assert packaged == paths.Found(paths.packaged_demo_city(), "the packaged demo city")
    assert packaged.path == REPO / "config" / "demo-city"  # a checkout's packaged city is the folder itself
    local = elsewhere / "config" / "demo-city"
    local.mkdir(parents=True)
    assert paths.find_config(None) == paths.Found(Path("config/demo-city"), "./config/demo-city")
    city = elsewhere / "city.yaml"
    city.write_text("city: {}\n")
    monkeypatch.setenv(paths.CONFIG_ENV, str(city))
    assert paths.find_config(None) == paths.Found(city, "$CAMERA_HUB_CONFIG")
    assert paths.find_config(local) == paths.Found(local, "--config")


def test_a_named_config_that_is_missing_is_an_error_not_a_fallback(elsewhere: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(paths.NotFound, match=r"^--config /nowhere: no such file or folder"):
        paths.find_config(Path("/nowhere"))
    monkeypatch.setenv(paths.CONFIG_ENV, "/nowhere")
    with pytest.raises(paths.NotFound, match=r"^\$CAMERA_HUB_CONFIG=/nowhere: no such file or folder"):
        paths.find_config(None)


def test_errors_name_what_was_searched(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(paths.NotFound) as exc:
        paths.find_config(None, writable=True)  # cameras import: never the packaged copy
    assert "--config (not given), $CAMERA_HUB_CONFIG (not set), ./config/demo-city (not in" in str(exc.value)
    assert "read-only" in str(exc.value)
    monkeypatch.setattr(paths, "BUNDLED", elsewhere / "no-bundle")
    monkeypatch.setattr(paths, "CHECKOUT", elsewhere)  # neither a wheel nor a checkout: a broken install
    with pytest.raises(paths.NotFound, match="the packaged demo city .*no-bundle/demo-city: missing"):
        paths.find_config(None)


def test_model_order(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packaged = REPO / "models"
    shared = REPO.parent / "shared" / "assets" / "models"
    assert paths.manifest_dirs() == [packaged]
    assert paths.model_dirs() == [packaged, shared]
    (elsewhere / "models").mkdir()
    env_a, env_b, flag = elsewhere / "a", elsewhere / "b", elsewhere / "flag"
    flag.mkdir()
    monkeypatch.setenv(paths.MANIFEST_ENV, f"{env_a}{os.pathsep}{env_b}")
    monkeypatch.setenv(paths.MODEL_ENV, str(env_b))
    paths.set_models_dir(flag)
    assert paths.manifest_dirs() == [flag, env_a, env_b, (elsewhere / "models").resolve(), packaged]
    assert paths.model_dirs() == [flag, env_b, (elsewhere / "models").resolve(), packaged, shared]
    with pytest.raises(paths.NotFound, match="--models /nowhere: no such folder"):
        paths.set_models_dir(Path("/nowhere"))


def test_commands_find_the_demo_city_from_any_folder(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != paths.CONFIG_ENV} | {"PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-m", "camera_hub.cli", "cameras", "export", "out.csv"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"city config: {REPO / 'config' / 'demo-city'} (the packaged demo city)" in res.stderr
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 1005
    res = subprocess.run([sys.executable, "-m", "camera_hub.cli", "validate"], cwd=tmp_path,
                         env=env | {paths.CONFIG_ENV: str(tmp_path / "missing")}, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1
    assert f"error: $CAMERA_HUB_CONFIG={tmp_path / 'missing'}: no such file or folder" in res.stderr
