"""Credential masking in URLs, free text and log records."""

from __future__ import annotations

import logging

import pytest

from camera_hub.redact import RedactingFilter, mask_text, mask_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("rtsp://admin:s3cr3t@10.0.0.5:554/Streaming/101", "rtsp://admin:***@10.0.0.5:554/Streaming/101"),
        ("rtsps://u:p%40ss@cam.example:322/x", "rtsps://u:***@cam.example:322/x"),
        ("rtsp://10.0.0.5/live", "rtsp://10.0.0.5/live"),
        ("rtsp://user@10.0.0.5/live", "rtsp://user@10.0.0.5/live"),
        ("rtsp://10.0.0.5/live?user=a&password=hunter2", "rtsp://10.0.0.5/live?user=a&password=***"),
        ("rtsp://a:b@[fe80::1]:554/s", "rtsp://a:***@[fe80::1]:554/s"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_text_finds_urls_inside_messages() -> None:
    text = "open failed for rtsp://admin:topsecret@1.2.3.4/a (401), retry rtsp://x:y@h/b"
    out = mask_text(text)
    assert "topsecret" not in out and ":y@" not in out
    assert "rtsp://admin:***@1.2.3.4/a" in out


def test_logging_filter_masks_message_and_traceback() -> None:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("redact-test")
    log.addHandler(handler)
    try:
        log.warning("cannot open %s", "rtsp://admin:topsecret@1.2.3.4/a")
        try:
            raise ConnectionError("rtsp://admin:topsecret@1.2.3.4/a refused")
        except ConnectionError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    joined = "\n".join(records)
    assert "topsecret" not in joined
    assert "cannot open rtsp://admin:***@1.2.3.4/a" in joined
    assert "ConnectionError: rtsp://admin:***@1.2.3.4/a refused" in joined


@pytest.mark.parametrize(("text", "secret", "masked"), [
    ("open failed: rtsp://admin:ab@cd@10.0.0.1/x (401)", ["ab@cd", "cd@"], "rtsp://admin:***@10.0.0.1/x (401)"),
    ("open failed: rtsp://admin:my secret@10.0.0.1/x (401)", ["my secret", "secret"], "rtsp://admin:***@10.0.0.1/x"),
    # FFmpeg's error text quotes the URL as it was given
    ("[Errno 111] Connection refused: 'rtsp://admin:p@ss word@127.0.0.1:554/x'", ["p@ss", "word"],
     "'rtsp://admin:***@127.0.0.1:554/x'"),
], ids=["at-sign", "space", "both-in-ffmpeg-text"])
def test_mask_text_hides_passwords_with_at_signs_and_spaces(text: str, secret: list[str], masked: str) -> None:
    out = mask_text(text)
    assert masked in out, out
    for piece in secret:
        assert piece not in out


def test_mask_text_keeps_two_urls_on_a_line_apart() -> None:
    out = mask_text("rtsp://a:p@1@h1/x then rtsp://b:q 2@h2/y")
    assert out == "rtsp://a:***@h1/x then rtsp://b:***@h2/y"
