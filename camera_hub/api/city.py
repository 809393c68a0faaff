"""The city as the operator page draws it, and the alert detail.

``GET /api/v1/city``: names, time zone, SLA hours, map background, the area tree (districts →
streets → communities → grids) and patrol zones, so the page can filter cameras and alerts by
district, street and patrol zone and show times in the city's zone.
``GET /api/v1/grid-workers``: who an alert can be dispatched to (``grid_workers`` in the city config).
``alert_detail``: ``GET /api/v1/alerts/{id}`` adds the rule zone (its polygon, from the city config:
the alert keeps ``camera_id`` and ``zone_id``) to the stored alert. ``check_grid_worker``: a dispatch
must name a configured grid worker when the city lists any.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from camera_hub.alerts.model import Alert
from camera_hub.api.auth import Principal, require
from camera_hub.config import ID_PATTERN, CityConfig, District, GridWorker, PatrolZone

router = APIRouter(prefix="/api/v1", tags=["city"], responses={
    401: {"description": "no or bad token"}, 403: {"description": "role too low"},
    422: {"description": "a query parameter is invalid"}})

Viewer = Annotated[Principal, Depends(require("viewer"))]


class MapOut(BaseModel):
    tile_url: str | None = Field(description="`{z}/{x}/{y}` tile URL of the city's own tile server; "
                                 "null: the page draws the cameras on a plain projection")
    max_zoom: int


class CityOut(BaseModel):
    id: str
    name: str
    timezone: str = Field(description="IANA zone; the page shows every time in it")
    sla_hours: dict[str, float] = Field(description="hours to close an alert, by type or `default`")
    map: MapOut
    districts: list[District]
    patrol_zones: list[PatrolZone]


class ZoneOut(BaseModel):
    id: str
    name: str
    polygon: list[tuple[float, float]] = Field(description="0..1 image coordinates, like `boxes`")


class AlertDetail(Alert):
    """The alert JSON plus the rule zone (null when the camera or zone left the config)."""

    zone: ZoneOut | None = None


def _cfg(request: Request) -> CityConfig:
    return request.app.state.cfg


def alert_detail(cfg: CityConfig, alert: Alert) -> AlertDetail:
    cam = next((c for c in cfg.cameras if c.id == alert.camera_id), None)
    zone = next((z for z in cam.zones if z.id == alert.zone_id), None) if cam else None
    out = ZoneOut(id=zone.id, name=zone.name, polygon=zone.polygon) if zone else None
    return AlertDetail(**alert.model_dump(), zone=out)


def check_grid_worker(cfg: CityConfig, worker: str) -> None:
    """404 unless ``worker`` is one of the city's grid workers (any id while it lists none)."""
    if cfg.grid_workers and all(w.id != worker for w in cfg.grid_workers):
        raise HTTPException(404, f"no grid worker {worker!r} in the city config")


@router.get("/city", response_model=CityOut)
async def city(who: Viewer, request: Request) -> CityOut:
    """The city's names, time zone, area tree and patrol zones (for the operator page's map and filters)."""
    cfg = _cfg(request)
    api = cfg.settings.api
    return CityOut(id=cfg.city.id, name=cfg.city.name, timezone=cfg.city.timezone,
                   sla_hours=cfg.settings.alerts.sla_hours,
                   map=MapOut(tile_url=api.map_tile_url, max_zoom=api.map_max_zoom),
                   districts=cfg.districts, patrol_zones=cfg.patrol_zones)


@router.get("/grid-workers", response_model=list[GridWorker])
async def grid_workers(who: Viewer, request: Request,
                       grid_id: Annotated[str | None, Query(pattern=ID_PATTERN,
                                                            description="only workers looking after this grid")] = None,
                       ) -> list[GridWorker]:
    """The grid workers (网格员) alerts can be dispatched to."""
    workers = _cfg(request).grid_workers
    return [w for w in workers if grid_id is None or grid_id in w.grids]
