"""Grid workers (网格员) and the map tile setting in a city config: checked like every other reference."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from camera_hub.config import ConfigError, load_config

CITY = textwrap.dedent("""\
    city: {id: t, name: Test 测试市}
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
                  - {id: g1, category: new_residential, households: 400}
                  - {id: g2, category: commercial, households: 320}
    """)


def _load(tmp_path: Path, extra: str) -> object:
    path = tmp_path / "city.yaml"
    path.write_text(CITY + textwrap.dedent(extra), encoding="utf-8")
    return load_config(path)


def test_grid_workers_load(tmp_path: Path) -> None:
    cfg = _load(tmp_path, """\
        grid_workers:
          - {id: gw-1, name: Wang Fang 王芳, grids: [g1, g2]}
        settings:
          api: {map_tile_url: "/tiles/{z}/{x}/{y}.png", map_max_zoom: 17}
        """)
    assert [(w.id, w.name, w.grids) for w in cfg.grid_workers] == [("gw-1", "Wang Fang 王芳", ["g1", "g2"])]
    assert cfg.settings.api.map_tile_url == "/tiles/{z}/{x}/{y}.png" and cfg.settings.api.map_max_zoom == 17


def test_grid_worker_references_and_ids_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, """\
            grid_workers:
              - {id: gw-1, name: A, grids: [g1]}
              - {id: gw-1, name: B, grids: [g9]}
            """)
    found = {(i.field, i.line) for i in info.value.issues}
    assert ("grid_workers[1].id", 16) in found  # duplicate
    assert ("grid_workers[1].grids[0]", 16) in found  # unknown grid
    assert any("g9" in i.message for i in info.value.issues)


@pytest.mark.parametrize("url", ["tiles/{z}/{x}/{y}.png", "ftp://h/{z}/{x}/{y}", "https://h/{x}/{y}.png",
                                 "https://h/{z}/{x}/{y} x"])
def test_map_tile_url_must_be_an_http_or_same_origin_xyz_template(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, f'settings:\n  api: {{map_tile_url: "{url}"}}\n')
    assert [i.field for i in info.value.issues] == ["settings.api.map_tile_url"]
