"""``GET /digest`` and ``GET /digests``: cross-feed digests for the tenant.

``GET /digest`` makes one on demand over the episodes the tenant is entitled to;
``GET /digests`` lists the weekly digests the server stored for it (docs/digest.md),
``GET /digests/{id}`` returns one. Every digest is JSON (schema ``podmill.digest/1``)
unless ``format=md`` or ``format=html`` asks for a rendering.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from podmill.api.auth import PlatformDep, TenantDep
from podmill.api.errors import ERROR_SCHEMA, Problem, not_found
from podmill.api.params import RowId
from podmill.api.schemas import StoredDigest, digest_document_schema
from podmill.platform import Platform, Tenant

router = APIRouter(tags=["digest"], responses={401: ERROR_SCHEMA})

DigestFormat = Literal["json", "md", "html"]
# a digest is its document (the shipped JSON schema) or a rendering of it
_DOCUMENT = {
    "description": "the digest document (schema podmill.digest/1); Markdown or HTML "
    "with format=md or format=html",
    "content": {
        "application/json": {"schema": digest_document_schema()},
        "text/markdown": {"schema": {"type": "string"}},
        "text/html": {"schema": {"type": "string"}},
    },
}


def _respond(document: dict[str, Any], fmt: DigestFormat) -> Response:
    if fmt == "json":
        return JSONResponse(document)
    from podmill.digest.render import render

    text = render(document, fmt)
    if fmt == "html":
        return HTMLResponse(text)
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")


@router.get("/digest", responses={200: _DOCUMENT, 422: ERROR_SCHEMA})
async def get_digest(
    service: PlatformDep,
    tenant: TenantDep,
    since: str = Query("7d", max_length=40, description="7d, 24h, 2w, a date or ISO time"),
    until: str | None = Query(None, max_length=40, description="window end (default now)"),
    feed: list[str] | None = Query(
        None, description="only these feeds (id, key, URL or title); repeatable"
    ),
    budget: str | None = Query(
        None, max_length=20, description="listen-list budget: 30m, 1h, 1h30m"
    ),
    threshold: float | None = Query(
        None, ge=-1, le=1, description="story clustering threshold (default: the tuned one)"
    ),
    format: DigestFormat = "json",
) -> Response:
    """What happened in this tenant's feeds: new episodes (newest first) with their
    leads and top topics, stories told across shows, and with ``budget`` a listen list
    of topics (with start times) that fits it."""
    from podmill.digest.window import WindowError

    try:
        document = await run_in_threadpool(
            digest_for, service, tenant, since, until, tuple(feed or ()), budget, threshold
        )
    except WindowError as exc:  # a window or budget that cannot be read, an unknown feed
        raise Problem(422, "invalid_request", str(exc)) from None
    return _respond(document, format)


def digest_for(
    service: Platform,
    tenant: Tenant,
    since: str | None,
    until: str | None,
    feeds: tuple[str, ...] = (),
    budget: str | None = None,
    threshold: float | None = None,
) -> dict[str, Any]:
    """The digest of ``since``..``until`` (as typed: ``7d``, a date…) over the episodes
    ``tenant`` is entitled to (GET /digest and the digest page). Raises ``WindowError``
    for a window, budget or feed that cannot be read."""
    from podmill.digest.weekly import tenant_digest
    from podmill.digest.window import parse_budget, parse_window

    now = datetime.now(UTC)
    window = parse_window(since, until, now, prefix="")
    budget_seconds = parse_budget(budget, prefix="")
    return tenant_digest(
        service,
        tenant,
        window,
        now,
        budget_seconds=budget_seconds,
        feeds=feeds,
        threshold=threshold,
    )


@router.get("/digests", response_model=list[StoredDigest])
def list_digests(
    service: PlatformDep,
    tenant: TenantDep,
    limit: int = Query(52, ge=1, le=500),
) -> list[dict[str, Any]]:
    """The weekly digests stored for this tenant, newest first (documents at
    ``GET /digests/{id}``)."""
    from podmill.digest.weekly import list_digests as stored

    return stored(service, tenant, limit)


@router.get("/digests/{digest_id}", responses={200: _DOCUMENT, 404: ERROR_SCHEMA})
def get_stored_digest(
    service: PlatformDep,
    digest_id: RowId,
    tenant: TenantDep,
    format: DigestFormat = "json",
) -> Response:
    """One stored digest of this tenant (another tenant's is a 404)."""
    from podmill.digest.weekly import stored_digest

    document = stored_digest(service, tenant, digest_id)
    if document is None:
        raise not_found(f"no digest {digest_id} among this tenant's digests (GET /digests)")
    return _respond(document, format)
