"""``GET /search``: hybrid keyword + vector search over the tenant's episodes.

Hits have the shape of ``podmill search --json`` (docs/search.md). The tenant's
entitlement (:func:`podmill.platform.visible_episodes`) is part of every query:
on the keyword side in SQL, on the vector side as an episode mask, and again when the
hits' rows are read, so another tenant's episode never comes back.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Query, Request

from podmill.api.auth import TenantDep
from podmill.api.errors import ERROR_SCHEMA, Problem
from podmill.api.params import MAX_ID
from podmill.api.schemas import SearchHit
from podmill.platform import Tenant, visible_episodes

router = APIRouter(tags=["search"], responses={401: ERROR_SCHEMA, 422: ERROR_SCHEMA})

_searcher_lock = threading.Lock()


def searcher(request: Request) -> Any:
    """The app's one :class:`~podmill.search.searcher.Searcher` (made on first use; it
    loads the vector index and, on the first query, the embedding model)."""
    # `podmill view` writes nothing, not even a rebuilt vector index: the rows the
    # index lacks are searched exactly (the delta) instead
    viewer = getattr(request.app.state, "viewer", None)
    return searcher_of(request.app.state, read_only=viewer is not None and viewer.read_only)


def searcher_of(state: Any, *, read_only: bool) -> Any:
    """The one searcher kept on ``state`` (the app's, or ``podmill mcp``'s), over
    ``state.platform``; ``read_only`` never rebuilds the vector index on disk."""
    with _searcher_lock:
        if getattr(state, "searcher", None) is None:
            from podmill.search.searcher import Searcher

            service = state.platform
            state.searcher = Searcher(
                service.reader,
                service.settings.data_dir,
                auto_rebuild="off" if read_only else "background",
            )
    return state.searcher


def find(
    request: Request,
    tenant: Tenant,
    q: str,
    *,
    feed: int | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 10,
) -> list[Any]:
    """The ``limit`` best :class:`~podmill.search.searcher.Hit` for ``q`` among the
    episodes ``tenant`` is entitled to (GET /search and the search page). Raises
    ``EmptyQuery`` / ``InvalidTime`` for what cannot be searched."""
    return find_with(searcher(request), tenant, q, feed=feed, since=since, until=until, limit=limit)


def find_with(
    searcher: Any,
    tenant: Tenant,
    q: str,
    *,
    feed: int | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 10,
) -> list[Any]:
    """:func:`find` with a given searcher (the MCP tools', api/mcp_tools.py)."""
    from podmill.search.query import parse_time
    from podmill.search.store import Filters

    filters = Filters(
        feed_id=feed,
        since=parse_time(since, "since"),
        until=parse_time(until, "until", end=True),
        visible=visible_episodes(tenant),
    )
    return searcher.search(q, filters, limit)


@router.get("/search", response_model=list[SearchHit])
def search(
    request: Request,
    tenant: TenantDep,
    q: str = Query(..., min_length=1, max_length=500, description="what to look for"),
    feed: int | None = Query(
        None, ge=1, le=MAX_ID, description="a feed id (GET /subscriptions shows them)"
    ),
    since: str | None = Query(
        None, max_length=40, description="published at or after: 7d, 12h, 2w, a date or ISO time"
    ),
    until: str | None = Query(
        None, max_length=40, description="published before (a date: up to the end of that day)"
    ),
    limit: int = Query(10, ge=1, le=100),
) -> list[dict[str, Any]]:
    """Topics and passages of this tenant's episodes that match ``q`` by keyword or by
    meaning, best first. Each hit names the episode, the node, the time span and a
    snippet with the matched words marked «like this»."""
    from podmill.search.query import InvalidTime
    from podmill.search.searcher import EmptyQuery

    try:
        hits = find(request, tenant, q, feed=feed, since=since, until=until, limit=limit)
    except (EmptyQuery, InvalidTime) as exc:
        raise Problem(422, "invalid_request", str(exc)) from None
    return [hit.to_json() for hit in hits]
