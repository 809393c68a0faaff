"""Security headers on every HTTP response: a Content-Security-Policy that lets the operator page
load only from this origin, no framing (clickjacking), no MIME sniffing."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})

# The operator page (camera_hub/api/web/): scripts, styles, data and media from this origin only.
# Style *attributes* are allowed (the page sizes bars with them); they cannot run script.
_PAGE = ("default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
         "img-src 'self' data: blob:{tiles}; media-src 'self' blob:; connect-src 'self'; font-src 'self'; "
         "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# /docs and /redoc (only with settings.api.docs): FastAPI's pages load Swagger UI and ReDoc from
# jsdelivr and start them with an inline script
_DOCS = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
         "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
         "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
         "worker-src blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def page_policy(map_tile_url: str | None = None) -> str:
    """The operator page's CSP; an absolute ``settings.api.map_tile_url`` adds its origin to img-src."""
    parts = urlsplit(map_tile_url or "")
    tiles = f" {parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""
    return _PAGE.format(tiles=tiles)


class SecurityHeaders:
    """Adds CSP, X-Frame-Options and X-Content-Type-Options to every response (those the app set win)."""

    def __init__(self, app: ASGIApp, policy: str, docs: bool = False) -> None:
        self.app = app
        self.headers = _headers(policy)
        self.docs_headers = _headers(_DOCS) if docs else self.headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.docs_headers if scope["path"] in DOCS_PATHS else self.headers

        async def send_with_headers(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                have = {name.lower() for name, _ in msg.get("headers", [])}
                msg = {**msg, "headers": [*msg.get("headers", []), *(h for h in extra if h[0] not in have)]}
            await send(msg)

        await self.app(scope, receive, send_with_headers)


def _headers(policy: str) -> list[tuple[bytes, bytes]]:
    return [(b"content-security-policy", policy.encode()), (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff")]
