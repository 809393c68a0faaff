"""Manifests: a model whose file or outputs differ from its manifest is refused at load."""

from pathlib import Path

import pytest
import yaml

from detectors.detector import load_detector
from detectors.manifest import Manifest, ModelError, find_manifest, model_search_path

REPO = Path(__file__).resolve().parents[2]


def test_repo_manifests_are_valid_and_never_ship_the_model():
    names = sorted(p.stem for p in (REPO / "models").glob("*.yaml"))
    assert {"yolox-nano", "nanodet-m", "light-person"} <= set(names)
    for n in names:
        m = find_manifest(n)
        assert m is not None and m.name == n
        assert not (REPO / "models" / m.file).exists() or m.name in ("sim-detector", "sim-detector-int8")


def test_manifest_rejects_path_like_file_and_unknown_threshold_class():
    base = yaml.safe_load((REPO / "models" / "light-person.yaml").read_text())
    with pytest.raises(ValueError, match="bare .onnx file name"):
        Manifest.model_validate(base | {"file": "../../etc/passwd.onnx"})
    with pytest.raises(ValueError, match="not in classes"):
        Manifest.model_validate(base | {"class_thresholds": {"goods": 0.5}})


def test_unknown_model_name_is_refused():
    with pytest.raises(ModelError, match="no model manifest named"):
        load_detector("no-such-model")
    with pytest.raises(ModelError, match="no model manifest named"):
        load_detector("../../etc/passwd")


def _manifest_dir(tmp_path: Path, monkeypatch, **changes) -> None:
    data = yaml.safe_load((REPO / "models" / "light-person.yaml").read_text()) | changes
    d = tmp_path / "manifests"
    d.mkdir()
    (d / f"{data['name']}.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("CAMERA_HUB_MANIFEST_PATH", str(d))


def test_tampered_file_is_refused(assets, tmp_path, monkeypatch):
    src = assets / "models" / "light_person_detector.onnx"
    bad = tmp_path / "files" / "light_person_detector.onnx"
    bad.parent.mkdir()
    data = bytearray(src.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in the last weight
    bad.write_bytes(bytes(data))
    monkeypatch.setenv("CAMERA_HUB_MODEL_PATH", str(bad.parent))
    assert model_search_path()[0] == bad.parent
    with pytest.raises(ModelError, match="sha256 .* refusing it"):
        load_detector("light-person")


def test_output_shapes_must_match_manifest(assets, tmp_path, monkeypatch):
    _manifest_dir(tmp_path, monkeypatch, name="wrong-shape", outputs={"output": [1, 756, 85]})
    with pytest.raises(ModelError, match="do not match the manifest"):
        load_detector("wrong-shape")


def test_class_count_must_match_manifest(assets, tmp_path, monkeypatch):
    _manifest_dir(tmp_path, monkeypatch, name="wrong-classes", classes=["person", "goods"])
    with pytest.raises(ModelError, match="1 classes in the outputs, 2 in the manifest"):
        load_detector("wrong-classes")


def test_missing_file_says_where_it_looked(tmp_path, monkeypatch):
    _manifest_dir(tmp_path, monkeypatch, name="absent", file="absent.onnx")
    with pytest.raises(ModelError, match="absent.onnx not found .*CAMERA_HUB_MODEL_PATH"):
        load_detector("absent")


def test_onnx_path_with_known_hash_uses_its_manifest(assets):
    det = load_detector(str(assets / "models" / "yolox_nano_416x416.onnx"))
    assert det.name == "yolox-nano" and det.threshold("person") == pytest.approx(0.35)
