"""Masking of credentials: the one place that knows how a secret looks in a URL or a text.

Camera URLs carry passwords (rtsp://user:pass@host/...). Everything that may print, log,
export or raise a URL goes through :func:`mask_url` or :func:`mask_text` first.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

_SCHEME = r"[a-zA-Z][a-zA-Z0-9+.-]*://"
# scheme://user:password@  — a password written unencoded may hold '@' and spaces, so free text
# cannot say where it ends: it runs to the last '@' on the line before the next URL. That may hide
# more than the password (a mail address after the URL), never less.
_USERINFO = re.compile(rf"(?P<scheme>{_SCHEME})(?P<user>[^:/@\s]*):(?P<pw>(?:(?!{_SCHEME})[^\r\n])*)@")
# query parameters that carry secrets in some camera URLs (?password=..., ?token=...)
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pwd|token|auth|key)=)[^&\s]*")


def mask_url(url: str) -> str:
    """Return ``url`` with its password (and secret query values) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_text(url)
    if parts.password is None:
        return mask_text(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:{MASK}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return mask_text(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))


def mask_text(text: str) -> str:
    """Mask every URL password and secret query value found anywhere in ``text``."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m[1]}{MASK}", text)


class RedactingFilter(logging.Filter):
    """Logging filter that masks credentials in every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        masked = mask_text(msg)
        if masked != msg:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            # the traceback text is rendered later by the formatter: pre-render and mask it
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def setup_logging(level: str = "INFO") -> None:
    """Configure root logging once for a process, with credential masking on every handler."""
    root = logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(level.upper())
