"""Model manifests (``NAME.yaml``): what a model file is, checked before it is trusted.

A manifest names the file (a bare file name, looked up on the model search path of
:mod:`camera_hub.paths`; only the demo models are kept in the repository), its format, input
size, classes, per-class score thresholds, licence, sha256 and the output shapes it must have. A
file whose hash or outputs differ is refused at load.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from camera_hub import paths

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ModelError(ValueError):
    """A model that cannot be used: missing, tampered with, or not what its manifest says."""


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_RE.pattern)
    file: str  # bare file name, found on the model search path
    format: str  # a detectors.formats plugin name: yolox | ultralytics | nanodet
    input_size: tuple[int, int]  # width, height of the model input
    classes: list[str] = Field(min_length=1)
    score_threshold: float = Field(0.3, gt=0, lt=1)
    class_thresholds: dict[str, float] = {}
    nms_iou: float = Field(0.45, gt=0, le=1)
    outputs: dict[str, list[int]] = {}  # output name -> shape (batch dim included, any value)
    licence: str
    source: str = ""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("file")
    @classmethod
    def _bare_name(cls, v: str) -> str:
        if not NAME_RE.match(v) or not v.endswith(".onnx"):
            raise ValueError(f"file must be a bare .onnx file name, got {v!r}")
        return v

    @model_validator(mode="after")
    def _known_classes(self) -> Manifest:
        unknown = set(self.class_thresholds) - set(self.classes)
        if unknown:
            raise ValueError(f"class_thresholds names classes not in classes: {sorted(unknown)}")
        return self

    def threshold(self, label: str) -> float:
        return self.class_thresholds.get(label, self.score_threshold)


def manifest_dirs() -> list[Path]:
    """Where manifests are looked for (``camera_hub.paths``: --models, $CAMERA_HUB_MANIFEST_PATH,
    ./models, the packaged models)."""
    return paths.manifest_dirs()


def model_search_path() -> list[Path]:
    """Where model files are looked for (``camera_hub.paths``: --models, $CAMERA_HUB_MODEL_PATH,
    ./models, the packaged models, in a checkout ../shared/assets/models)."""
    return paths.model_dirs()


def load_manifest(path: Path) -> Manifest:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Manifest.model_validate(data)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise ModelError(f"manifest {path.name}: {exc}") from exc


def find_manifest(name: str) -> Manifest | None:
    if not NAME_RE.match(name):
        return None
    for d in manifest_dirs():
        p = d / f"{name}.yaml"
        if p.is_file():
            return load_manifest(p)
    return None


def all_manifests() -> list[Manifest]:
    out = []
    for d in manifest_dirs():
        for p in sorted(d.glob("*.yaml")) if d.is_dir() else []:
            try:
                out.append(load_manifest(p))
            except ModelError:
                continue
    return out


def resolve_file(m: Manifest) -> Path:
    for d in model_search_path():
        p = d / m.file
        if p.is_file():
            return p
    where = ", ".join(str(d) for d in model_search_path())
    raise ModelError(f"model {m.name}: file {m.file} not found (searched {where}; "
                     "pass --models DIR or set CAMERA_HUB_MODEL_PATH)")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(m: Manifest, path: Path) -> None:
    digest = sha256_of(path)
    if digest != m.sha256:
        raise ModelError(f"model {m.name}: sha256 of {path.name} is {digest}, manifest says {m.sha256}; refusing it")


def verify_outputs(m: Manifest, outputs: dict[str, list[int | str | None]]) -> None:
    """Output names and shapes (batch dim ignored) must equal the manifest's."""
    if not m.outputs:
        return
    want = {k: list(v[1:]) for k, v in m.outputs.items()}
    got = {k: list(v[1:]) for k, v in outputs.items()}
    if want != got:
        raise ModelError(f"model {m.name}: outputs {got} do not match the manifest's {want}; refusing it")
