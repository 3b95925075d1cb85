"""The jobs page (``/view/jobs``): submit an audio URL (or a subscribed feed item's
enclosure) or upload a file, list this tenant's jobs, and follow one job's stages at
``/view/jobs/{id}`` (static/jobs.js polls ``/view/jobs/{id}/status``).

Submitting goes through the API's own code (api/jobs.py: the URL's episode, the upload's
checks, the request of the job), so a form queues exactly what ``POST /jobs`` would; a
refusal (a bad or private URL, a file too large or not audio) is shown on the form.
Hidden in read-only ``podmill view``: it has nothing to queue work on.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from podmill.api.errors import Problem, describe_errors, status_of
from podmill.api.jobs import (
    PAGE_UPLOAD_PATH,
    JobCreate,
    episode_for_url,
    queue_episode,
    receive_upload,
    tenant_upload,
)
from podmill.api.params import RowId
from podmill.api.web.pages import PageTenant, router
from podmill.api.web.render import PageError, check_csrf, render, viewer
from podmill.api.web.timeline import is_terminal, job_seconds, stage_rows
from podmill.platform import Tenant
from podmill.platform.errors import PlatformError

LISTED = 50  # jobs on the page, newest first
# How often static/jobs.js asks for a job's status (the issue asks for ≤ 2 s).
POLL_MS = 1000


def _writable(request: Request) -> None:
    if viewer(request).read_only:
        raise PageError(
            404,
            "No jobs here",
            "podmill view is read-only: run `podmill run FEED_OR_FILE` to process more, "
            "or `podmill serve` to queue work from the browser",
        )


def _jobs_page(
    request: Request,
    tenant: Tenant,
    jobs: list[dict[str, Any]],
    *,
    status: int = 200,
    error: str | None = None,
    form: str | None = None,
    url: str = "",
) -> HTMLResponse:
    service = request.app.state.platform
    return render(
        request,
        "jobs.html",
        tenant,
        status=status,
        jobs=[_listed(job) for job in jobs],
        error=error,
        error_form=form,
        url=url,
        max_upload_bytes=service.settings.server.max_upload_bytes,
        upload_path=PAGE_UPLOAD_PATH,
    )


def _listed(job: dict[str, Any]) -> dict[str, Any]:
    rows = stage_rows(job)
    return {
        **job,
        "done_stages": sum(1 for r in rows if r.status in ("done", "skipped")),
        "total_stages": len(rows),
        "seconds": job_seconds(job),
    }


async def _my_jobs(request: Request, tenant: Tenant) -> list[dict[str, Any]]:
    service = request.app.state.platform
    return await run_in_threadpool(service.jobs, tenant, None, LISTED)


@router.get("/view/jobs", response_class=HTMLResponse)
async def jobs_page(request: Request, tenant: PageTenant) -> Response:
    _writable(request)
    return _jobs_page(request, tenant, await _my_jobs(request, tenant))


def _refusal(exc: Exception) -> tuple[int, str]:
    """The status and the message a form shows for a refused submission."""
    if isinstance(exc, Problem):
        return exc.status, exc.detail
    if isinstance(exc, PlatformError):
        return status_of(exc), exc.detail
    raise exc


@router.post("/view/jobs", response_class=HTMLResponse)
async def submit_url(
    request: Request,
    tenant: PageTenant,
    csrf: Annotated[str, Form(max_length=200)] = "",
    url: Annotated[str, Form(max_length=8000)] = "",
) -> Response:
    """The URL form: ``POST /jobs {"url": …}``'s checks and request, then the job page."""
    _writable(request)
    await check_csrf(request, csrf)
    url = url.strip()
    try:
        try:
            # the API's body model: the same URL rules (scheme, host, length)
            checked = JobCreate.model_validate({"url": url})
        except ValidationError as exc:
            message = describe_errors(exc.errors()).removeprefix("url: ")
            raise Problem(422, "invalid_url", message) from None
        assert checked.url is not None
        episode, feed_id = await episode_for_url(request, tenant, checked.url)
        job, _created = await queue_episode(request, tenant, episode, feed_id, None)
    except (Problem, PlatformError) as exc:
        code, message = _refusal(exc)
        jobs = await _my_jobs(request, tenant)
        return _jobs_page(request, tenant, jobs, status=code, error=message, form="url", url=url)
    return RedirectResponse(f"/view/jobs/{job['id']}", status_code=303)


@router.post(PAGE_UPLOAD_PATH, response_class=HTMLResponse)
async def submit_upload(request: Request, tenant: PageTenant) -> Response:
    """The upload form: ``POST /jobs``'s multipart upload (the same size cap, the same
    audio check, the tenant's own episode), then the job page."""
    _writable(request)
    service = request.app.state.platform
    try:
        # parsed once: receive_upload reads the same parsed form (Starlette keeps it)
        form = await request.form(max_files=1, max_fields=5)
    except Exception:
        form = None  # receive_upload says what is wrong with the body
    token = form.get("csrf") if form is not None else None
    await check_csrf(request, token if isinstance(token, str) else None)
    try:
        episode, _reply_to = await receive_upload(request, service)
        job, _created = await queue_episode(
            request, tenant, tenant_upload(episode, tenant), None, None
        )
    except (Problem, PlatformError) as exc:
        code, message = _refusal(exc)
        jobs = await _my_jobs(request, tenant)
        return _jobs_page(request, tenant, jobs, status=code, error=message, form="upload")
    return RedirectResponse(f"/view/jobs/{job['id']}", status_code=303)


@router.get("/view/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(request: Request, tenant: PageTenant, job_id: RowId) -> Response:
    _writable(request)
    service = request.app.state.platform
    job = await run_in_threadpool(service.job, tenant, job_id)  # another's: 404
    return render(
        request,
        "job.html",
        tenant,
        job=job,
        stages=stage_rows(job),
        seconds=job_seconds(job),
        terminal=is_terminal(job),
        poll_ms=POLL_MS,
    )


@router.get("/view/jobs/{job_id}/status")
async def job_status(request: Request, tenant: PageTenant, job_id: RowId) -> Response:
    """The job page's stages as JSON, for static/jobs.js (the same job view as
    ``GET /jobs/{id}``, as the page shows it)."""
    from podmill.api.web.timeline import job_status_json

    _writable(request)
    service = request.app.state.platform
    job = await run_in_threadpool(service.job, tenant, job_id)
    return JSONResponse(
        jsonable_encoder(job_status_json(job)), headers={"Cache-Control": "no-store"}
    )
