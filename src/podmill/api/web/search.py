"""The search page (``/view/search``): the hybrid search of GET /search (the same
:func:`podmill.api.search.find`, so the same tenant filter), with feed and date filters.
Each hit opens its episode at the hit's start (``/view/episode/{key}#t=START``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, Response

from podmill.api.web.pages import PageTenant, form_id, form_text, router
from podmill.api.web.render import ENV, render

MARK_START, MARK_END = "«", "»"
RESULTS = 20


def marked(snippet: str) -> list[tuple[str, bool]]:
    """A snippet with its matches marked «like this», as ``(text, is_match)`` parts:
    the template puts each part's text (escaped, as all text) in or out of ``<mark>``,
    so no markup ever comes from the snippet itself. An unbalanced marker ends or
    starts a match where it stands."""
    parts: list[tuple[str, bool]] = []
    inside = False
    text = ""
    for char in snippet:
        if char in (MARK_START, MARK_END):
            if text:
                parts.append((text, inside))
            text = ""
            inside = char == MARK_START
        else:
            text += char
    if text:
        parts.append((text, inside))
    return parts


ENV.filters["marked"] = marked


@router.get("/view/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    tenant: PageTenant,
    q: Annotated[str, Query(max_length=500)] = "",
    feed: Annotated[str, Query(max_length=20)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """The search form and, with ``q``, the best hits of the tenant's episodes."""
    from podmill.api.search import find
    from podmill.search.query import InvalidTime
    from podmill.search.searcher import EmptyQuery

    service = request.app.state.platform
    feed_id, text = form_id(feed), form_text(q)
    feeds = [f for f in service.library_feeds(tenant) if f["id"] is not None]
    hits, error, status = None, None, 200
    if text is not None:
        try:
            hits = find(
                request,
                tenant,
                text,
                feed=feed_id,
                since=form_text(since),
                until=form_text(until),
                limit=RESULTS,
            )
        except (EmptyQuery, InvalidTime) as exc:
            error, status = str(exc), 422
    return render(
        request,
        "search.html",
        tenant,
        status=status,
        q=text or "",
        feed_id=feed_id,
        since=form_text(since) or "",
        until=form_text(until) or "",
        feeds=feeds,
        hits=hits,
        error=error,
    )
