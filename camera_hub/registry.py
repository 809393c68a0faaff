"""Look-ups over a loaded city that several parts need (workers label metrics with a camera's
district, the publisher stamps alerts with it, the API lists it): computed here, once."""

from __future__ import annotations

from camera_hub.config import CityConfig


def district_of_grid(cfg: CityConfig) -> dict[str, str]:
    """Grid id → id of the district (or county) it lies in."""
    return {g.id: d.id for d, _, _, g in cfg.grids()}
