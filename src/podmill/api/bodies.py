"""Request bodies are bounded and authenticated before a byte of them is read.

:class:`BoundedBodyMiddleware` (pure ASGI, so it sees each chunk as it arrives) runs
before routing, so before FastAPI reads and parses a body for a route's model:

- a request with a body (``Content-Length`` above 0, or ``Transfer-Encoding: chunked``)
  must carry a valid key: without one it is a 401 and the body is never read
  (``--no-auth`` serves every request as ``local``, as the routes do);
- its limit is ``server.max_upload_bytes`` (plus room for the multipart framing) for a
  multipart upload to an upload route (``POST /jobs``), else ``server.max_body_bytes``;
- a declared ``Content-Length`` over the limit is a 413 at once, unread;
- a chunked body is counted as it streams: the chunk that passes the limit ends it
  with a 413, and the app sees the client disconnect (the multipart parser closes its
  spooled temp files; ``api/jobs.py`` removes its own).

Every refusal closes the connection (``Connection: close``): the rest of the body is
never read.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers

from podmill.api.auth import authenticate
from podmill.api.errors import Problem, database_unavailable, error_response
from podmill.api.web.render import is_page, session_tenant
from podmill.storage.db import DATABASE_ERRORS

# Multipart framing around the file: headers, boundaries and the small text fields.
MULTIPART_SLACK = 64 * 1024
LOGIN_BODY_LIMIT = 4096  # a key and where to go next
_CLOSE = {"Connection": "close"}


def too_large_detail(limit: int, setting: str) -> str:
    return f"the request body is larger than {limit} bytes ({setting}); " + (
        "give a URL instead or raise the limit"
        if setting == "server.max_upload_bytes"
        else "send a smaller body"
    )


class BoundedBodyMiddleware:
    """Authenticate, then bound, every request body before the app reads it."""

    def __init__(
        self,
        app: Any,
        *,
        body_limit: int,
        upload_limit: int,
        upload_routes: frozenset[tuple[str, str]],
    ) -> None:
        self.app = app
        self.body_limit = body_limit
        self.upload_limit = upload_limit
        self.upload_routes = upload_routes

    def limit_for(self, scope: dict[str, Any], headers: Headers) -> tuple[int, str]:
        """The byte limit of this request's body, and the setting that sets it."""
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        route = (scope.get("method", ""), scope.get("path", ""))
        if content_type == "multipart/form-data" and route in self.upload_routes:
            return self.upload_limit + MULTIPART_SLACK, "server.max_upload_bytes"
        return self.body_limit, "server.max_body_bytes"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if not chunked and (declared is None or declared.strip() in ("", "0")):
            await self.app(scope, receive, send)  # no body: the routes authenticate
            return
        path = scope.get("path", "")
        if is_page(path) and not headers.get("authorization"):
            # a browser's form: the login form needs no session; the others need one
            await self._page_form(scope, receive, send, headers, declared)
            return
        try:
            tenant = await authenticate(scope["app"].state, headers.get("authorization"))
        except Problem as exc:
            answer = error_response(
                exc.status, exc.error, exc.detail, {"WWW-Authenticate": "Bearer", **_CLOSE}
            )
            await answer(scope, receive, send)
            return
        except DATABASE_ERRORS as exc:
            await database_unavailable(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["tenant"] = tenant
        limit, setting = self.limit_for(scope, headers)
        refusal = error_response(413, "too_large", too_large_detail(limit, setting), _CLOSE)
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await refusal(scope, receive, send)
            return
        await self._bounded(scope, receive, send, limit, refusal)

    async def _page_form(
        self, scope: dict[str, Any], receive: Any, send: Any, headers: Headers, declared: Any
    ) -> None:
        """A viewer page's POST: ``/login`` takes a small body without a session, every
        other form needs the browser's live session (its CSRF token is the page's to
        check), bounded like any body."""
        path = scope.get("path", "")
        if path != "/login":
            try:
                tenant = await session_tenant(scope["app"], Headers(scope=scope))
            except DATABASE_ERRORS as exc:
                await database_unavailable(exc)(scope, receive, send)
                return
            if tenant is None:
                await error_response(401, "unauthorized", "log in first (GET /login)", _CLOSE)(
                    scope, receive, send
                )
                return
            scope.setdefault("state", {})["tenant"] = tenant
        limit, setting = (
            (LOGIN_BODY_LIMIT, "the login form")
            if path == "/login"
            else self.limit_for(scope, headers)
        )
        refusal = error_response(413, "too_large", too_large_detail(limit, setting), _CLOSE)
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await refusal(scope, receive, send)
            return
        await self._bounded(scope, receive, send, limit, refusal)

    async def _bounded(
        self, scope: dict[str, Any], receive: Any, send: Any, limit: int, refusal: Any
    ) -> None:
        received = 0
        refused = False
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # bounded: the app never holds more than `limit` bytes of a body
                    refused = True
                    if not started:
                        await refusal(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if refused:
                return  # the 413 was the answer; whatever the app says after it is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise
            # the app saw the client go away (ClientDisconnect) after the 413
