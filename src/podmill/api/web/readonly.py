"""``podmill view`` changes nothing: every request but GET, HEAD and OPTIONS is a 405."""

from __future__ import annotations

import json
from typing import Any

SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
DETAIL = (
    "podmill view is read-only; run `podmill serve` over the same data to queue work, "
    "retry steps or change the catalog"
)


class ReadOnlyMiddleware:
    """Refuse unsafe methods before routing (pure ASGI: a body is never read)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method", "GET") in SAFE:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "read_only", "detail": DETAIL}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 405,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"allow", b"GET, HEAD, OPTIONS"),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
