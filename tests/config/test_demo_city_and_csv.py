"""The demo city is reproducible to the byte and matches what is committed; CSV round-trips."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from camera_hub.camera_csv import export_csv, import_csv
from camera_hub.config import ConfigError, load_config
from camera_hub.sim import demo_city

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "config" / "demo-city"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "camera_hub.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


@pytest.fixture(scope="module")
def demo_cfg():  # type: ignore[no-untyped-def]
    return load_config(COMMITTED)


def test_generation_is_byte_identical_and_matches_committed(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli("demo-city", "generate", "--out", str(a)).returncode == 0
    demo_city.write(b)  # in-process too: same bytes either way
    for name in ("city.yaml", "cameras.yaml", "settings.yaml"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
        assert (a / name).read_bytes() == (COMMITTED / name).read_bytes(), f"committed {name} is stale"


def test_demo_city_shape(demo_cfg) -> None:  # type: ignore[no-untyped-def]
    kinds = Counter(c.kind for c in demo_cfg.cameras)
    assert kinds["lookout"] == 4 and 950 <= kinds["community"] <= 1050
    assert len(demo_cfg.districts) == 5 and len(demo_cfg.patrol_zones) == 8
    grids = [g for *_, g in demo_cfg.grids()]
    assert all(300 <= g.households <= 500 for g in grids)
    categories = Counter(g.category for g in grids)
    assert categories["new_residential"] > 0 and len(categories) >= 4
    watched = {g for c in demo_cfg.cameras for g in c.grids}
    assert all(g.id in watched for g in grids if g.category == "new_residential")  # 100 % target reachable
    assert 0.8 <= len(watched) / len(grids) < 1.0  # honest: some grids have no camera
    patrol = [g for pz in demo_cfg.patrol_zones for g in pz.grids]
    assert sorted(patrol) == sorted(g.id for g in grids)  # every grid in exactly one patrol zone


def test_csv_round_trip(tmp_path: Path, demo_cfg) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cameras.csv"
    path.write_text(export_csv(demo_cfg.cameras, include_passwords=True))
    assert import_csv(path) == list(demo_cfg.cameras)


def test_csv_export_masks_passwords_and_import_refuses_them(tmp_path: Path, demo_cfg) -> None:  # type: ignore[no-untyped-def]
    text = export_csv(demo_cfg.cameras[:3])
    assert demo_city.DEMO_PASSWORD not in text and "admin:***@" in text
    path = tmp_path / "masked.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        import_csv(path)
    assert {i.line for i in info.value.issues} == {2, 3, 4}
    assert all("masked" in i.message for i in info.value.issues)


def test_csv_bad_row_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "cams.csv"
    path.write_text("id,name,kind,main_url,sub_url,lat,lon,grids\n"
                    "cam-1,A,community,rtsp://u:secret1@h/1,,28.1,112.9,g1\n"
                    "cam-2,B,community,ftp://u:secret2@h/2,,28.1,112.9,g1\n"
                    "cam-3,C,community,rtsp://u:secret3@h/3,,north,112.9,g1\n")
    with pytest.raises(ConfigError) as info:
        import_csv(path)
    found = {(i.line, i.field) for i in info.value.issues}
    assert found == {(3, "main_url"), (4, "location.lat")}
    assert "secret" not in str(info.value)


def test_cli_import_replaces_cameras_only_when_whole_config_is_valid(tmp_path: Path, demo_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg_dir = tmp_path / "city"
    cfg_dir.mkdir()
    for name in ("city.yaml", "cameras.yaml", "settings.yaml"):
        (cfg_dir / name).write_bytes((COMMITTED / name).read_bytes())
    good = tmp_path / "good.csv"
    good.write_text(export_csv(demo_cfg.cameras[:10], include_passwords=True))
    res = run_cli("cameras", "import", str(good), "--config", str(cfg_dir))
    assert res.returncode == 0, res.stderr
    assert len(load_config(cfg_dir).cameras) == 10
    bad = tmp_path / "bad.csv"
    bad.write_text(good.read_text().replace("qingshan-s1-c1-g1", "no-such-grid"))
    before = (cfg_dir / "cameras.yaml").read_bytes()
    res = run_cli("cameras", "import", str(bad), "--config", str(cfg_dir))
    assert res.returncode == 1 and "unknown grid 'no-such-grid'" in res.stderr
    assert (cfg_dir / "cameras.yaml").read_bytes() == before
    assert demo_city.DEMO_PASSWORD not in res.stderr + res.stdout


def test_cli_validate_reports_line_and_exit_code(tmp_path: Path) -> None:
    res = run_cli("validate", str(COMMITTED))
    assert res.returncode == 0 and "1000 community + 4 lookout cameras" in res.stdout
    bad = tmp_path / "city.yaml"
    bad.write_text("city: {id: x, name: X}\ndistricts: []\nextra: 1\n")
    res = run_cli("validate", str(bad))
    assert res.returncode == 1
    assert f"{bad}:3: extra: unknown key 'extra'" in res.stderr
    assert f"{bad}:2: districts:" in res.stderr
