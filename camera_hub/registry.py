"""Look-ups over a loaded city: which district, street and community a grid or camera is in.

Built once from a :class:`~camera_hub.config.CityConfig`; every part that needs "where is
this camera" asks here rather than walking the tree again.
"""

from __future__ import annotations

from dataclasses import dataclass

from camera_hub.config import Camera, CityConfig, Community, District, Grid, Street


@dataclass(frozen=True, slots=True)
class GridPlace:
    district: District
    street: Street
    community: Community
    grid: Grid


class Registry:
    def __init__(self, cfg: CityConfig) -> None:
        self.cfg = cfg
        self.grids: dict[str, GridPlace] = {g.id: GridPlace(d, s, c, g) for d, s, c, g in cfg.grids()}
        self.cameras: dict[str, Camera] = {c.id: c for c in cfg.cameras}
        self.patrol_zones_of_grid: dict[str, list[str]] = {}
        for pz in cfg.patrol_zones:
            for g in pz.grids:
                self.patrol_zones_of_grid.setdefault(g, []).append(pz.id)

    def camera(self, camera_id: str) -> Camera:
        try:
            return self.cameras[camera_id]
        except KeyError:
            raise KeyError(f"unknown camera {camera_id!r}") from None

    def place_of_camera(self, camera_id: str) -> GridPlace:
        """The place of the camera's first (primary) grid."""
        return self.grids[self.camera(camera_id).grids[0]]
