"""The ``camera-hub`` command. Each part owns its commands (a ``register(app)`` in its own
``cli`` module); this file only composes them, so adding a part never means editing another."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    help="Camera Hub: RTSP ingest, ONNX detectors, alerts and coverage for a city camera network.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold camera passwords
    epilog="Without --config a command uses $CAMERA_HUB_CONFIG, else ./config/demo-city, else the demo city "
           "packaged with camera-hub. Models (manifests, .onnx files): --models DIR, $CAMERA_HUB_MANIFEST_PATH / "
           "$CAMERA_HUB_MODEL_PATH, ./models, then the packaged models.",
)

# Order is the order of `camera-hub --help`.
COMMAND_MODULES = [
    "camera_hub.config_cli",
    "detectors.cli",
    "camera_hub.ingest.cli",
    "camera_hub.api.cli",
    "camera_hub.sim.cli",
    "camera_hub.demo",
]


@app.callback()
def _root() -> None:
    """Camera Hub command line."""


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
