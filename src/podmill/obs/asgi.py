"""The API's request middleware: correlation ids and request metrics (pure ASGI).

For every HTTP request it

- takes the caller's ``X-Correlation-ID`` if it is a sane token (1-64 of
  ``A-Z a-z 0-9 . _ : -``), else makes a new one (uuid4 hex); puts it in
  ``request.state.correlation_id`` (``POST /jobs`` stores it on the job) and in the log
  context, so the request's log lines carry it; and returns it as the
  ``X-Correlation-ID`` response header;
- observes ``podmill_http_request_duration_seconds{method,route,status}``, where
  ``route`` is the matched route's template (``/jobs/{job_id}``), never the raw path,
  so the series stay few; a request no route matched counts as ``<unmatched>``.
- logs one line per request on the ``podmill.access`` logger, after the response:
  ``GET /jobs/{job_id} 200 3.1ms`` with the correlation id (JSON: ``method``, ``route``,
  ``status``, ``duration_ms``). INFO, except the routes scrapers and probes call every
  few seconds (``/metrics``, ``/health``), which log at DEBUG unless they answer 5xx:
  at INFO a Prometheus scrape and a load balancer's probe would drown every other line.
  A request no route matched names its ``path`` instead (``GET /nope (no route) 404``).
  ``podmill serve`` turns uvicorn's own access log off, so there is one line a request.

- with tracing on (podmill.obs.tracing), runs the request in a ``METHOD /route`` server
  span with the correlation id as an attribute, joining a caller's ``traceparent``.

Pure ASGI rather than ``BaseHTTPMiddleware``: it does not buffer streamed responses
(artifact downloads) and adds no task per request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from podmill.obs import tracing
from podmill.obs.logging import step_context

HEADER = "x-correlation-id"
access_log = logging.getLogger("podmill.access")
# Called every few seconds by scrapers and probes: DEBUG, so they do not flood the log.
PROBE_ROUTES = frozenset({"/metrics", "/health"})
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def correlation_id_from(value: str | None) -> str:
    """The caller's id when it is a sane token, else a new uuid4 hex."""
    if value is not None and _SANE.fullmatch(value.strip()):
        return value.strip()
    return uuid.uuid4().hex


class ObservabilityMiddleware:
    """Correlation ids and request metrics for every HTTP request (see the module doc)."""

    def __init__(self, app: Any, metrics: Any) -> None:
        self.app = app
        self.metrics = metrics  # a podmill.obs.metrics.ApiMetrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = traceparent = None
        for name, value in scope.get("headers") or ():
            if name == HEADER.encode():
                incoming = value.decode("latin-1")
            elif name == b"traceparent":
                traceparent = value.decode("latin-1")
        cid = correlation_id_from(incoming)
        scope.setdefault("state", {})["correlation_id"] = cid
        status = 500  # unless the app starts a response

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers") or [])
                headers.append((b"x-correlation-id", cid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        started = time.perf_counter()
        method = scope.get("method", "GET")
        # The request's span (a caller's traceparent is its parent); the job's steps join
        # it through the job (podmill.obs.tracing). A no-op while tracing is off.
        with tracing.span(
            f"HTTP {method}",
            {"http.request.method": method, "correlation_id": cid},
            parent=traceparent,
            kind="server",
        ) as span:
            try:
                with step_context(correlation_id=cid):
                    await self.app(scope, receive, send_with_id)
            finally:
                seconds = time.perf_counter() - started
                route = route_template(scope)
                span.update_name(f"{method} {route}")
                span.set_attributes({"http.route": route, "http.response.status_code": status})
                self.metrics.observe_request(method, route, status, seconds)
                log_request(method, route, status, seconds, cid, scope.get("path", ""))


def log_request(
    method: str, route: str, status: int, seconds: float, cid: str, path: str = ""
) -> None:
    """The request's one ``podmill.access`` line (the module doc says at which level).
    A request no route matched names its path instead (escaped and cut to 200
    characters: it is whatever the caller sent)."""
    level = logging.DEBUG if route in PROBE_ROUTES and status < 500 else logging.INFO
    if not access_log.isEnabledFor(level):
        return
    ms = round(seconds * 1000, 1)
    fields: dict[str, Any] = {
        "correlation_id": cid,
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": ms,
    }
    shown = route
    if route == "<unmatched>":
        fields["path"] = path.encode("unicode_escape").decode("ascii")[:200]
        shown = f"{fields['path']} (no route)"
    access_log.log(level, "%s %s %s %.1fms", method, shown, status, ms, extra=fields)


def route_template(scope: dict[str, Any]) -> str:
    """The matched route's path template, or ``<unmatched>``."""
    route = scope.get("route")
    if route is None:
        # FastAPI records only its own API routes in the scope; the others (/openapi.json,
        # /docs, mounts) are found the way the router found them.
        route = _matching_route(scope)
    if route is None:
        return "<unmatched>"
    return str(getattr(route, "path_format", None) or getattr(route, "path", "<unmatched>"))


def _matching_route(scope: dict[str, Any]) -> Any:
    from starlette.routing import Match

    app = scope.get("app")
    for route in getattr(app, "routes", ()):
        try:
            match, _ = route.matches(scope)
        except Exception:  # a route that cannot judge this scope does not match it
            continue
        if match is Match.FULL:
            return route
    return None
