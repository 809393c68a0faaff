"""Zone geometry and hours: which objects stand in a zone, and whether its rules are live now."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from shapely import intersects_xy, prepare, unary_union
from shapely.geometry import Polygon

from camera_hub.config import Zone
from camera_hub.events import Box


class ZoneArea:
    """A camera zone as a prepared shapely polygon in 0..1 image coordinates."""

    def __init__(self, zone: Zone, tz: str = "Asia/Shanghai") -> None:
        self.zone = zone
        self.polygon = Polygon(zone.polygon)
        prepare(self.polygon)
        self.tz = ZoneInfo(tz)

    @property
    def id(self) -> str:
        return self.zone.id

    def holds(self, box: Box, width: int, height: int) -> bool:
        """True when the box's bottom centre (where an object stands) is in the zone, edge included
        (an object cut by the bottom of the frame stands on the edge of a zone drawn to it)."""
        x = (box[0] + box[2]) / 2 / width
        y = box[3] / height
        return bool(intersects_xy(self.polygon, x, y))

    def open_at(self, t: float) -> bool:
        """Inside the zone's hours (always, when it has none), in the city's local time."""
        if self.zone.hours is None:
            return True
        local = datetime.fromtimestamp(t, self.tz)
        return self.zone.hours.contains(local.hour * 60 + local.minute + local.second / 60)


NormBox = tuple[float, float, float, float, str, float]


def normalised(box: Box, width: int, height: int, label: str, score: float) -> NormBox:
    return (round(box[0] / width, 4), round(box[1] / height, 4), round(box[2] / width, 4),
            round(box[3] / height, 4), label, round(score, 3))


def zones_bbox(zones: Sequence[Zone], *, above: float = 0.0, margin: float = 0.0) -> Box | None:
    """The bounding box (0..1) of the zones' polygons, grown by ``margin`` on every side and by
    ``above`` more upwards (what stands in a zone rises above it), clipped to the frame."""
    if not zones:
        return None
    x1, y1, x2, y2 = unary_union([Polygon(z.polygon) for z in zones]).bounds
    return (max(0.0, x1 - margin), max(0.0, y1 - margin - above), min(1.0, x2 + margin), min(1.0, y2 + margin))
