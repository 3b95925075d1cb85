"""Rendering pages: one Jinja2 environment (autoescaping everything), the context every
page gets, the page-only error answers, and who the browser is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from podmill import __version__
from podmill.api.web.session import COOKIE, MAX_AGE, Sessions
from podmill.platform import Tenant
from podmill.timespec import clock

# Paths of the pages (everything else is the API, with its JSON errors).
PAGE_PREFIXES = ("/view/",)
PAGE_PATHS = frozenset({"/", "/login", "/logout"})

ENV = Environment(
    loader=PackageLoader("podmill.api.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["clock"] = lambda seconds: "" if seconds is None else clock(float(seconds))


def is_page(path: str) -> bool:
    """Whether ``path`` is a page of the viewer (HTML answers, HTML errors)."""
    return path in PAGE_PATHS or path.startswith(PAGE_PREFIXES)


@dataclass
class Viewer:
    """What the pages need besides the platform (``app.state.viewer``)."""

    sessions: Sessions
    # `podmill view`: an embedded data dir, read-only, no login
    read_only: bool = False
    # the answers' `Secure` cookie flag follows the request's scheme unless forced
    force_secure: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class PageError(Exception):
    """A page that cannot be shown: an HTML error page with ``status``."""

    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail


class LoginRequired(Exception):
    """The page needs a session: the answer is a redirect to the login form."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def viewer(request: Request) -> Viewer:
    return request.app.state.viewer


async def session_tenant(app: Any, headers: Any) -> Tenant | None:
    """The tenant of a browser with these request ``headers``: ``podmill view`` /
    ``--no-auth``'s local tenant, else the live key of its session cookie, else ``None``."""
    local: Tenant | None = app.state.local_tenant
    if local is not None:
        return local
    from http.cookies import SimpleCookie

    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header is no session
        return None
    morsel = jar.get(COOKIE)
    key_id = app.state.viewer.sessions.key_id(morsel.value if morsel else None)
    if key_id is None:
        return None
    return await run_in_threadpool(app.state.platform.key_tenant, key_id)


async def browser_tenant(request: Request) -> Tenant | None:
    """The tenant of this browser (:func:`session_tenant`)."""
    known: Tenant | None = getattr(request.state, "tenant", None)
    if known is not None:  # a form's body was authenticated first (api/bodies.py)
        return known
    return await session_tenant(request.app, request.headers)


async def page_tenant(request: Request) -> Tenant:
    """The tenant a page is shown to; without a session, the login form (then back)."""
    tenant = await browser_tenant(request)
    if tenant is None:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(here)
    return tenant


async def admin_page_tenant(request: Request) -> Tenant:
    """The tenant of an operations page: an admin, else a 403 page."""
    tenant = await page_tenant(request)
    if not tenant.is_admin:
        raise PageError(
            403,
            "Operations are for admins",
            f"tenant {tenant.name!r} is a member; ask an admin for an admin key",
        )
    return tenant


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser's session cookie ('' when it has none)."""
    cookie = request.cookies.get(COOKIE)
    return viewer(request).sessions.csrf(cookie) if cookie else ""


async def check_csrf(request: Request, token: str | None) -> None:
    """A state-changing form's token must be its session's (a 403 page otherwise)."""
    v = viewer(request)
    if v.read_only:
        raise PageError(
            405,
            "This viewer is read-only",
            "podmill view changes nothing; run `podmill serve` to queue work or retry steps",
        )
    if not v.sessions.csrf_ok(request.cookies.get(COOKIE), token):
        raise PageError(
            403,
            "This form expired",
            "the form's security token does not match your session; reload the page and try again",
        )


def secure(request: Request) -> bool:
    """Whether the cookie gets ``Secure``: served over HTTPS (or behind a proxy that
    says so with X-Forwarded-Proto), or forced by the viewer."""
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return viewer(request).force_secure or proto.split(",")[0].strip() == "https"


def set_session(response: Response, request: Request, cookie: str) -> None:
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=secure(request),
        path="/",
    )


def render(
    request: Request,
    template: str,
    tenant: Tenant | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """The page ``template`` with ``context`` and what every page shows (who is logged
    in, the CSRF token of its forms, whether the viewer is read-only)."""
    v = viewer(request)
    cookie = request.cookies.get(COOKIE)
    fresh = None
    if cookie is None and request.app.state.local_tenant is not None and not v.read_only:
        # --no-auth: no login, but forms still need a session to tie their token to
        cookie = fresh = v.sessions.issue(0)
    body = ENV.get_template(template).render(
        request=request,
        path=request.url.path,
        tenant=tenant,
        read_only=v.read_only,
        login_needed=request.app.state.local_tenant is None,
        csrf=v.sessions.csrf(cookie) if cookie else "",
        version=__version__,
        **context,
    )
    response = HTMLResponse(body, status_code=status)
    if fresh is not None:
        set_session(response, request, fresh)
    return response


def error_page(request: Request, status: int, title: str, detail: str = "") -> HTMLResponse:
    """The HTML answer of a page that failed: a heading, what happened, where to go."""
    return render(
        request, "error.html", None, status=status, status_code=status, title=title, detail=detail
    )


def login_redirect(next_url: str) -> RedirectResponse:
    from urllib.parse import quote

    return RedirectResponse(f"/login?next={quote(next_url, safe='/')}", status_code=303)
