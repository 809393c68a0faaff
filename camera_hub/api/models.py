"""Typed request and response bodies of the HTTP API (one place, so the OpenAPI spec is exact).

Request models forbid unknown fields: a typo in a field name is a 422, never silently ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from camera_hub.alerts.model import ALERT_ID_PATTERN, Alert, AlertState
from camera_hub.api.auth import Role as RoleName
from camera_hub.config import ID_PATTERN
from camera_hub.ingest.status import CameraStatus

AlertTypeName = Literal["vending", "crowding", "tamper", "camera_offline"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Request):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginResponse(BaseModel):
    token: str
    user: str
    role: RoleName
    expires_at: float


class Me(BaseModel):
    user: str
    role: RoleName


class ActionRequest(_Request):
    note: str = Field("", max_length=2000)


class DispatchRequest(_Request):
    worker: str = Field(pattern=ID_PATTERN, description="id of the grid worker sent to the scene")
    note: str = Field("", max_length=2000)


class UserCreate(_Request):
    name: str = Field(pattern=ID_PATTERN)
    role: RoleName
    password: str | None = Field(None, min_length=8, max_length=256)


class UserOut(BaseModel):
    user: str
    role: RoleName
    created: bool = Field(description="false when an existing user was updated")
    tokens_revoked: bool = Field(description="the role or password changed, so every token of the user was revoked")


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: str | None = Field(None, pattern=ALERT_ID_PATTERN,
                                    description="pass as `cursor` for the next (older) page; null at the end")


class AlertStats(BaseModel):
    open: dict[str, int] = Field(description="open alerts by state")
    open_by_type: dict[str, int]
    sla_breaches: int


class CameraOut(BaseModel):
    id: str
    name: str
    kind: str
    enabled: bool
    grids: list[str]
    district: str | None
    lat: float
    lon: float
    status: CameraStatus | None = Field(None, description="null: the camera never connected")


class CameraList(BaseModel):
    items: list[CameraOut]
    states: dict[str, int] = Field(description="how many cameras are in each state (never: no status yet)")


class AuditEntry(BaseModel):
    id: str
    at: float
    actor: str
    action: str
    target: str = ""
    client: str = ""
    result: str = ""
    detail: str = ""
    stream: Literal["changes", "access", "denied"] = Field(
        "changes", description="changes: users and alert actions; access: logins, logouts, clip views; "
        "denied: refusals, sampled")
    count: int = Field(1, description="in `denied`: the how-manyth such refusal (actor, action, address) "
                       "this minute; past the sample only 10, 100, ... are written")


class Error(BaseModel):
    detail: str


class Health(BaseModel):
    status: str


__all__ = [
    "ActionRequest", "Alert", "AlertPage", "AlertState", "AlertStats", "AlertTypeName", "AuditEntry", "CameraList",
    "CameraOut", "DispatchRequest", "Error", "Health", "LoginRequest", "LoginResponse", "Me", "UserCreate", "UserOut",
]
