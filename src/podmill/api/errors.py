"""Every error answer is JSON ``{"error": CODE, "detail": MESSAGE}``; the message says
what was wrong and what to do. Routes raise :class:`Problem`; the platform's domain
errors (:mod:`podmill.platform.errors`) answer the status :data:`STATUS` gives their kind."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from podmill.errors import PodmillError, first_line
from podmill.platform.errors import Conflict, Invalid, NotFound, PlatformError
from podmill.storage.artifacts import ArtifactDamaged

log = logging.getLogger(__name__)

# The HTTP status of each kind of platform refusal.
STATUS: dict[type[PlatformError], int] = {NotFound: 404, Conflict: 409, Invalid: 422}


class Problem(PodmillError):
    """A request that cannot be served, with the HTTP status that says why."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def not_found(what: str) -> Problem:
    return Problem(404, "not_found", what)


def status_of(exc: PlatformError) -> int:
    """The HTTP status of a platform refusal: its kind's (:data:`STATUS`), else 422."""
    return next((STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS), 422)


ERROR_SCHEMA = {
    "description": "error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
                "required": ["error", "detail"],
            }
        }
    },
}


def error_response(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def answer(
    request: Request, status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    """The error answer of ``request``: the JSON shape, or on a viewer page (``/``,
    ``/view/…``) an HTML error page that says the same."""
    from podmill.api.web.render import error_page

    if is_page_request(request):
        title = {401: "Please log in", 403: "Not for this account", 404: "Not found"}.get(
            status, "Something went wrong" if status >= 500 else "This request cannot be served"
        )
        if status == 404 and detail.startswith("no route "):
            detail = f"There is no page at {request.url.path}."
        page = error_page(request, status, title, detail)
        for name, value in (headers or {}).items():
            page.headers[name] = value
        return page
    return error_response(status, error, detail, headers)


def is_page_request(request: Request) -> bool:
    """Whether ``request`` is for a viewer page (its errors are HTML pages)."""
    from podmill.api.web.render import is_page

    return is_page(request.url.path) and hasattr(request.app.state, "viewer")


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the JSON error shape (an HTML
    page on the viewer's paths)."""

    @app.exception_handler(Problem)
    async def problem(request: Request, exc: Problem) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        headers = getattr(exc, "headers", None) or headers  # e.g. Retry-After with a 429
        return answer(request, exc.status, exc.error, exc.detail, headers)

    @app.exception_handler(PlatformError)
    async def refused(request: Request, exc: PlatformError) -> Response:
        return answer(request, status_of(exc), exc.code, exc.detail)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            detail = f"no route {request.method} {request.url.path}; the routes are at /docs"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}; see /docs"
        else:
            detail = str(exc.detail)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return answer(request, exc.status_code, code, detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return answer(request, 400, "invalid_json", "the request body is not valid JSON")
        return answer(request, 422, "invalid_request", describe_errors(errors))

    @app.exception_handler(ArtifactDamaged)
    async def damaged(request: Request, exc: ArtifactDamaged) -> Response:
        viewer = getattr(request.app.state, "viewer", None)
        if viewer is not None and viewer.read_only:  # podmill view writes nothing
            detail = f"{exc}; run `podmill run` on its feed or file again to re-process it"
            return answer(request, 409, "artifact_damaged", detail)
        answered = await run_in_threadpool(damaged_artifact, request.app.state.platform, exc)
        if is_page_request(request):
            detail = json.loads(bytes(answered.body))["detail"]
            return answer(request, 409, "artifact_damaged", detail)
        return answered

    @app.exception_handler(DataError)
    async def bad_value(_request: Request, exc: DataError) -> JSONResponse:
        return error_response(
            422, "invalid_request", f"a value cannot be stored: {first_line(exc)}"
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def database_down(_request: Request, exc: Exception) -> JSONResponse:
        return database_unavailable(exc)


def database_unavailable(exc: Exception) -> JSONResponse:
    """The 503 for a database that cannot be reached (``DATABASE_ERRORS``)."""
    log.warning("database unavailable: %s", exc)
    return error_response(
        503, "unavailable", "the database is unavailable; try again shortly", {"Retry-After": "5"}
    )


def damaged_artifact(platform: Any, exc: ArtifactDamaged) -> JSONResponse:
    """409 for an artifact that fails its manifest checksum, after queueing the stage that
    wrote it and its dependants again (docs/security.md, "Corrupt artifacts")."""
    from podmill.pipeline.repair import requeue

    stages = requeue(
        platform.store, platform.artifacts, exc.episode_key, exc.fingerprint, [exc.name]
    )
    log.warning("%s; re-running %s", exc, ", ".join(stages) or "nothing (no job)")
    then = (
        f"it has been queued for re-processing; GET /episodes/{exc.episode_key} shows its status"
        if stages
        else "it has been set aside; submit the episode again (POST /jobs) to re-process it"
    )
    return error_response(409, "artifact_damaged", f"{exc}; {then}", {"Retry-After": "30"})


def describe_errors(errors: list[Any]) -> str:
    """``body.url: Field required; query.limit: Input should be …`` (pydantic errors)."""
    parts = []
    for e in errors:
        where = ".".join(str(p) for p in e.get("loc", ()))
        # a validator's ValueError reads "Value error, <message>": the message says it all
        message = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "invalid request"
