"""The digest pages: ``/view/digest`` makes the digest of a window (7 days unless
``since``/``until`` say otherwise) as GET /digest does (the same
:func:`podmill.api.digests.digest_for`), with a listen list for ``budget``, and lists
the weekly digests stored for the tenant (GET /digests); ``/view/digest/{id}`` shows one
of them (GET /digests/{id}). Every entry links into its episode at its time."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from podmill.api.params import MAX_ID
from podmill.api.web.pages import PageTenant, form_id, form_text, router
from podmill.api.web.render import PageError, render
from podmill.digest.window import DEFAULT_SINCE

# the page's listen list fits this much (the weekly digest's default budget) unless the
# form says otherwise (GET /digest makes none without ?budget=)
DEFAULT_BUDGET = "30m"
STORED_SHOWN = 52  # a year of weekly digests


def _stored(service: Any, tenant: Any) -> list[dict[str, Any]]:
    from podmill.digest.weekly import list_digests

    return list_digests(service, tenant, STORED_SHOWN)


@router.get("/view/digest", response_class=HTMLResponse)
def digest_page(
    request: Request,
    tenant: PageTenant,
    since: Annotated[str, Query(max_length=40)] = DEFAULT_SINCE,
    until: Annotated[str, Query(max_length=40)] = "",
    feed: Annotated[str, Query(max_length=20)] = "",
    budget: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """The digest of the window, its stories and listen list, and the stored digests."""
    from podmill.api.digests import digest_for
    from podmill.digest.window import WindowError

    service = request.app.state.platform
    feed_id = form_id(feed)
    budget_text = DEFAULT_BUDGET if budget is None else budget.strip()
    feeds = [f for f in service.library_feeds(tenant) if f["id"] is not None]
    document, error, status = None, None, 200
    try:
        document = digest_for(
            service,
            tenant,
            form_text(since) or DEFAULT_SINCE,
            form_text(until),
            (str(feed_id),) if feed_id is not None else (),
            budget_text or None,
        )
    except WindowError as exc:
        error, status = str(exc), 422
    return render(
        request,
        "digest.html",
        tenant,
        status=status,
        document=document,
        error=error,
        stored=_stored(service, tenant),
        stored_id=None,
        since=form_text(since) or DEFAULT_SINCE,
        until=form_text(until) or "",
        budget=budget_text,
        feed_id=feed_id,
        feeds=feeds,
    )


@router.get("/view/digest/{digest_id}", response_class=HTMLResponse)
def stored_digest_page(
    request: Request,
    tenant: PageTenant,
    digest_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> Response:
    """One weekly digest stored for this tenant (another tenant's is a 404)."""
    from podmill.digest.weekly import stored_digest

    service = request.app.state.platform
    document = stored_digest(service, tenant, digest_id)
    if document is None:
        raise PageError(
            404,
            "No such digest",
            f"there is no digest {digest_id} among yours; the digest page lists them",
        )
    return render(
        request,
        "digest.html",
        tenant,
        document=document,
        error=None,
        stored=_stored(service, tenant),
        stored_id=digest_id,
        since="",
        until="",
        budget="",
        feed_id=None,
        feeds=[],
    )
