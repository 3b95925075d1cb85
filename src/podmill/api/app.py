"""The app factory: ``create_app(settings)`` → a FastAPI app (OpenAPI at ``/docs``).

No import-time side effects: the database, the poller thread and the local tenant
(``auth=False``) are set up when the app starts (its lifespan), from the settings given.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline

from podmill import __version__
from podmill.api import (
    admin,
    catalog,
    digests,
    episodes,
    errors,
    events,
    jobs,
    opml,
    podcasting,
    search,
)
from podmill.api.auth import LOCAL_TENANT, PlatformDep, TenantDep, authenticate
from podmill.api.background import background_threads
from podmill.api.bodies import BoundedBodyMiddleware
from podmill.api.errors import Problem
from podmill.api.headers import SecurityHeadersMiddleware
from podmill.api.mcp_http import McpMissing, install_mcp
from podmill.api.schemas import Health, Me
from podmill.api.validation import FeedValidations
from podmill.api.web.install import install_viewer
from podmill.api.web.readonly import ReadOnlyMiddleware
from podmill.engine.health import api_health
from podmill.obs.asgi import ObservabilityMiddleware
from podmill.obs.exposure import (
    is_local_caller,
    may_scrape_without_key,
    metrics_refused,
    metrics_token,
    status_only,
)
from podmill.obs.health import http_status
from podmill.obs.metrics import ApiMetrics
from podmill.pipeline.dag import STAGE_NAMES
from podmill.platform import Platform, Tenant
from podmill.settings import Settings
from podmill.storage.fleet import FleetCache

DESCRIPTION = """\
podmill as a service: tenants subscribe to a shared catalog of feeds; each episode is
processed once per fingerprint and served to every tenant entitled to it.

Authenticate with `Authorization: Bearer KEY` (`podmill keys create TENANT`). Errors are
JSON `{"error": CODE, "detail": MESSAGE}`. See docs/api.md.
"""

# `podmill view` serves no /mcp: `podmill mcp` is the read-only embedded server
_NO_MCP = McpMissing("podmill view has no /mcp: run `podmill mcp` (stdio) instead")


def create_app(
    settings: Settings,
    *,
    auth: bool = True,
    background: bool = False,
    read_only: bool = False,
) -> FastAPI:
    """The API and the viewer's pages over ``settings.database_url`` (migrated:
    ``podmill db upgrade``).

    ``auth=False`` serves every request as the admin tenant ``local`` (``podmill serve
    --no-auth``; the command refuses it on a non-loopback address). ``background=True``
    runs the feed poller and the webhook notifier in threads while the app is up.
    ``read_only=True`` is ``podmill view``: an embedded data dir's reader who sees every
    episode, with no login, and every request that would change something refused.
    """
    service = Platform(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if read_only:  # nothing is written, not even a tenant row
            app.state.local_tenant = Tenant(0, LOCAL_TENANT, is_admin=True, sees_all=True)
        elif not auth:
            app.state.local_tenant = await run_in_threadpool(
                service.ensure_tenant, LOCAL_TENANT, admin=True
            )
        stop = threading.Event()
        threads = background_threads(service, stop) if background else []
        for thread in threads:
            thread.start()
        try:
            async with app.state.mcp.running(app.state):
                yield
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            service.close()

    # /docs and /redoc with Swagger UI and ReDoc served from the package (fastapi-offline,
    # MIT), not a CDN: a self-hosted install may have no internet.
    app = FastAPIOffline(
        title="podmill",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.platform = service
    app.state.local_tenant = None
    # Fetching routes run on their own threads, a few per tenant (api/validation.py).
    app.state.feed_validations = FeedValidations(settings.server)
    # /metrics: this process's requests and submissions, and the fleet's gauges read
    # from the database (cached 2 s: many scrapers, one set of queries).
    fleet = FleetCache(
        service.reader, stages=STAGE_NAMES, stale_seconds=settings.health.worker_stale_seconds
    )
    app.state.metrics = ApiMetrics(settings.data_dir, fleet)
    # Bodies are authenticated and bounded before anything reads them (api/bodies.py);
    # added first, so it runs inside the observability middleware (413s are counted).
    app.add_middleware(
        BoundedBodyMiddleware,
        body_limit=settings.server.max_body_bytes,
        upload_limit=settings.server.max_upload_bytes,
        upload_routes=jobs.UPLOAD_ROUTES,
    )
    if read_only:
        app.add_middleware(ReadOnlyMiddleware)
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics)
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: every answer (api/headers.py)
    errors.install(app)
    app.include_router(jobs.router)
    app.include_router(episodes.router)
    app.include_router(podcasting.router)
    app.include_router(catalog.router)
    app.include_router(admin.router)
    app.include_router(search.router)
    app.include_router(digests.router)
    app.include_router(opml.router)
    app.include_router(events.router)
    install_viewer(app, settings, read_only=read_only)
    # /mcp: the MCP tools for AI assistants, behind the same keys (api/mcp_http.py)
    app.state.mcp = _NO_MCP if read_only else install_mcp(app, no_auth=not auth)

    @app.get("/me", tags=["health"], response_model=Me, responses={401: errors.ERROR_SCHEMA})
    def me(service: PlatformDep, tenant: TenantDep) -> dict[str, Any]:
        """The caller's tenant, role, and the secret that signs its webhooks."""
        return service.me(tenant)

    @app.get(
        "/health",
        tags=["health"],
        response_model=Health,
        responses={503: {"model": Health, "description": "unhealthy"}},
    )
    async def health(request: Request) -> JSONResponse:
        """``healthy | degraded | unhealthy``; 503 when unhealthy. No key needed for the
        status; the checks (database, backlog, workers, disk, models, gpu if configured),
        version and git sha only for a caller on this machine or with an admin key
        (docs/security.md). Rules: docs/observability.md."""
        document = await run_in_threadpool(api_health, settings, request.app.state.platform.reader)
        if not await _may_see_detail(request):
            document = status_only(document)
        return JSONResponse(document, status_code=http_status(document))

    scrape_token = metrics_token(settings)

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus text exposition: with ``server.metrics_token`` set, for a request
        bearing it; else for a local caller; always for an admin's key (docs/security.md,
        docs/observability.md). 401 without any of these, 403 for a member's key."""
        await _may_scrape(request, scrape_token)
        body, content_type = await run_in_threadpool(request.app.state.metrics.exposition)
        return Response(body, media_type=content_type)

    return app


async def _may_see_detail(request: Request) -> bool:
    """Health detail: a local caller (no proxy in between), or an admin's key."""
    peer = request.client.host if request.client else None
    if is_local_caller(peer, request.headers):
        return True
    if request.headers.get("authorization") is None:
        return False
    try:
        tenant = await authenticate(request.app.state, request.headers["authorization"])
    except Problem:
        return False
    return tenant.is_admin


async def _may_scrape(request: Request, token: str | None) -> None:
    """Returns when the request may read /metrics; raises a 401 or 403 :class:`Problem`."""
    peer = request.client.host if request.client else None
    if may_scrape_without_key(peer, request.headers, token):
        return
    try:
        tenant = await authenticate(request.app.state, request.headers.get("authorization"))
    except Problem:
        raise Problem(401, "unauthorized", metrics_refused(admin_keys=True)) from None
    if not tenant.is_admin:
        raise Problem(
            403, "forbidden", f"tenant {tenant.name!r} is a member; GET /metrics is for admins"
        )
