"""City config loading: every bad input names its file, line and field; no password leaks."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from camera_hub.config import ConfigError, RtspUrl, TimeWindow, load_config

SECRET = "pa55-w0rd!"

BASE = textwrap.dedent(f"""\
    city: {{id: testcity, name: Test City}}
    districts:
      - id: d1
        name: District One
        streets:
          - id: s1
            name: Main Street
            communities:
              - id: c1
                name: Sunny
                grids:
                  - {{id: g1, category: new_residential, households: 400}}
                  - {{id: g2, category: commercial, households: 320}}
    patrol_zones:
      - {{id: pz1, name: Zone 1, grids: [g1, g2]}}
    cameras:
      - id: cam-1
        name: Shop front
        main_url: rtsp://admin:{SECRET}@10.1.2.3:554/main
        sub_url: rtsp://admin:{SECRET}@10.1.2.3:554/sub
        location: {{lat: 28.2, lon: 112.9}}
        grids: [g1]
        zones:
          - id: frontage
            polygon: [[0.05, 0.5], [0.95, 0.5], [0.95, 0.8], [0.05, 0.8]]
            hours: "07:00-22:00"
            rules:
              - {{type: vending, min_dwell_s: 60}}
      - id: cam-2
        name: Square
        main_url: rtsp://admin:{SECRET}@10.1.2.4:554/main
        location: {{lat: 28.2, lon: 112.9}}
        grids: [g2]
    """)


def load_text(tmp_path: Path, text: str) -> object:
    path = tmp_path / "city.yaml"
    path.write_text(text)
    return load_config(path)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return lines[nth - 1]


def expect_error(tmp_path: Path, text: str, line: int, field: str, words: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    err = info.value
    assert any(i.line == line and i.field == field and words in i.message for i in err.issues), str(err)
    assert str(tmp_path / "city.yaml") in str(err)
    assert SECRET not in str(err)
    return err


def test_base_config_loads(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, BASE)
    assert [c.id for c in cfg.cameras] == ["cam-1", "cam-2"]
    zone = cfg.cameras[0].zones[0]
    assert zone.hours == TimeWindow(start_min=7 * 60, end_min=22 * 60)
    assert zone.rules[0].min_dwell_s == 60
    assert cfg.cameras[0].ingest_url.reveal().endswith("/sub")
    assert cfg.cameras[1].ingest_url.reveal().endswith("/main")  # no sub-stream: main


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    text = BASE.replace("name: Main Street", "name: [Main Street")
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    issue = info.value.issues[0]
    assert "malformed YAML" in issue.message
    assert issue.line is not None and abs(issue.line - line_of(BASE, "name: Main Street")) <= 2


def test_unknown_key(tmp_path: Path) -> None:
    text = BASE.replace("    grids: [g2]\n", "    grids: [g2]\n    colour: red\n")
    expect_error(tmp_path, text, line_of(text, "colour: red"), "cameras[1].colour", "unknown key 'colour'")


def test_unknown_rule_parameter(tmp_path: Path) -> None:
    text = BASE.replace("min_dwell_s: 60}", "min_dwell_s: 60, min_dwel: 5}")
    expect_error(tmp_path, text, line_of(text, "min_dwel: 5"), "cameras[0].zones[0].rules[0].min_dwel", "unknown key")


def test_duplicate_camera_id(tmp_path: Path) -> None:
    text = BASE.replace("- id: cam-2", "- id: cam-1")
    err = expect_error(tmp_path, text, line_of(text, "- id: cam-1", 2), "cameras[1].id", "duplicate camera id 'cam-1'")
    assert f":{line_of(text, '- id: cam-1')}" in str(err)  # points back at the first one


def test_duplicate_grid_id(tmp_path: Path) -> None:
    text = BASE.replace("id: g2, category", "id: g1, category").replace("grids: [g1, g2]", "grids: [g1]")
    text = text.replace("grids: [g2]", "grids: [g1]")
    expect_error(tmp_path, text, line_of(text, "id: g1, category", 2),
                 "districts[0].streets[0].communities[0].grids[1].id", "duplicate grid id 'g1'")


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    text = BASE.replace("    name: Square\n", "    name: Square\n    name: Again\n")
    expect_error(tmp_path, text, line_of(text, "name: Again"), "cameras[1].name", "duplicate key")


def test_camera_with_unknown_grid(tmp_path: Path) -> None:
    text = BASE.replace("grids: [g2]", "grids: [g9]")
    expect_error(tmp_path, text, line_of(text, "grids: [g9]"), "cameras[1].grids[0]", "unknown grid 'g9'")


def test_patrol_zone_with_unknown_grid(tmp_path: Path) -> None:
    text = BASE.replace("grids: [g1, g2]", "grids: [g1, g7]")
    expect_error(tmp_path, text, line_of(text, "grids: [g1, g7]"), "patrol_zones[0].grids[1]", "unknown grid 'g7'")


def test_polygon_outside_image(tmp_path: Path) -> None:
    text = BASE.replace("[0.95, 0.8], [0.05, 0.8]", "[1.25, 0.8], [0.05, 0.8]")
    expect_error(tmp_path, text, line_of(text, "polygon:"), "cameras[0].zones[0].polygon", "outside the image")


def test_self_intersecting_polygon(tmp_path: Path) -> None:
    bow_tie = "[[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]"
    text = BASE.replace("[[0.05, 0.5], [0.95, 0.5], [0.95, 0.8], [0.05, 0.8]]", bow_tie)
    expect_error(tmp_path, text, line_of(text, "polygon:"), "cameras[0].zones[0].polygon", "Self-intersection")


def test_url_must_be_rtsp_and_error_hides_password(tmp_path: Path) -> None:
    text = BASE.replace(f"main_url: rtsp://admin:{SECRET}@10.1.2.4", f"main_url: http://admin:{SECRET}@10.1.2.4")
    err = expect_error(tmp_path, text, line_of(text, "http://"), "cameras[1].main_url", "rtsp://")
    assert "admin:***@10.1.2.4" in str(err)


def test_bad_hours(tmp_path: Path) -> None:
    text = BASE.replace('"07:00-22:00"', '"7am till late"')
    expect_error(tmp_path, text, line_of(text, "7am"), "cameras[0].zones[0].hours", "hours must look like")


def test_wrong_type_names_field(tmp_path: Path) -> None:
    text = BASE.replace("households: 320", "households: many")
    expect_error(tmp_path, text, line_of(text, "households: many"),
                 "districts[0].streets[0].communities[0].grids[1].households", "integer")


def test_many_problems_reported_at_once(tmp_path: Path) -> None:
    text = BASE.replace("grids: [g2]", "grids: [g9]").replace("- id: cam-2", "- id: cam-1")
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    assert len(info.value.issues) == 2


def test_password_never_in_repr_str_or_dump(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = load_text(tmp_path, BASE)
    cam = cfg.cameras[0]
    for shown in (repr(cam), str(cam), repr(cfg), cam.model_dump_json(), str(cam.model_dump()), str(cam.main_url)):
        assert SECRET not in shown
    assert cam.main_url.reveal() == f"rtsp://admin:{SECRET}@10.1.2.3:554/main"
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("camera %s at %s", cam.id, cam.main_url)
    assert SECRET not in caplog.text


def test_masked_password_is_refused() -> None:
    with pytest.raises(ValueError, match="masked"):
        RtspUrl("rtsp://admin:***@10.0.0.1/main")


def test_environment_interpolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMERA_HUB_SECRET_CAM_PW", "from-env")
    text = BASE.replace(f"admin:{SECRET}@10.1.2.4", "admin:${CAMERA_HUB_SECRET_CAM_PW}@10.1.2.4")
    assert load_text(tmp_path, text).cameras[1].main_url.reveal() == "rtsp://admin:from-env@10.1.2.4:554/main"
    monkeypatch.delenv("CAMERA_HUB_SECRET_CAM_PW")
    expect_error(tmp_path, text, line_of(text, "${CAMERA_HUB"), "cameras[1].main_url",
                 "CAMERA_HUB_SECRET_CAM_PW is not set")


def test_folder_merges_files_and_names_the_right_file(tmp_path: Path) -> None:
    city, cameras = BASE.split("cameras:\n")
    (tmp_path / "city.yaml").write_text(city)
    (tmp_path / "cameras.yaml").write_text("cameras:\n" + cameras.replace("grids: [g2]", "grids: [gX]"))
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    issue = info.value.issues[0]
    assert issue.file.endswith("cameras.yaml") and "unknown grid 'gX'" in issue.message
    assert issue.line == 1 + line_of(cameras, "grids: [gX]".replace("gX", "g2"))


def test_time_window_wraps_midnight() -> None:
    w = TimeWindow.parse("20:00-02:00")
    assert w.contains(23 * 60) and w.contains(60) and not w.contains(12 * 60)
