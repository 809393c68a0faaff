"""Where a command finds the city config and the models when it is not told exactly. Every
command resolves them here, so the search order is written (and documented) once.

City config (``validate``, ``cameras export``, ``users``, ``api``, ``worker``, ``sim``, ``demo``):

1. ``--config PATH`` (``validate``: its argument)
2. ``$CAMERA_HUB_CONFIG``
3. ``./config/demo-city`` in the current folder, if it is there (what ``camera-hub demo-city
   generate`` writes by default)
4. the demo city packaged with camera-hub

A path given by 1 or 2 must exist: it is never quietly replaced by a later one. ``cameras
import`` writes into the folder it finds, so it stops at 3 and never touches the packaged copy.

Models (manifests ``NAME.yaml`` and model files ``*.onnx``):

1. ``--models DIR`` (``worker``, ``demo``, ``detect``)
2. ``$CAMERA_HUB_MANIFEST_PATH`` for manifests, ``$CAMERA_HUB_MODEL_PATH`` for model files
   (folders separated by ``os.pathsep``)
3. ``./models`` in the current folder, if it is there
4. the models packaged with camera-hub (the demo model, its INT8 variant and the manifests)
5. model files only, in a source checkout: ``../shared/assets/models`` (the test assets)

"Packaged": ``camera_hub/bundled/`` inside an installed wheel (``setup.py`` copies
``config/demo-city/`` and ``models/`` there at build time); in a source checkout, those two
folders of the repository themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CONFIG_ENV = "CAMERA_HUB_CONFIG"
MANIFEST_ENV = "CAMERA_HUB_MANIFEST_PATH"
MODEL_ENV = "CAMERA_HUB_MODEL_PATH"
LOCAL_CONFIG = Path("config") / "demo-city"  # relative to the current folder
LOCAL_MODELS = Path("models")

PACKAGE = Path(__file__).resolve().parent
BUNDLED = PACKAGE / "bundled"  # filled by setup.py's build step; absent in a source checkout
CHECKOUT = PACKAGE.parent  # the repository root when running from a source checkout

_models_flag: Path | None = None  # --models of this process (set_models_dir)


class NotFound(LookupError):
    """Nothing usable on the search path; the message says what was searched."""


def _is_checkout() -> bool:
    return not BUNDLED.is_dir() and (CHECKOUT / "pyproject.toml").is_file()


def packaged_demo_city() -> Path:
    """The demo city that ships with camera-hub (in a checkout: ``config/demo-city``)."""
    return CHECKOUT / "config" / "demo-city" if _is_checkout() else BUNDLED / "demo-city"


def packaged_models() -> Path:
    """The models that ship with camera-hub (in a checkout: ``models/``)."""
    return CHECKOUT / "models" if _is_checkout() else BUNDLED / "models"


@dataclass(frozen=True)
class Found:
    path: Path
    source: str  # how it was found, for messages: "--config", "$CAMERA_HUB_CONFIG", ...


def find_config(given: Path | None, *, option: str = "--config", writable: bool = False) -> Found:
    """The city config by the search order in this module's doc. ``writable``: the caller will
    write into it, so the packaged demo city is not a candidate."""
    if given is not None:
        if not given.exists():
            raise NotFound(f"{option} {given}: no such file or folder")
        return Found(given, option)
    env = os.environ.get(CONFIG_ENV, "")
    if env:
        if not Path(env).exists():
            raise NotFound(f"${CONFIG_ENV}={env}: no such file or folder (unset it to use ./{LOCAL_CONFIG} "
                           "or the packaged demo city)")
        return Found(Path(env), f"${CONFIG_ENV}")
    if LOCAL_CONFIG.is_dir():
        return Found(LOCAL_CONFIG, f"./{LOCAL_CONFIG}")
    searched = [f"{option} (not given)", f"${CONFIG_ENV} (not set)", f"./{LOCAL_CONFIG} (not in {Path.cwd()})"]
    if writable:
        raise NotFound("no city config folder to write into; searched " + ", ".join(searched)
                       + f" (the packaged demo city is read-only: pass {option} or copy it with "
                       "`camera-hub demo-city generate`)")
    packaged = packaged_demo_city()
    if packaged.is_dir():
        return Found(packaged, "the packaged demo city")
    searched.append(f"the packaged demo city ({packaged}: missing; a broken install?)")
    raise NotFound("no city config found; searched " + ", ".join(searched))


def cli_config(given: Path | None, *, option: str = "--config", writable: bool = False,
               exit_code: int = 1, quiet: bool = False) -> Path:
    """:func:`find_config` for a command: on failure print the message and exit ``exit_code``;
    when the config did not come from ``option``, say on stderr which one is used."""
    import typer

    try:
        found = find_config(given, option=option, writable=writable)
    except NotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code) from None
    if found.source != option and not quiet:
        typer.echo(f"city config: {found.path} ({found.source})", err=True)
    return found.path


def set_models_dir(path: Path | None) -> None:
    """``--models DIR`` for this process: searched first for manifests and model files."""
    global _models_flag
    if path is not None and not path.is_dir():
        raise NotFound(f"--models {path}: no such folder")
    _models_flag = path


def models_flag() -> Path | None:
    return _models_flag


def cli_models(given: Path | None, *, exit_code: int = 2) -> None:
    """:func:`set_models_dir` for a command: a missing folder prints the message and exits."""
    import typer

    try:
        set_models_dir(given)
    except NotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code) from None


def _env_dirs(name: str) -> list[Path]:
    return [Path(p) for p in os.environ.get(name, "").split(os.pathsep) if p]


def _dedup(dirs: list[Path]) -> list[Path]:
    out: list[Path] = []
    seen: set[Path] = set()
    for d in dirs:
        key = d.resolve() if d.exists() else d
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def manifest_dirs() -> list[Path]:
    """Folders searched for model manifests, first match wins."""
    flag = [_models_flag] if _models_flag is not None else []
    local = [LOCAL_MODELS.resolve()] if LOCAL_MODELS.is_dir() else []  # absolute: a later chdir cannot move it
    return _dedup(flag + _env_dirs(MANIFEST_ENV) + local + [packaged_models()])


def model_dirs() -> list[Path]:
    """Folders searched for model files (a manifest's ``file``), first match wins."""
    flag = [_models_flag] if _models_flag is not None else []
    local = [LOCAL_MODELS.resolve()] if LOCAL_MODELS.is_dir() else []  # absolute: a later chdir cannot move it
    shared = [CHECKOUT.parent / "shared" / "assets" / "models"] if _is_checkout() else []
    return _dedup(flag + _env_dirs(MODEL_ENV) + local + [packaged_models()] + shared)


# --help texts of the options above (each command shows the same order)
# (parentheses: typer's rich help would read [square brackets] as markup and drop them)
CONFIG_HELP = (f"City config folder or YAML file (default: ${CONFIG_ENV}, else ./{LOCAL_CONFIG}, "
               "else the packaged demo city).")
MODELS_HELP = ("Folder of model manifests and .onnx files, searched first (then $CAMERA_HUB_MANIFEST_PATH / "
               "$CAMERA_HUB_MODEL_PATH, ./models, the packaged models).")
