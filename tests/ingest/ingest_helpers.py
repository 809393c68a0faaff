"""Small builders shared by the ingest tests: a city config around a list of camera URLs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from camera_hub.config import CityConfig


def city_doc(cameras: list[dict[str, Any]], *, grids_per_community: int = 4, communities: int = 3,
             ingest: dict[str, Any] | None = None, patrol_zones: list[dict[str, Any]] | None = None,
             targets: dict[str, Any] | None = None, redis_prefix: str | None = None) -> dict[str, Any]:
    """The city as its YAML document: one district, one street, ``communities`` communities of
    ``grids_per_community`` grids (ids ``g<c>_<i>``; categories alternate new_residential /
    commercial). Cameras without ``grids`` watch ``g0_0``."""
    comms = [{"id": f"c{c}", "name": f"Community {c}",
              "grids": [{"id": f"g{c}_{i}", "category": "new_residential" if i % 2 == 0 else "commercial",
                         "households": 400} for i in range(grids_per_community)]}
             for c in range(communities)]
    data: dict[str, Any] = {
        "city": {"id": "testcity", "name": "Test City"},
        "districts": [{"id": "d0", "name": "District 0", "streets": [{"id": "s0", "name": "Street 0",
                                                                       "communities": comms}]}],
        "patrol_zones": patrol_zones or [],
        "cameras": [{"name": c["id"], "location": {"lat": 30.0, "lon": 120.0}, "grids": ["g0_0"], **c}
                    for c in cameras],
        "settings": {"ingest": ingest or {}},
    }
    if redis_prefix is not None:
        data["settings"]["redis"] = {"prefix": redis_prefix}
    if targets:
        data["coverage_targets"] = targets
    return data


def city(cameras: list[dict[str, Any]], **kwargs: Any) -> CityConfig:
    """:func:`city_doc`, loaded."""
    return CityConfig.model_validate(city_doc(cameras, **kwargs))


async def wait_until(cond: Callable[[], bool], within_s: float, what: str = "condition",
                     detail: Callable[[], object] = lambda: "") -> float:
    """Poll ``cond`` until true; returns the seconds it took, fails after ``within_s``."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > within_s:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}: {detail()}")
        await asyncio.sleep(0.1)
    return time.monotonic() - t0
