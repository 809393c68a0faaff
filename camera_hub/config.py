"""City model and settings: typed (pydantic v2), loaded from YAML with file/line/field errors.

A config is a folder (``city.yaml``, ``cameras.yaml``, optional ``settings.yaml``; their top
level keys are merged) or one YAML file holding everything. ``${CAMERA_HUB_SECRET_X}`` as the
password of a camera URL or of ``settings.redis.url`` is replaced by that environment variable,
percent-encoded, so passwords need not live in the file; a reference anywhere else is an error
(docs/security.md, City config). YAML aliases are refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    field_serializer,
    field_validator,
)
from pydantic_core import core_schema
from shapely.geometry import Polygon
from shapely.validation import explain_validity

from camera_hub.redact import MASK, mask_text, mask_url

CONFIG_FILES = ("city.yaml", "cameras.yaml", "settings.yaml")
# ${NAME}: a reference to an environment variable. Only names with this prefix may be referenced,
# so a config cannot read the process's other variables (CAMERA_HUB_REDIS_URL, cloud tokens).
SECRET_PREFIX = "CAMERA_HUB_SECRET_"
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# a URL whose whole password is one reference: scheme://user:${NAME}@rest
_PASSWORD_REFERENCE = re.compile(r"(?s)(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)"
                                 r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}(?P<tail>@.*)")
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Id = Annotated[str, Field(pattern=ID_PATTERN)]

GridCategory = Literal[
    "new_residential",
    "old_residential",
    "commercial",
    "village",
    "school",
    "market",
    "hospital",
    "transport",
    "park",
    "industrial",
]


# --------------------------------------------------------------------------- secrets in URLs
class RtspUrl:
    """An rtsp(s):// URL whose password never shows in str(), repr() or serialisation.

    Call :meth:`reveal` only where the URL is handed to the network library.
    """

    __slots__ = ("_url",)

    def __init__(self, url: str) -> None:
        if not isinstance(url, str) or not re.match(r"^rtsps?://[^/\s]+", url):
            shown = mask_url(url) if isinstance(url, str) else type(url).__name__
            raise ValueError(f"must be an rtsp:// or rtsps:// URL with a host, got {shown!r}")
        _check_userinfo(url)
        if urlsplit(url).password == MASK:
            raise ValueError("the password is masked (***): export with --include-passwords, or set it")
        self._url = url

    def reveal(self) -> str:
        return self._url

    @property
    def masked(self) -> str:
        return mask_url(self._url)

    def with_host(self, host: str, port: int) -> RtspUrl:
        """The same URL pointing at another host:port (credentials and path kept)."""
        parts = urlsplit(self._url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
        return RtspUrl(urlunsplit(parts._replace(netloc=netloc)))

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"RtspUrl({self.masked!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RtspUrl) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)

    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def validate(value: Any) -> RtspUrl:
            return value if isinstance(value, RtspUrl) else cls(value)

        return core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda v: v.masked),
            json_schema_input_schema=core_schema.str_schema(pattern=r"^rtsps?://"),
        )


_ENCODE_HINT = "write / ? # @ % and spaces in the user or password percent-encoded (%2F %3F %23 %40 %25 %20)"


def _check_userinfo(url: str) -> None:
    """Refuse a URL whose user or password was written unencoded. Why: ``ab@cd/efgh99`` made the
    client connect to host ``cd`` and send the rest of the password in its request line, and a
    ``/`` made the port parse fail with the start of the password in the error. The messages
    never quote the URL."""
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError(f"a space or control character in the URL: {_ENCODE_HINT}")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ValueError(f"the port is not a number from 0 to 65535: {_ENCODE_HINT}") from None
    if "@" in url.partition("://")[2][len(parts.netloc):]:
        raise ValueError(f"an '@' after the host: {_ENCODE_HINT}")
    for part in (parts.username, parts.password):
        if part and any(ord(c) < 0x20 or ord(c) == 0x7F for c in unquote(part)):
            raise ValueError("the user or password holds an encoded control character")


# --------------------------------------------------------------------------- city model
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeWindow(_Strict):
    """Daily hours such as ``07:00-22:00``; a window may wrap past midnight (``20:00-02:00``)."""

    start_min: int
    end_min: int

    @classmethod
    def parse(cls, text: str) -> TimeWindow:
        m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
        if not m or int(m[1]) > 24 or int(m[3]) > 24 or int(m[2]) > 59 or int(m[4]) > 59:
            raise ValueError(f"hours must look like '07:00-22:00', got {text!r}")
        return cls(start_min=int(m[1]) * 60 + int(m[2]), end_min=int(m[3]) * 60 + int(m[4]))

    def contains(self, minute_of_day: float) -> bool:
        if self.start_min <= self.end_min:
            return self.start_min <= minute_of_day < self.end_min
        return minute_of_day >= self.start_min or minute_of_day < self.end_min

    def __str__(self) -> str:
        s, e = self.start_min, self.end_min
        return f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}"


def _parse_hours(value: Any) -> Any:
    return TimeWindow.parse(value) if isinstance(value, str) else value


class VendingRule(_Strict):
    """Goods or stalls left in a frontage zone (店外经营/占道经营)."""

    type: Literal["vending"]
    min_dwell_s: float = Field(60.0, gt=0)
    classes: list[str] = ["goods", "stall"]
    class_agnostic: bool = True  # also count a persistent non-person foreground mass
    min_area: float = Field(0.002, gt=0, le=1)  # share of the frame an object must cover
    end_after_s: float = Field(20.0, ge=0)  # hysteresis: absent this long before the episode ends


class CrowdingRule(_Strict):
    """People gathering in a zone (人员聚集)."""

    type: Literal["crowding"]
    min_people: int = Field(8, ge=2)
    max_density_per_m2: float | None = Field(None, gt=0)  # used when the zone has area_m2
    min_duration_s: float = Field(30.0, gt=0)
    end_after_s: float = Field(20.0, ge=0)
    end_ratio: float = Field(0.75, gt=0, le=1)  # ends when count < end_ratio * min_people


class TamperRule(_Strict):
    """Lens covered, defocused, camera moved, or too dark, against the camera's reference."""

    type: Literal["tamper"]
    min_duration_s: float = Field(10.0, gt=0)
    dark_threshold: float = Field(25.0, ge=0, le=255)  # mean grey level
    blur_ratio: float = Field(0.25, gt=0, le=1)  # sharpness below this share of the reference
    moved_threshold: float = Field(0.5, gt=0, le=1)  # structural similarity below this


Rule = Annotated[VendingRule | CrowdingRule | TamperRule, Field(discriminator="type")]


class Zone(_Strict):
    id: Id
    name: str = ""
    polygon: list[tuple[float, float]]
    area_m2: float | None = Field(None, gt=0)
    hours: Annotated[TimeWindow | None, Field(validate_default=False)] = None
    rules: list[Rule] = []

    _hours = field_validator("hours", mode="before")(_parse_hours)

    @field_serializer("hours")
    def _hours_text(self, hours: TimeWindow | None) -> str | None:
        return None if hours is None else str(hours)

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(pts) < 3:
            raise ValueError(f"a polygon needs at least 3 points, got {len(pts)}")
        for i, (x, y) in enumerate(pts):
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point {i} ({x}, {y}) is outside the image (coordinates are 0..1)")
        poly = Polygon(pts)
        if not poly.is_valid:
            raise ValueError(f"polygon is not simple: {explain_validity(poly)}")
        if poly.area <= 0:
            raise ValueError("polygon has no area")
        return pts


class Location(_Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Camera(_Strict):
    id: Id
    name: str
    kind: Literal["community", "lookout"] = "community"
    main_url: RtspUrl
    sub_url: RtspUrl | None = None
    location: Location
    grids: list[Id] = Field(min_length=1)
    zones: list[Zone] = []
    sample_interval_s: float | None = Field(None, gt=0)  # overrides settings.ingest
    # RTP over TCP (interleaved) or UDP; auto: TCP, and UDP when the camera refuses TCP (461)
    transport: Literal["auto", "tcp", "udp"] = "auto"
    enabled: bool = True
    # answer a Basic auth challenge (the password in clear text) on the native RTSP reader; off,
    # a camera that offers only Basic is "down" (auth): a spoofed camera could ask for it
    allow_basic_auth: bool = False

    @property
    def ingest_url(self) -> RtspUrl:
        """Sub-stream by default; lookout cameras read the main stream (far people need pixels)."""
        if self.kind == "lookout" or self.sub_url is None:
            return self.main_url
        return self.sub_url


class Grid(_Strict):
    id: Id
    name: str = ""
    category: GridCategory
    households: int = Field(ge=0)


class Community(_Strict):
    id: Id
    name: str
    kind: Literal["community", "village"] = "community"
    grids: list[Grid] = Field(min_length=1)


class Street(_Strict):
    id: Id
    name: str
    kind: Literal["street", "town"] = "street"
    communities: list[Community] = Field(min_length=1)


class District(_Strict):
    id: Id
    name: str
    kind: Literal["district", "county"] = "district"
    streets: list[Street] = Field(min_length=1)


class PatrolZone(_Strict):
    id: Id
    name: str
    grids: list[Id] = Field(min_length=1)


class GridWorker(_Strict):
    """A grid worker (网格员): who the command centre dispatches to the scene of an alert."""

    id: Id
    name: str
    grids: list[Id] = Field(min_length=1)  # the grids this worker looks after (suggested first)


class CoverageTargets(_Strict):
    overall: float = Field(0.8, ge=0, le=1)
    categories: dict[GridCategory, float] = {"new_residential": 1.0}


class CityInfo(_Strict):
    id: Id
    name: str
    timezone: str = "Asia/Shanghai"


# --------------------------------------------------------------------------- settings
class RedisSettings(_Strict):
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = Field("ch:", pattern=r"^[A-Za-z0-9_:.{}-]{1,32}$")


class IngestSettings(_Strict):
    sample_interval_s: float = Field(2.0, gt=0)
    keyframes_only: bool = True
    skip_loop_filter: bool = True  # keyframe-only decoding skips deblocking (see ingest/sampler.py)
    ring_seconds: float = Field(10.0, gt=0)  # full-rate packets kept per camera (clip pre-roll)
    # behind them, one keyframe every ring_lapse_every_s back to ring_lapse_s (a clip's time-lapse
    # to an onset seen late; see ingest/ring.py); 0 turns the time-lapse off
    ring_lapse_s: float = Field(30.0, ge=0)
    ring_lapse_every_s: float = Field(4.0, gt=0)
    ring_max_bytes: int = Field(8 * 1024 * 1024, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(5.0, gt=0)
    stall_after_s: float = Field(10.0, gt=0)
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_cap_s: float = Field(60.0, gt=0)
    max_opens_in_flight: int = Field(50, ge=1)
    queue_size: int = Field(256, ge=1)
    heartbeat_s: float = Field(2.0, gt=0)
    lease_ms: int = Field(6000, ge=1000)  # a dead worker's cameras move within ~lease + one tick
    no_keyframe_after_s: float = Field(30.0, gt=0)  # no keyframe this long: degraded (no_keyframe)
    status_interval_s: float = Field(2.0, gt=0)  # how often each camera's status hash is refreshed
    # native: Camera Hub's own RTSP reader for rtsp:// (RTP over TCP or UDP; rtsps:// always goes
    # through FFmpeg); pyav: FFmpeg's RTSP demuxer for every camera
    receiver: Literal["native", "pyav"] = "native"
    # client ports for RTP over UDP (a pair per UDP camera: RTP even, RTCP odd), from this range;
    # cameras must reach the worker's address on them (docs/operations.md)
    rtp_udp_ports: tuple[int, int] = (50000, 59999)
    bye_timeout_s: float = Field(2.0, gt=0)  # after a sender's RTCP BYE: reopen when no new sender came
    fps_cameras: dict[str, float] = {}  # camera id -> N: decode every frame, sample N per second

    @field_validator("rtp_udp_ports")
    @classmethod
    def _port_range(cls, v: tuple[int, int]) -> tuple[int, int]:
        low, high = v
        if not 1024 <= low < high <= 65535 or high - (low + (low & 1)) < 1:
            raise ValueError("a range [low, high] within 1024-65535 that holds at least one even/odd port pair")
        return v


class DetectorSettings(_Strict):
    model: str = "sim-detector-int8"  # the demo model, INT8 (benchmarks/README.md, Model variants)
    providers: list[str] = ["CPUExecutionProvider"]
    intra_op_threads: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1)
    motion_threshold: float = Field(0.01, ge=0)
    force_interval_s: float = Field(10.0, gt=0)
    tile_lookout: bool = True
    # tile side = tile_scale x the model input: below 1, tiles are enlarged into the model, for a
    # model that misses people under ~30 px (YOLOX-nano on a lookout view: 0.5)
    tile_scale: float = Field(1.0, gt=0.1, le=4)
    tile_overlap: float = Field(0.25, ge=0, lt=0.9)


class AnalysisSettings(_Strict):
    """The analysis planner (camera_hub/analytics/planner.py): how often each camera is analysed."""

    hot_interval_s: float = Field(4.0, gt=0)  # at least this often with a candidate or open episode
    floor_interval_s: float = Field(15.0, gt=0)  # at least this often, every live camera
    max_in_flight: int = Field(256, ge=1)  # cameras armed or waiting (each waiting sample holds a frame)
    initial_rate: float = Field(50.0, gt=0)  # samples/s assumed until the first batches are measured
    tick_s: float = Field(0.25, gt=0)
    log_every_s: float = Field(30.0, gt=0)


class AlertSettings(_Strict):
    data_dir: str = "data"
    cooldown_s: float = Field(300.0, ge=0)
    # a clip runs from pre_roll_s before the rule's onset (which may be a sampling interval after
    # what happened: the older part comes from the keyframe time-lapse) to post_roll_s after the alert
    pre_roll_s: float = Field(20.0, ge=0)
    post_roll_s: float = Field(5.0, ge=0)
    stream_maxlen: int = Field(100_000, ge=100)
    stream_max_age_h: float = Field(24 * 30, gt=0)
    sla_hours: dict[str, float] = {"default": 30.0}
    offline_grace_s: float = Field(120.0, ge=0)


class EvidenceSettings(_Strict):
    """Keyframes of cameras with a rule candidate kept on disk for clips (camera_hub/evidence.py)."""

    enabled: bool = True
    linger_s: float = Field(30.0, ge=0)  # keep recording this long after the camera was last hot
    keep_s: float = Field(120.0, ge=0)  # a closed recording is deleted this long after (clips are cut by then)
    max_recordings: int = Field(1000, ge=1)  # at once, per worker (a worker holds up to ~1,000 cameras)
    max_recording_bytes: int = Field(32 * 1024 * 1024, ge=1024)  # then it goes on in a new file
    max_disk_bytes: int = Field(4 * 1024**3, ge=1024)  # all recordings of a worker
    flush_s: float = Field(1.0, gt=0)  # must stay well under the ring's full-rate seconds


class ApiSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    token_ttl_h: float = Field(12.0, gt=0)
    login_attempts_per_min: int = Field(5, ge=1)
    # the operator page's map background: the city's own (offline) tile server, e.g.
    # "/tiles/{z}/{x}/{y}.png" (same origin) or "https://tiles.city.example/{z}/{x}/{y}.png" (the page's
    # Content-Security-Policy must then allow that origin); unset: cameras on a plain projection
    map_tile_url: str | None = Field(None, pattern=r"^(https?://|/)\S*\{z\}\S*\{x\}\S*\{y\}\S*$")
    map_max_zoom: int = Field(18, ge=1, le=22)
    # connections and streams (docs/security.md, "Connections"): bounds on what one client can hold
    max_connections: int = Field(1000, ge=1)  # in all; lowered at start to fit the open-file limit
    max_connections_per_client: int = Field(100, ge=1)  # per client address (trusted proxies exempt)
    request_read_timeout_s: float = Field(10.0, gt=0)  # a whole request must arrive within this
    keep_alive_s: int = Field(5, ge=1)  # an idle connection is closed after this
    max_feeds_per_user: int = Field(8, ge=1)  # live feeds (SSE) open at once per user and API process
    # reverse proxies (addresses or CIDRs) whose X-Forwarded-For / -Proto are believed; nobody else's
    trusted_proxies: list[str] = []
    docs: bool = False  # serve /docs and /redoc (they load Swagger UI and ReDoc from a public CDN)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        try:
            return [str(ipaddress.ip_network(v.strip(), strict=False)) for v in value]
        except ValueError as exc:
            raise ValueError(f"not an IP address or CIDR: {exc}") from None


class LiveSettings(_Strict):
    """Live view over WebRTC (WHEP): the worker that reads a camera serves its viewers
    (camera_hub/live/, docs/architecture.md#live-view). The secret shared by the API and the
    workers is not a setting: it comes from the environment (CAMERA_HUB_LIVE_SECRET)."""

    enabled: bool = True
    host: str = "127.0.0.1"  # the worker's internal live endpoint (for the API only) listens here
    port: int = Field(0, ge=0, le=65535)  # 0: any free port (each worker registers its own in Redis)
    advertise_host: str | None = None  # how the API reaches the worker; default: host, or this host's name
    # extra ICE host candidates: the address browsers reach a worker at through NAT or a container
    # port mapping (the worker's own addresses are always offered; 127.0.0.1 never is)
    ice_addresses: list[str] = []
    udp_ports: tuple[int, int] | None = None  # bind ICE sockets in this range (publish it for NAT/containers)
    max_viewers_per_camera: int = Field(32, ge=1)
    max_sessions_per_user: int = Field(16, ge=1)  # a 4x4 video wall
    max_sessions_per_worker: int = Field(256, ge=1)
    max_session_s: float = Field(4 * 3600, gt=0)  # then the page asks again (the viewer's role is checked anew)
    connect_timeout_s: float = Field(20.0, gt=0)  # a session whose ICE/DTLS has not connected by then ends

    @field_validator("ice_addresses")
    @classmethod
    def _ip_addresses(cls, v: list[str]) -> list[str]:
        import ipaddress

        for a in v:
            ipaddress.ip_address(a)  # ValueError: "... does not appear to be an IPv4 or IPv6 address"
        return v

    @field_validator("udp_ports")
    @classmethod
    def _port_range(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and not 1024 <= v[0] <= v[1] <= 65535:
            raise ValueError("a UDP port range [low, high] within 1024-65535")
        return v


class Settings(_Strict):
    redis: RedisSettings = RedisSettings()
    ingest: IngestSettings = IngestSettings()
    detector: DetectorSettings = DetectorSettings()
    analysis: AnalysisSettings = AnalysisSettings()
    alerts: AlertSettings = AlertSettings()
    evidence: EvidenceSettings = EvidenceSettings()
    api: ApiSettings = ApiSettings()
    live: LiveSettings = LiveSettings()


class CityConfig(_Strict):
    city: CityInfo
    coverage_targets: CoverageTargets = CoverageTargets()
    districts: list[District] = Field(min_length=1)
    patrol_zones: list[PatrolZone] = []
    grid_workers: list[GridWorker] = []
    cameras: list[Camera] = []
    settings: Settings = Settings()

    def grids(self) -> Iterable[tuple[District, Street, Community, Grid]]:
        for d in self.districts:
            for s in d.streets:
                for c in s.communities:
                    for g in c.grids:
                        yield d, s, c, g


def camera_dump(camera: Camera) -> dict[str, Any]:
    """A camera as plain data (defaults left out) with its URLs revealed, for writing config
    files. Never log or serve the result: it holds credentials."""
    data = camera.model_dump(mode="json", exclude_defaults=True, exclude_none=True)
    data["main_url"] = camera.main_url.reveal()
    if camera.sub_url is not None:
        data["sub_url"] = camera.sub_url.reveal()
    for zone in data.get("zones", []):
        zone["polygon"] = [list(p) for p in zone["polygon"]]
    return data


# --------------------------------------------------------------------------- errors
@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field or '(top)'}: {self.message}"


class ConfigError(ValueError):
    """Config could not be loaded; ``issues`` says where (file, line, field) and why."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("invalid config:\n  " + "\n  ".join(str(i) for i in issues))


Loc = tuple[str | int, ...]


def _field_name(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Doc:
    """YAML data plus where each value stood (file, line), by path."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.lines: dict[Loc, tuple[str, int]] = {}
        self.issues: list[ConfigIssue] = []

    def where(self, loc: Loc) -> tuple[str, int | None]:
        # the deepest known prefix: pydantic may name a field that is missing from the YAML
        for n in range(len(loc), -1, -1):
            if tuple(loc[:n]) in self.lines:
                return self.lines[tuple(loc[:n])]
        return next(iter(self.lines.values()), ("config", 0))

    def issue(self, loc: Loc, message: str) -> None:
        file, line = self.where(loc)
        self.issues.append(ConfigIssue(file, line, _field_name(loc), mask_text(message)))

    def add_file(self, path: Path) -> None:
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.issues.append(ConfigIssue(name, None, "", f"cannot read: {exc}"))
            return
        try:
            if (line := _alias_line(text)) is not None:
                self.issues.append(ConfigIssue(name, line, "", ALIAS_REFUSED))
                return
        except yaml.YAMLError:
            pass  # malformed: the loader below says where
        loader = _LOADER(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return
            if not isinstance(node, yaml.MappingNode):
                self.issues.append(ConfigIssue(name, node.start_mark.line + 1, "", "top level must be a mapping"))
                return
            self._walk(node, (), name)
            data = loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            self.issues.append(ConfigIssue(name, line, "", f"malformed YAML: {mask_text(str(exc.problem))}"))
            return
        except yaml.YAMLError as exc:
            self.issues.append(ConfigIssue(name, None, "", f"malformed YAML: {mask_text(str(exc))}"))
            return
        finally:
            loader.dispose()
        for key, value in data.items():
            if key in self.data:
                self.issue((key,), f"defined again in {name}")
            self.data[key] = self._interpolate(value, (key,))

    def _walk(self, node: yaml.Node, loc: Loc, file: str) -> None:
        self.lines[loc] = (file, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = key_node.value
                if key in seen:
                    self.issues.append(
                        ConfigIssue(file, key_node.start_mark.line + 1, _field_name((*loc, key)), "duplicate key")
                    )
                seen.add(key)
                self._walk(value_node, (*loc, key), file)
                self.lines[(*loc, key)] = (file, key_node.start_mark.line + 1)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*loc, i), file)

    def _interpolate(self, value: Any, loc: Loc) -> Any:
        if isinstance(value, dict):
            return {k: self._interpolate(v, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._interpolate(v, (*loc, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and ENV_REFERENCE.search(value):
            return self._substitute(value, loc)
        return value

    def _substitute(self, value: str, loc: Loc) -> str:
        """``scheme://user:${CAMERA_HUB_SECRET_X}@host…`` in a secret field, with the variable
        percent-encoded in; any other reference is an issue (messages never show the value)."""
        m = _PASSWORD_REFERENCE.fullmatch(value) if _is_secret_field(loc) else None
        if m is None or len(ENV_REFERENCE.findall(value)) != 1:
            self.issue(loc, "a ${...} reference may stand only as the whole password of a camera's main_url "
                            "or sub_url, or of settings.redis.url")
            return value
        name = m["name"]
        if not name.startswith(SECRET_PREFIX):
            self.issue(loc, f"${{{name}}}: only environment variables named {SECRET_PREFIX}* may be referenced")
            return value
        if name not in os.environ:
            self.issue(loc, f"environment variable {name} is not set")
            return value
        return m["head"] + quote(os.environ[name], safe="") + m["tail"]


# the C loader when PyYAML has it (10x faster on a 1,000-camera file); marks are the same
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ALIAS_REFUSED = ("YAML aliases (*name) are not allowed: write the value out "
                 "(aliases let a few hundred bytes expand into gigabytes)")


def _alias_line(text: str) -> int | None:
    """The line of the first alias (``*name``, also in ``<<: *name``), or None. Scanned as events,
    before anything is built: a "billion laughs" document is refused in microseconds."""
    if "*" not in text:  # an alias cannot be written without one
        return None
    parser = _LOADER(text)
    try:
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, yaml.AliasEvent):
                return event.start_mark.line + 1
        return None
    finally:
        parser.dispose()


def _is_secret_field(loc: Loc) -> bool:
    """The fields meant for secrets: camera URLs and the Redis URL (all masked wherever shown)."""
    if loc == ("settings", "redis", "url"):
        return True
    return len(loc) == 3 and loc[0] == "cameras" and isinstance(loc[1], int) and loc[2] in ("main_url", "sub_url")


def _cross_checks(cfg: CityConfig, doc: _Doc) -> None:
    """Checks across the tree: unique ids, and every reference points at something that exists."""

    def unique(kind: str, items: Iterable[tuple[str, Loc]]) -> None:
        first: dict[str, Loc] = {}
        for ident, loc in items:
            if ident in first:
                file, line = doc.where(first[ident])
                doc.issue(loc, f"duplicate {kind} id {ident!r} (first at {file}:{line})")
            else:
                first.setdefault(ident, loc)

    grid_locs: list[tuple[str, Loc]] = []
    area_ids: list[tuple[str, Loc]] = []
    for di, d in enumerate(cfg.districts):
        area_ids.append((d.id, ("districts", di, "id")))
        for si, s in enumerate(d.streets):
            area_ids.append((s.id, ("districts", di, "streets", si, "id")))
            for ci, c in enumerate(s.communities):
                area_ids.append((c.id, ("districts", di, "streets", si, "communities", ci, "id")))
                for gi, g in enumerate(c.grids):
                    grid_locs.append((g.id, ("districts", di, "streets", si, "communities", ci, "grids", gi, "id")))
    unique("grid", grid_locs)
    unique("district/street/community", area_ids)
    unique("patrol zone", ((p.id, ("patrol_zones", i, "id")) for i, p in enumerate(cfg.patrol_zones)))
    unique("camera", ((c.id, ("cameras", i, "id")) for i, c in enumerate(cfg.cameras)))

    grid_ids = {g for g, _ in grid_locs}
    for pi, p in enumerate(cfg.patrol_zones):
        for gi, g in enumerate(p.grids):
            if g not in grid_ids:
                doc.issue(("patrol_zones", pi, "grids", gi), f"unknown grid {g!r}")
    unique("grid worker", ((w.id, ("grid_workers", i, "id")) for i, w in enumerate(cfg.grid_workers)))
    for wi, w in enumerate(cfg.grid_workers):
        for gi, g in enumerate(w.grids):
            if g not in grid_ids:
                doc.issue(("grid_workers", wi, "grids", gi), f"grid worker {w.id} looks after unknown grid {g!r}")
    for ci, cam in enumerate(cfg.cameras):
        for gi, g in enumerate(cam.grids):
            if g not in grid_ids:
                doc.issue(("cameras", ci, "grids", gi), f"camera {cam.id} watches unknown grid {g!r}")
        zones = ((z.id, ("cameras", ci, "zones", zi, "id")) for zi, z in enumerate(cam.zones))
        unique(f"zone (camera {cam.id})", zones)


def load_config(path: str | os.PathLike[str]) -> CityConfig:
    """Load a city config folder or file. Raises :class:`ConfigError` with every problem found."""
    root = Path(path)
    if root.is_dir():
        files = [root / n for n in CONFIG_FILES if (root / n).exists()]
        if not files:
            raise ConfigError([ConfigIssue(str(root), None, "", f"no {' / '.join(CONFIG_FILES)} in this folder")])
        return load_files(files)
    if not root.exists():
        raise ConfigError([ConfigIssue(str(root), None, "", "no such file or folder")])
    return load_files([root])


def load_files(files: Iterable[Path]) -> CityConfig:
    """Load YAML files whose top-level keys together make one city config."""
    doc = _Doc()
    for f in files:
        doc.add_file(f)
    if doc.issues:
        raise ConfigError(doc.issues)
    try:
        cfg = CityConfig.model_validate(doc.data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            loc = tuple(err["loc"])
            # discriminated unions add the tag to the path (rules[0].vending.min_dwell_s): drop it
            loc = tuple(p for i, p in enumerate(loc) if not (i >= 2 and loc[i - 2] == "rules"
                                                             and isinstance(loc[i - 1], int)))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown key {loc[-1]!r}"
            doc.issue(loc, msg)
        raise ConfigError(doc.issues) from None
    _cross_checks(cfg, doc)
    if doc.issues:
        raise ConfigError(doc.issues)
    return cfg
