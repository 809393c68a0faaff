"""Config hardening (issue #12 items 7, 8, 10): ``${VAR}`` only as the password of a secret field
and only from CAMERA_HUB_SECRET_* variables, percent-encoded in; CSV import never carries a
reference; unencoded passwords in literal URLs are refused without quoting them; YAML aliases
(the "billion laughs") are refused before anything is built. Real files, real environment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from redis.connection import parse_url
from test_config import BASE, SECRET, expect_error, line_of, load_text

from camera_hub.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
REDIS_URL_WITH_PASSWORD = "redis://:r3dis-Pa55@10.9.9.9:6379/0"
REFERENCE_ONLY = "may stand only as the whole password"


def test_a_camera_name_cannot_pull_an_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the finding: a camera named ${CAMERA_HUB_REDIS_URL} showed the Redis password to a viewer
    monkeypatch.setenv("CAMERA_HUB_REDIS_URL", REDIS_URL_WITH_PASSWORD)
    text = BASE.replace("name: Shop front", "name: ${CAMERA_HUB_REDIS_URL}")
    err = expect_error(tmp_path, text, line_of(text, "${CAMERA_HUB_REDIS_URL}"), "cameras[0].name", REFERENCE_ONLY)
    assert "r3dis-Pa55" not in str(err)


@pytest.mark.parametrize(("old", "new", "field"), [
    ("name: Test City", "name: '${CAMERA_HUB_SECRET_X}'", "city.name"),
    ('hours: "07:00-22:00"', 'hours: "${CAMERA_HUB_SECRET_X}"', "cameras[0].zones[0].hours"),
    (f"admin:{SECRET}@10.1.2.4", f"admin:{SECRET}@${{CAMERA_HUB_SECRET_X}}", "cameras[1].main_url"),  # host
    (f"admin:{SECRET}@10.1.2.4", "${CAMERA_HUB_SECRET_X}:pw@10.1.2.4", "cameras[1].main_url"),  # user
    (f"admin:{SECRET}@10.1.2.4", "admin:pre${CAMERA_HUB_SECRET_X}@10.1.2.4", "cameras[1].main_url"),  # part of it
], ids=["city-name", "zone-hours", "url-host", "url-user", "part-of-password"])
def test_a_reference_anywhere_but_a_whole_url_password_fails_at_its_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str, field: str) -> None:
    monkeypatch.setenv("CAMERA_HUB_SECRET_X", "env-value-1")  # set: only the place is wrong
    text = BASE.replace(old, new, 1)
    err = expect_error(tmp_path, text, line_of(text, "${CAMERA_HUB_SECRET_X}"), field, REFERENCE_ONLY)
    assert "env-value-1" not in str(err)


def test_only_camera_hub_secret_variables_may_be_referenced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMERA_HUB_REDIS_URL", REDIS_URL_WITH_PASSWORD)
    text = BASE.replace(f"admin:{SECRET}@10.1.2.4", "admin:${CAMERA_HUB_REDIS_URL}@10.1.2.4")
    err = expect_error(tmp_path, text, line_of(text, "${CAMERA_HUB_REDIS_URL}"), "cameras[1].main_url",
                       "only environment variables named CAMERA_HUB_SECRET_* may be referenced")
    assert "r3dis-Pa55" not in str(err)


def test_a_secret_is_percent_encoded_into_camera_and_redis_urls(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cam_pw, redis_pw = "ab@cd/efgh99", "Sec/ret 9#?%"
    monkeypatch.setenv("CAMERA_HUB_SECRET_CAM_PW", cam_pw)
    monkeypatch.setenv("CAMERA_HUB_SECRET_REDIS_PW", redis_pw)
    text = (BASE.replace(f"admin:{SECRET}@10.1.2.4", "admin:${CAMERA_HUB_SECRET_CAM_PW}@10.1.2.4")
            + "settings:\n  redis: {url: 'redis://:${CAMERA_HUB_SECRET_REDIS_PW}@10.9.9.9:6379/0'}\n")
    cfg = load_text(tmp_path, text)
    url = cfg.cameras[1].main_url.reveal()
    assert url == "rtsp://admin:ab%40cd%2Fefgh99@10.1.2.4:554/main"
    parts = urlsplit(url)
    assert (parts.hostname, parts.port, parts.path, unquote(parts.password or "")) == ("10.1.2.4", 554, "/main", cam_pw)
    redis = parse_url(cfg.settings.redis.url)  # redis-py's own reading of the URL
    assert (redis["host"], redis["port"], redis["password"]) == ("10.9.9.9", 6379, redis_pw)


@pytest.mark.parametrize(("password", "words", "shown"), [
    ("ab@cd/efgh99", "an '@' after the host", ["cd/efgh99", "efgh99"]),
    ("Sec/ret99", "the port is not a number", ["Sec", "ret99"]),
    ("hunter 2", "a space or control character", ["hunter"]),
], ids=["at-and-slash", "slash", "space"])
def test_an_unencoded_password_in_a_literal_url_is_refused_without_showing_it(
        tmp_path: Path, password: str, words: str, shown: list[str]) -> None:
    text = BASE.replace(f"admin:{SECRET}@10.1.2.4", f"admin:{password}@10.1.2.4")
    err = expect_error(tmp_path, text, line_of(text, password), "cameras[1].main_url", words)
    assert "%40" in str(err)  # says how to write it
    for piece in shown:
        assert piece not in str(err)


BILLION_LAUGHS = """\
lol1: &lol1 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]
lol2: &lol2 [*lol1,*lol1,*lol1,*lol1,*lol1,*lol1,*lol1,*lol1,*lol1,*lol1]
lol3: &lol3 [*lol2,*lol2,*lol2,*lol2,*lol2,*lol2,*lol2,*lol2,*lol2,*lol2]
lol4: &lol4 [*lol3,*lol3,*lol3,*lol3,*lol3,*lol3,*lol3,*lol3,*lol3,*lol3]
lol5: &lol5 [*lol4,*lol4,*lol4,*lol4,*lol4,*lol4,*lol4,*lol4,*lol4,*lol4]
lol6: &lol6 [*lol5,*lol5,*lol5,*lol5,*lol5,*lol5,*lol5,*lol5,*lol5,*lol5]
lol7: &lol7 [*lol6,*lol6,*lol6,*lol6,*lol6,*lol6,*lol6,*lol6,*lol6,*lol6]
lol8: &lol8 [*lol7,*lol7,*lol7,*lol7,*lol7,*lol7,*lol7,*lol7,*lol7,*lol7]
lol9: &lol9 [*lol8,*lol8,*lol8,*lol8,*lol8,*lol8,*lol8,*lol8,*lol8,*lol8]
"""


def test_the_billion_laughs_fails_fast_at_the_first_alias(tmp_path: Path) -> None:
    # before: 13.8 s and 1.5 GB for a document like this one
    path = tmp_path / "city.yaml"
    path.write_text(BASE + BILLION_LAUGHS)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert time.perf_counter() - t0 < 0.5
    [issue] = info.value.issues
    assert issue.line == line_of(BASE + BILLION_LAUGHS, "lol2:") and "aliases" in issue.message


def test_a_merge_key_alias_is_refused_too(tmp_path: Path) -> None:
    text = BASE.replace("patrol_zones:\n", "x-defaults: &d {lat: 28.2, lon: 112.9}\npatrol_zones:\n")
    text = text.replace("location: {lat: 28.2, lon: 112.9}", "location: {<<: *d}", 1)
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    assert [(i.line, "aliases" in i.message) for i in info.value.issues] == [(line_of(text, "<<: *d"), True)]


def test_csv_import_never_carries_a_reference_into_cameras_yaml(tmp_path: Path) -> None:
    """Through ``camera-hub cameras import``: a reference in any cell fails with its line and
    column, and cameras.yaml stays as it was (before, it was written and expanded at load)."""
    city, cameras = BASE.split("cameras:\n")
    cfg_dir = tmp_path / "city"
    cfg_dir.mkdir()
    (cfg_dir / "city.yaml").write_text(city)
    (cfg_dir / "cameras.yaml").write_text("cameras:\n" + cameras)
    before = (cfg_dir / "cameras.yaml").read_bytes()
    csv_path = tmp_path / "cams.csv"
    csv_path.write_text("id,name,kind,main_url,sub_url,lat,lon,grids\n"
                        "cam-1,${CAMERA_HUB_REDIS_URL},community,rtsp://u:pw@10.0.0.1/1,,28.1,112.9,g1\n"
                        "cam-2,B,community,rtsp://u:${CAMERA_HUB_SECRET_PW}@10.0.0.2/2,,28.1,112.9,g2\n")
    env = {**os.environ, "CAMERA_HUB_REDIS_URL": REDIS_URL_WITH_PASSWORD, "CAMERA_HUB_SECRET_PW": "env-value-2"}
    res = subprocess.run([sys.executable, "-m", "camera_hub.cli", "cameras", "import", str(csv_path),
                          "--config", str(cfg_dir)], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"{csv_path}:2: name: a ${{...}} reference" in res.stderr
    assert f"{csv_path}:3: main_url: a ${{...}} reference" in res.stderr
    assert (cfg_dir / "cameras.yaml").read_bytes() == before
    assert "r3dis-Pa55" not in res.stdout + res.stderr and "env-value-2" not in res.stdout + res.stderr
