"""The operations page (``/view/ops``, admins only): queues per stage with pause and
resume, workers with their heartbeat age, dead steps with a retry button, recent jobs
with a waterfall of their stages, and the API's health document.

Every number comes from the functions behind ``/admin`` (api/admin.py) and ``GET
/health`` (engine/health.py), and every button calls the same function its API route
does; read-only ``podmill view`` shows the same page without the buttons.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from podmill.api import admin
from podmill.api.params import RowId
from podmill.api.web.pages import router
from podmill.api.web.render import admin_page_tenant, check_csrf, render
from podmill.api.web.timeline import job_seconds, stage_rows
from podmill.engine.health import api_health
from podmill.pipeline.dag import STAGE_NAMES
from podmill.platform import Tenant

AdminPageTenant = Annotated[Tenant, Depends(admin_page_tenant)]
RECENT_JOBS = 20
# What the page says after a button did its work (?done=…&stage=… / &step=…).
NOTICES = {
    "pause": "Paused {stage}: its steps are not claimed until you resume it.",
    "resume": "Resumed {stage}.",
    "retry": "Queued dead step {step} again.",
}


def _snapshot(request: Request) -> dict[str, Any]:
    """Everything the page shows, read in one worker thread."""
    service = request.app.state.platform
    jobs = service.store.jobs(limit=RECENT_JOBS)
    return {
        "queues": admin.queues(service),
        "workers": admin.workers(service),
        "dead": admin.dead(service),
        "jobs": [{**job, "stages": stage_rows(job), "seconds": job_seconds(job)} for job in jobs],
        "health": api_health(service.settings, service.reader),
    }


def _notice(done: str | None, stage: str | None, step: int | None) -> str | None:
    if done not in NOTICES:
        return None
    if done in ("pause", "resume") and stage not in STAGE_NAMES:
        return None
    if done == "retry" and step is None:
        return None
    return NOTICES[done].format(stage=stage, step=step)


@router.get("/view/ops", response_class=HTMLResponse)
async def ops_page(
    request: Request,
    tenant: AdminPageTenant,
    done: str | None = None,
    stage: str | None = None,
    step: int | None = None,
) -> Response:
    snapshot = await run_in_threadpool(_snapshot, request)
    return render(request, "ops.html", tenant, notice=_notice(done, stage, step), **snapshot)


@router.post("/view/ops/queues/{stage}/{action}")
async def pause_or_resume(
    request: Request,
    _tenant: AdminPageTenant,
    stage: str,
    action: Literal["pause", "resume"],
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """The queue's button: ``POST /admin/queues/{stage}/{action}``."""
    await check_csrf(request, csrf)
    service = request.app.state.platform
    await run_in_threadpool(admin.pause_or_resume, service, stage, action)
    return RedirectResponse(f"/view/ops?done={action}&stage={stage}#queues", status_code=303)


@router.post("/view/ops/dead/{step_id}/retry")
async def retry_dead(
    request: Request,
    _tenant: AdminPageTenant,
    step_id: RowId,
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """The dead step's button: ``POST /admin/dead/{step_id}/retry``."""
    await check_csrf(request, csrf)
    service = request.app.state.platform
    await run_in_threadpool(admin.retry_dead, service, step_id)
    return RedirectResponse(f"/view/ops?done=retry&step={step_id}#dead", status_code=303)
