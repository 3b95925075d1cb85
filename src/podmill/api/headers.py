"""Browser hardening headers on every answer, in one pure ASGI middleware.

HTML answers (the digest page, /docs, /redoc) get a Content-Security-Policy that loads
nothing from elsewhere: scripts, styles, images and fonts only from this origin (the
Swagger UI and ReDoc files are served from the package by fastapi-offline). Swagger UI
and ReDoc start themselves from an inline script and ReDoc builds its styles at run
time, hence ``'unsafe-inline'`` for scripts and styles on those two pages only; every
other HTML page (digests) gets ``script-src 'none'``. Every answer gets ``nosniff``, a
``no-referrer`` policy and ``frame-ancestors 'none'`` / ``X-Frame-Options: DENY``.
"""

from __future__ import annotations

from typing import Any

DOC_PAGES = ("/docs", "/redoc")
_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
STRICT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; font-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"  # JSON and text: nothing to run
# The viewer's pages: scripts and styles only from /static/ (no inline script, so text
# from feeds can never run), media from this origin, artwork from anywhere (feeds link
# it; an offline install shows the alt text), forms only to this origin.
VIEWER_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; "
    "media-src 'self'; connect-src 'self'; font-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def policy_for(path: str, content_type: str) -> str:
    """The Content-Security-Policy of an answer at ``path`` with ``content_type``."""
    if not content_type.startswith("text/html"):
        return API_CSP
    if path.rstrip("/") in DOC_PAGES or path.startswith("/docs/"):
        return DOCS_CSP
    if path == "/" or path.startswith(("/view/", "/login", "/logout")):
        return VIEWER_CSP
    return STRICT_CSP


class SecurityHeadersMiddleware:
    """Adds the headers above to every HTTP answer (an app's own values win)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                content_type = next(
                    (v.decode("latin-1") for n, v in headers if n.lower() == b"content-type"), ""
                )
                extra = [
                    *_COMMON,
                    (b"content-security-policy", policy_for(path, content_type).encode()),
                ]
                headers += [(n, v) for n, v in extra if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
