"""The built-in demo city: a prefecture-level city with five districts/counties, eight patrol
zones, about 500 grids, about 1,000 community cameras and 4 lookout cameras.

Generated from a fixed seed with :class:`random.Random` (same bytes on every machine and
Python version: only ``random()``/``randrange`` of the Mersenne Twister are used, which are
stable) and written as YAML. Zone polygons match the simulator's scene geometry
(``street_*`` frontage, ``square_*`` square, full-frame ``view``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from camera_hub.config import Camera, CityConfig, camera_dump, load_config

SEED = 20260
SIM_HOST, SIM_PORT = "127.0.0.1", 8554
DEMO_USER, DEMO_PASSWORD = "admin", "demo-only-password"  # simulated cameras only

FRONTAGE = [[0.05, 0.52], [0.95, 0.52], [0.95, 0.80], [0.05, 0.80]]
SQUARE = [[0.10, 0.30], [0.90, 0.30], [0.90, 0.95], [0.10, 0.95]]
VIEW = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]

# (id, name, kind, centre lat, lon): modelled on a prefecture-level city of 3 districts, 2 counties
DISTRICTS = [
    ("qingshan", "Qingshan District 青山区", "district", 28.228, 112.938),
    ("hexi", "Hexi District 河西区", "district", 28.210, 112.880),
    ("gaoxin", "Gaoxin District 高新区", "district", 28.245, 112.870),
    ("songlin", "Songlin County 松林县", "county", 28.120, 113.060),
    ("baishui", "Baishui County 白水县", "county", 28.350, 112.760),
]
STREET_NAMES = ["Renmin", "Jiefang", "Wuyi", "Huangxing", "Furong", "Yuelu", "Xiangjiang", "Dongfeng"]
COMMUNITY_NAMES = ["Xingfu", "Heping", "Chunguang", "Jinxiu", "Lanyuan", "Taoyuan", "Qinghe", "Minzhu"]
URBAN_CATEGORIES = ["new_residential", "old_residential", "old_residential", "commercial", "market", "school"]
RURAL_CATEGORIES = ["village", "village", "village", "new_residential", "market", "school"]
PATROL_ZONES = 8
COMMUNITY_CAMERAS = 1000
# vending watches shop fronts, crowding watches squares (see camera_hub/sim/scenes)
VENDING_CATEGORIES = {"commercial", "market", "old_residential"}


def _rules_vending() -> list[dict[str, Any]]:
    return [{"type": "vending", "min_dwell_s": 30.0}]


def _rules_crowding() -> list[dict[str, Any]]:
    return [{"type": "crowding", "min_people": 8, "min_duration_s": 20.0}]


def _url(camera_id: str, stream: str) -> str:
    return f"rtsp://{DEMO_USER}:{DEMO_PASSWORD}@{SIM_HOST}:{SIM_PORT}/{camera_id}/{stream}"


def _coord(x: float) -> float:
    return round(x, 6)


def build(seed: int = SEED, progress: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """The demo city as three YAML documents' data: ``city``, ``cameras`` and ``settings``."""
    rng = random.Random(seed)
    say = progress or (lambda _msg: None)
    districts: list[dict[str, Any]] = []
    grids: list[tuple[str, str, float, float]] = []  # id, category, lat, lon
    for did, dname, dkind, lat0, lon0 in DISTRICTS:
        rural = dkind == "county"
        streets = []
        for si in range(5):
            sname = STREET_NAMES[(si + len(districts)) % len(STREET_NAMES)]
            communities = []
            for ci in range(rng.randrange(4, 6)):
                cname = COMMUNITY_NAMES[(ci + si) % len(COMMUNITY_NAMES)]
                cid = f"{did}-s{si + 1}-c{ci + 1}"
                cgrids = []
                for gi in range(rng.randrange(3, 6)):
                    gid = f"{cid}-g{gi + 1}"
                    category = rng.choice(RURAL_CATEGORIES if rural else URBAN_CATEGORIES)
                    cgrids.append(
                        {"id": gid, "name": f"{cname} grid {gi + 1}", "category": category,
                         "households": rng.randrange(300, 501)}
                    )
                    grids.append((gid, category, lat0 + (rng.random() - 0.5) * 0.08,
                                  lon0 + (rng.random() - 0.5) * 0.08))
                communities.append(
                    {"id": cid, "name": f"{cname} {'Village' if rural else 'Community'}",
                     "kind": "village" if rural else "community", "grids": cgrids}
                )
            streets.append({"id": f"{did}-s{si + 1}",
                            "name": f"{sname} {'Town' if rural else 'Street'}",
                            "kind": "town" if rural else "street", "communities": communities})
        districts.append({"id": did, "name": dname, "kind": dkind, "streets": streets})
    say(f"{len(grids)} grids in {len(DISTRICTS)} districts/counties")

    order = list(range(len(grids)))
    rng.shuffle(order)
    patrol_zones = [
        {"id": f"pz{z + 1}", "name": f"Patrol zone {z + 1}",
         "grids": sorted(grids[i][0] for i in order[z::PATROL_ZONES])}
        for z in range(PATROL_ZONES)
    ]

    # Every new_residential grid is watched (the 100 % target); about one in ten other grids is
    # left without a camera, so the city's coverage sits near the 80-90 % real cities report.
    watched = [g for g in grids if g[1] == "new_residential" or rng.random() > 0.1]
    cameras: list[dict[str, Any]] = []
    for n in range(COMMUNITY_CAMERAS):
        gid, category, lat, lon = watched[n % len(watched)]
        cam_id = f"cam-{n + 1:04d}"
        vending = category in VENDING_CATEGORIES or (category != "school" and rng.random() < 0.3)
        also = watched[rng.randrange(len(watched))][0] if rng.random() < 0.15 else None
        cameras.append({
            "id": cam_id,
            "name": f"{gid} {'shop front' if vending else 'square'} {n // len(watched) + 1}",
            "kind": "community",
            "main_url": _url(cam_id, "main"),
            "sub_url": _url(cam_id, "sub"),
            "location": {"lat": _coord(lat + (rng.random() - 0.5) * 0.002),
                         "lon": _coord(lon + (rng.random() - 0.5) * 0.002)},
            "grids": [gid] + ([also] if also and also != gid else []),
            "zones": [
                {"id": "frontage", "name": "Shop frontage", "polygon": FRONTAGE, "rules": _rules_vending()}
                if vending else
                {"id": "square", "name": "Square", "polygon": SQUARE, "rules": _rules_crowding()},
                {"id": "view", "name": "Whole view", "polygon": VIEW, "rules": [{"type": "tamper"}]},
            ],
        })
    for k, (did, dname, _kind, lat0, lon0) in enumerate(DISTRICTS[:4]):
        cam_id = f"lookout-{k + 1}"
        district_grids = [g[0] for g in grids if g[0].startswith(did + "-")]
        cameras.append({
            "id": cam_id,
            "name": f"{dname} high point lookout",
            "kind": "lookout",
            "main_url": _url(cam_id, "main"),
            "sub_url": _url(cam_id, "sub"),
            "location": {"lat": _coord(lat0), "lon": _coord(lon0)},
            "grids": district_grids[:6],
            "zones": [
                {"id": "square", "name": "Plaza", "polygon": SQUARE,
                 "rules": [{"type": "crowding", "min_people": 25, "min_duration_s": 20.0}]},
                {"id": "view", "name": "Whole view", "polygon": VIEW, "rules": [{"type": "tamper"}]},
            ],
        })
    say(f"{COMMUNITY_CAMERAS} community cameras and 4 lookout cameras")

    city = {
        "city": {"id": "demo", "name": "Demo City 示范市", "timezone": "Asia/Shanghai"},
        "coverage_targets": {"overall": 0.8, "categories": {"new_residential": 1.0}},
        "districts": districts,
        "patrol_zones": patrol_zones,
    }
    settings = {"settings": {
        "redis": {"url": "redis://127.0.0.1:6379/0", "prefix": "ch:"},
        "ingest": {"sample_interval_s": 2.0},
        "alerts": {"data_dir": "data", "cooldown_s": 30.0, "pre_roll_s": 5.0, "post_roll_s": 5.0,
                   "sla_hours": {"default": 30.0}},
        "api": {"host": "127.0.0.1", "port": 8080},
    }}
    # written the way `cameras import` writes them, so an export/import round trip keeps the bytes
    cameras = [camera_dump(Camera.model_validate(c)) for c in cameras]
    return {"city.yaml": city, "cameras.yaml": {"cameras": cameras}, "settings.yaml": settings}


HEADER = "# Generated by `camera-hub demo-city generate --seed {seed}`; do not edit by hand.\n"


class _Dumper(yaml.SafeDumper):
    """No anchors/aliases (a reader should see every polygon in place); a list of scalars or of
    short scalar lists (a polygon) on one line."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flat = all(not isinstance(x, (dict, list)) or (isinstance(x, list) and
               all(not isinstance(y, (dict, list)) for y in x)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _represent_list)


def dump_yaml(data: Any) -> str:
    """YAML as this project writes it: key order kept, short lists in flow style, UTF-8."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def write(out: Path, seed: int = SEED, progress: Callable[[str], None] | None = None) -> list[Path]:
    """Generate the demo city into ``out`` and check it loads; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in build(seed, progress).items():
        path = out / name
        path.write_text(HEADER.format(seed=seed) + dump_yaml(data), encoding="utf-8")
        written.append(path)
    load_config(out)  # a generator bug must fail here, not in a user's hands
    return written


def write_cameras(cfg: CityConfig, path: Path) -> None:
    """Write ``cfg``'s cameras as a ``cameras.yaml`` (credentials included: it is the config)."""
    path.write_text(dump_yaml({"cameras": [camera_dump(c) for c in cfg.cameras]}), encoding="utf-8")
