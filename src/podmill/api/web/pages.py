"""The viewer's routes: the library at ``/``, ``/login`` and ``/logout``; the other pages
register their routes on :data:`router` from their own modules (``episode.py``,
``search.py``, ``digest.py``, ``ops.py``, ``jobs.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from podmill.api.web.render import (
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


@router.get("/", response_class=HTMLResponse)
async def library(request: Request, tenant: PageTenant) -> Response:
    return render(request, "library.html", tenant, episodes=[], feeds=[], filtered=False)


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
