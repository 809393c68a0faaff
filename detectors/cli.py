"""``camera-hub detect``: run a model on images, video files or RTSP streams and print JSON lines,
so an analyst can check a model on their own footage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from camera_hub import paths


def register(app: typer.Typer) -> None:
    app.command("detect")(detect)


def detect(
    sources: Annotated[list[str], typer.Argument(help="Images, video files or rtsp:// URLs.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Manifest name (NAME.yaml on the manifest search path, "
                                       "see --models) or .onnx path.")],
    format: Annotated[str | None, typer.Option("--format", help="yolox | ultralytics | nanodet "
                                               "(default: recognised from the output shapes).")] = None,
    every: Annotated[float | None, typer.Option("--every", min=0.0, help="Seconds between sampled video "
                                                "frames (default 1; 0 = every frame).")] = None,
    max_frames: Annotated[int | None, typer.Option("--max-frames", min=1, help="Stop each source after "
                                                   "this many sampled frames.")] = None,
    tile: Annotated[bool, typer.Option("--tile", help="Tiled inference (lookout cameras, small people).")] = False,
    threads: Annotated[int, typer.Option("--threads", min=1, help="onnxruntime intra-op threads.")] = 1,
    models: Annotated[Path | None, typer.Option("--models", help=paths.MODELS_HELP, show_default=False)] = None,
) -> None:
    """Run a detector on images, videos or RTSP streams; print JSON lines.

    One line per image or sampled frame, with "source" (URL passwords masked), "frame", "t"
    (seconds into a file, wall clock for a stream) and "detections": objects with "label",
    "score" and "box" (x1, y1, x2, y2 in pixels of the frame)."""
    import json
    import sys

    from camera_hub.config import DetectorSettings
    from camera_hub.redact import mask_text
    from detectors.detector import load_detector
    from detectors.manifest import ModelError
    from detectors.sources import SourceError, frames, shown
    from detectors.tiling import detect_tiled

    paths.cli_models(models)
    try:
        detector = load_detector(model, DetectorSettings(intra_op_threads=threads), format=format)
    except ModelError as exc:
        typer.echo(f"error: {mask_text(str(exc))}", err=True)
        raise typer.Exit(2) from None
    step = 1.0 if every is None else (every or None)
    failed = 0
    for source in sources:
        try:
            for fr in frames(source, step, max_frames=max_frames):
                found = (detect_tiled(detector, [fr.image]) if tile else detector.detect([fr.image]))[0]
                out = {"source": shown(source), "frame": fr.index, "t": fr.t,
                       "detections": [{"label": d.label, "score": d.score, "box": list(d.box)} for d in found]}
                sys.stdout.write(json.dumps(out) + "\n")
                sys.stdout.flush()
        except SourceError as exc:
            typer.echo(f"error: {exc}", err=True)
            failed += 1
    if failed:
        raise typer.Exit(1)
