"""``/mcp`` in ``podmill serve``: the MCP tools (api/mcp_tools.py) over streamable HTTP,
behind the API keys.

Every request carries ``Authorization: Bearer KEY`` like any API call: a request with a
body is authenticated by the body middleware (api/bodies.py) before it is read, the
others here; a missing or unknown key is the API's 401. Each tool call is then answered
for the tenant of *that* request's key (``scope["state"]["tenant"]``), so a tenant sees
the episodes it is entitled to and nothing else, whatever session it names. The
transport is stateless with JSON answers: no session lives in the server between
requests, so any API process can answer any request, and only POST is routed (a GET
stream would stay open with nothing to carry: 405).

Without the ``mcp`` extra, ``/mcp`` answers 501 with the line naming it; ``podmill
view`` (read-only) has no ``/mcp``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.datastructures import Headers

from podmill.api.auth import authenticate
from podmill.api.errors import Problem, database_unavailable, error_response
from podmill.storage.db import DATABASE_ERRORS

PATH = "/mcp"
LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]


class McpEndpoint:
    """The ASGI endpoint at ``/mcp``: authenticate, then hand the request to the MCP
    session manager of the running app (made at each start, see :func:`running`)."""

    def __init__(self, *, no_auth: bool) -> None:
        self.no_auth = no_auth
        self.server: Any = None  # the MCPServer, built on first start
        self.manager: Any = None  # its StreamableHTTPSessionManager while the app runs

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        state = scope.setdefault("state", {})
        if state.get("tenant") is None:
            try:
                authorization = Headers(scope=scope).get("authorization")
                state["tenant"] = await authenticate(scope["app"].state, authorization)
            except Problem as exc:
                headers = {"WWW-Authenticate": "Bearer"}
                await error_response(exc.status, exc.error, exc.detail, headers)(
                    scope, receive, send
                )
                return
            except DATABASE_ERRORS as exc:
                await database_unavailable(exc)(scope, receive, send)
                return
        if self.manager is None:  # only between the app's start and its lifespan
            await error_response(503, "unavailable", "the MCP endpoint is starting")(
                scope, receive, send
            )
            return
        from mcp.server.streamable_http_manager import StreamableHTTPASGIApp

        await StreamableHTTPASGIApp(self.manager)(scope, receive, send)

    @contextlib.asynccontextmanager
    async def running(self, app_state: Any) -> AsyncIterator[None]:
        """The MCP session manager for one run of the app (a manager runs once, and a
        test may start the same app twice)."""
        from mcp.server.transport_security import TransportSecuritySettings

        if self.server is None:
            self.server = build_http_server(app_state)
        # --no-auth answers anyone who reaches it as the admin `local`, on loopback only:
        # a web page must not reach it through DNS rebinding. With keys, a key is needed.
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=self.no_auth,
            allowed_hosts=LOOPBACK_HOSTS,
            allowed_origins=[f"http://{h}" for h in LOOPBACK_HOSTS],
        )
        self.server.streamable_http_app(
            stateless_http=True, json_response=True, transport_security=security
        )
        manager = self.server.session_manager
        async with manager.run():
            self.manager = manager
            try:
                yield
            finally:
                self.manager = None


def build_http_server(app_state: Any) -> Any:
    """The MCP server of the API app whose ``state`` is given: the caller's tenant,
    and submit as ``POST /jobs`` does it (api/jobs.py)."""
    from podmill.api.mcp_tools import Source, build_server

    def tenant(ctx: Any) -> Any:
        return _request(ctx).state.tenant

    async def submit(ctx: Any, tenant: Any, url: str) -> dict[str, Any]:
        from fastapi.encoders import jsonable_encoder

        from podmill.api.jobs import episode_for_url, queue_episode
        from podmill.api.params import fetchable_url
        from podmill.api.schemas import Job

        request = _request(ctx)
        try:
            url = fetchable_url(url)  # what POST /jobs's body model checks
        except ValueError as exc:
            raise Problem(422, "invalid_url", str(exc)) from None
        episode, feed_id = await episode_for_url(request, tenant, url)
        job, created = await queue_episode(request, tenant, episode, feed_id, None)
        # the job as GET /jobs/{id} shows it, less its steps (GET /jobs/{id} has them)
        shown = (Job.__required_keys__ | Job.__optional_keys__) - {"steps"}
        return jsonable_encoder(
            {
                "job": {k: v for k, v in job.items() if k in shown},
                "created": created,
                "episode_key": job["episode_key"],
                "uri": f"podmill://episodes/{job['episode_key']}",
            }
        )

    return build_server(Source(app_state, tenant=tenant, submit=submit, read_only=False))


def _request(ctx: Any) -> Any:
    """The HTTP request of a tool call (the transport puts it on the request context)."""
    request = ctx.request_context.request
    if request is None:  # pragma: no cover - the HTTP transport always attaches it
        raise RuntimeError("an MCP call over HTTP without its request")
    return request


class McpMissing:
    """``/mcp`` without the ``mcp`` extra: a 501 with the line that names it."""

    def __init__(self, detail: str) -> None:
        self.detail = detail

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await error_response(501, "not_installed", self.detail)(scope, receive, send)

    @contextlib.asynccontextmanager
    async def running(self, app_state: Any) -> AsyncIterator[None]:
        yield


def install_mcp(app: Any, *, no_auth: bool) -> McpEndpoint | McpMissing:
    """Route ``/mcp`` of ``app`` to the MCP endpoint (or the 501 without the extra);
    the app's lifespan enters the returned endpoint's ``running(app.state)``."""
    from podmill.errors import MissingExtraError, require

    endpoint: McpEndpoint | McpMissing
    try:
        require("mcp", "mcp", "the /mcp endpoint")
        endpoint = McpEndpoint(no_auth=no_auth)
    except MissingExtraError as exc:
        endpoint = McpMissing(str(exc))
    # POST only: stateless, there is no stream to open (GET) nor session to end (DELETE);
    # the transport lets a server answer those 405, and clients carry on
    app.add_route(PATH, endpoint, methods=["POST"], include_in_schema=False)
    return endpoint
