"""The viewer's routes: the library at ``/``, ``/login`` and ``/logout``; the other pages
register their routes on :data:`router` from their own modules (``episode.py``,
``search.py``, ``digest.py``, ``ops.py``, ``jobs.py``)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from podmill.api.params import MAX_ID
from podmill.api.web.render import (
    ENV,
    browser_tenant,
    check_csrf,
    page_tenant,
    render,
    set_session,
    viewer,
)
from podmill.api.web.session import COOKIE
from podmill.platform import Tenant

router = APIRouter(include_in_schema=False)

PageTenant = Annotated[Tenant, Depends(page_tenant)]


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path on this site, never another origin."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


# the library's page of episodes: this many unless ?limit= says otherwise
LIBRARY_PAGE = 25
MAX_LIBRARY_PAGE = 100


def form_id(value: str | None) -> int | None:
    """A row id from a form field: ``""`` (the "all" choice) and anything that is not a
    positive id read as none."""
    text = (value or "").strip()
    return int(text) if text.isdigit() and 0 < int(text) <= MAX_ID else None


def form_text(value: str | None) -> str | None:
    """A form's text field: ``None`` when empty (a submitted form sends ``x=``)."""
    text = (value or "").strip()
    return text or None


def seek_param(seconds: float | None) -> str:
    """``#t=`` of a time: seconds with at most two decimals (``75``, ``75.5``)."""
    text = f"{float(seconds or 0):.2f}".rstrip("0").rstrip(".")
    return text or "0"


def day(value: Any) -> str:
    """A date for people (``2026-11-03``) from a datetime or ISO text; ``""`` for none."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value[:10]
    return value.strftime("%Y-%m-%d")


def moment(value: Any) -> str:
    """A time for people (``2026-11-03 14:05 UTC``) from a datetime; ``""`` for none."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value[:16].replace("T", " ")
    return value.strftime("%Y-%m-%d %H:%M UTC")


ENV.filters["seek"] = seek_param
ENV.filters["day"] = day
ENV.filters["moment"] = moment


@router.get("/", response_class=HTMLResponse)
def library(
    request: Request,
    tenant: PageTenant,
    feed: Annotated[str, Query(max_length=20)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_LIBRARY_PAGE)] = LIBRARY_PAGE,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """The tenant's feeds and its episodes, newest first, a page at a time: what
    GET /episodes lists it (the same platform call), filtered by feed and title."""
    service = request.app.state.platform
    feed_id, text = form_id(feed), form_text(q)
    feeds = service.library_feeds(tenant)
    # one more than a page: whether there is a next one
    rows = service.episodes(
        tenant,
        feed_id=feed_id,
        since=None,
        status=None,
        limit=limit + 1,
        offset=offset,
        title_contains=text,
    )
    titles = {f["id"]: f["title"] or f["url"] for f in feeds if f["id"] is not None}
    episodes = [{**row, "feed_title": titles.get(row["feed_id"])} for row in rows[:limit]]
    filters = {"feed": feed_id or "", "q": text or "", "limit": limit}

    def page_url(at: int) -> str:
        wanted = {k: v for k, v in {**filters, "offset": at}.items() if v}
        if wanted.get("limit") == LIBRARY_PAGE:
            del wanted["limit"]
        return "/" + (f"?{urlencode(wanted)}" if wanted else "")

    return render(
        request,
        "library.html",
        tenant,
        episodes=episodes,
        feeds=feeds,
        feed_id=feed_id,
        q=text or "",
        filtered=feed_id is not None or text is not None or offset > 0,
        offset=offset,
        prev_url=page_url(max(0, offset - limit)) if offset > 0 else None,
        next_url=page_url(offset + limit) if len(rows) > limit else None,
    )


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    if request.app.state.local_tenant is not None:  # no login here
        return RedirectResponse(safe_next(next), status_code=303)
    tenant = await browser_tenant(request)
    return render(request, "login.html", tenant, next_url=safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    key: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    found = await run_in_threadpool(request.app.state.platform.authenticate_key, key.strip())
    if found is None:
        return render(
            request,
            "login.html",
            None,
            status=401,
            next_url=safe_next(next),
            error="That key is unknown or revoked. Check it, or ask an admin for a new one.",
        )
    key_id, _tenant = found
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session(response, request, viewer(request).sessions.issue(key_id))
    return response


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    await check_csrf(request, csrf)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
