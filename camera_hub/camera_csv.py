"""Camera list as CSV, for cities that keep it in a spreadsheet.

Columns: id, name, kind, main_url, sub_url, lat, lon, grids (``;``-separated), zones (JSON,
optional: the camera's zones as in YAML). Export masks passwords unless asked not to; import
refuses a masked password (RtspUrl does) rather than silently storing ``***``, and any
``${NAME}`` reference: a CSV holds literal values, and a reference written into cameras.yaml
would be expanded there.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from camera_hub.config import ENV_REFERENCE, Camera, ConfigError, ConfigIssue, camera_dump
from camera_hub.redact import mask_text

COLUMNS = ["id", "name", "kind", "main_url", "sub_url", "lat", "lon", "grids", "zones"]


def export_csv(cameras: list[Camera], *, include_passwords: bool = False) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for cam in cameras:
        data = camera_dump(cam) if include_passwords else cam.model_dump(mode="json", exclude_defaults=True,
                                                                          exclude_none=True)
        writer.writerow({
            "id": cam.id,
            "name": cam.name,
            "kind": cam.kind,
            "main_url": data["main_url"],
            "sub_url": data.get("sub_url") or "",
            "lat": cam.location.lat,
            "lon": cam.location.lon,
            "grids": ";".join(cam.grids),
            "zones": json.dumps(data.get("zones", []), ensure_ascii=False, separators=(",", ":")),
        })
    return out.getvalue()


def _row_to_data(row: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": row["id"].strip(),
        "name": row["name"].strip(),
        "kind": row.get("kind", "").strip() or "community",
        "main_url": row["main_url"].strip(),
        "location": {"lat": row["lat"], "lon": row["lon"]},
        "grids": [g.strip() for g in row["grids"].split(";") if g.strip()],
    }
    if row.get("sub_url", "").strip():
        data["sub_url"] = row["sub_url"].strip()
    if row.get("zones", "").strip():
        data["zones"] = json.loads(row["zones"])
    return data


def import_csv(path: Path) -> list[Camera]:
    """Parse and validate a camera CSV; raises :class:`ConfigError` naming row line and column."""
    issues: list[ConfigIssue] = []
    cameras: list[Camera] = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c != "zones" and c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError([ConfigIssue(str(path), 1, "", f"missing column(s): {', '.join(missing)}")])
        for row in reader:
            line = reader.line_num
            refs = [c for c, v in row.items() if isinstance(v, str) and ENV_REFERENCE.search(v)]
            for column in refs:
                issues.append(ConfigIssue(str(path), line, column or "", "a ${...} reference: a CSV holds literal "
                                          "values (environment references belong in cameras.yaml)"))
            if refs:
                continue
            try:
                cameras.append(Camera.model_validate(_row_to_data(row)))
            except ValidationError as exc:
                for err in exc.errors(include_url=False, include_input=False):
                    field = ".".join(str(p) for p in err["loc"])
                    message = mask_text(err["msg"].removeprefix("Value error, "))
                    issues.append(ConfigIssue(str(path), line, field, message))
            except (ValueError, KeyError) as exc:  # bad JSON in zones, masked password, short row
                issues.append(ConfigIssue(str(path), line, "", mask_text(str(exc))))
    if issues:
        raise ConfigError(issues)
    return cameras
