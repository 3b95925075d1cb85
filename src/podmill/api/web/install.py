"""Putting the viewer into the API's app: its routes, static files, session secret and
the answers of a page that fails (HTML, never a traceback)."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from podmill.api.web import pages
from podmill.api.web.render import LoginRequired, PageError, Viewer, error_page, login_redirect
from podmill.api.web.session import Sessions, session_secret
from podmill.settings import Settings

# The modules that add their pages to `pages.router` (imported for that).
PAGE_MODULES = ("episode", "search", "digest", "ops", "jobs")


def install_viewer(app: FastAPI, settings: Settings, *, read_only: bool = False) -> None:
    """Serve the pages and ``/static/`` from ``app``; ``read_only`` for ``podmill view``."""
    import importlib

    for name in PAGE_MODULES:
        try:
            importlib.import_module(f"podmill.api.web.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"podmill.api.web.{name}":
                raise
    secret_setting = settings.server.session_secret
    secret = (
        session_secret(
            secret_setting.get_secret_value() if secret_setting else None, settings.data_dir
        )
        if not read_only
        else session_secret_for_view()
    )
    app.state.viewer = Viewer(Sessions(secret), read_only=read_only)
    static = resources.files("podmill.api.web") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.include_router(pages.router)

    @app.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError) -> Response:
        return error_page(request, exc.status, exc.title, exc.detail)

    @app.exception_handler(LoginRequired)
    async def login_required(_request: Request, exc: LoginRequired) -> Response:
        return login_redirect(exc.next_url)


def session_secret_for_view() -> bytes:
    """``podmill view`` has no sessions (no login, nothing to change): a throwaway secret,
    so it never writes a key file into the data dir it only reads."""
    import secrets

    return secrets.token_bytes(32)
