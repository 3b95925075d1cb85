"""``/admin``: queues, dead steps and workers of the engine. Admins only (403)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends

from podmill.api.auth import PlatformDep, admin_tenant
from podmill.api.errors import ERROR_SCHEMA, Problem
from podmill.api.params import RowId
from podmill.api.schemas import DeadStep, DeadStepRetried, Queue, QueueState, Worker
from podmill.pipeline.dag import STAGE_NAMES

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(admin_tenant)],
    responses={401: ERROR_SCHEMA, 403: ERROR_SCHEMA, 404: ERROR_SCHEMA},
)


def _stage(name: str) -> str:
    if name not in STAGE_NAMES:
        raise Problem(404, "not_found", f"no stage {name!r}; stages are {', '.join(STAGE_NAMES)}")
    return name


@router.get("/queues", response_model=list[Queue])
def queues(service: PlatformDep) -> list[dict[str, Any]]:
    """Per stage: steps waiting, pending, running, done, failed, dead; paused or not."""
    stats = service.store.queue_stats()
    return [
        {
            "stage": name,
            **{k: v for k, v in counts.items() if k != "paused"},
            "paused": bool(counts["paused"]),
        }
        for name, counts in stats.items()
    ]


@router.post("/queues/{stage}/{action}", response_model=QueueState)
def pause_or_resume(
    service: PlatformDep, stage: str, action: Literal["pause", "resume"]
) -> dict[str, Any]:
    """Stop (``pause``) or restart (``resume``) claims of a stage's steps."""
    name = _stage(stage)
    store = service.store
    (store.pause if action == "pause" else store.resume)(name)
    return {"stage": name, "paused": action == "pause"}


@router.get("/dead", response_model=list[DeadStep])
def dead(service: PlatformDep) -> list[dict[str, Any]]:
    """Steps that used up their attempts (or failed for good), with their last error."""
    return service.store.list_dead()


@router.post("/dead/{step_id}/retry", response_model=DeadStepRetried)
def retry_dead(service: PlatformDep, step_id: RowId) -> dict[str, Any]:
    """Queue a dead step again with its attempts reset."""
    if not service.store.retry_dead(step_id):
        raise Problem(404, "not_found", f"no dead step {step_id} (GET /admin/dead lists them)")
    return {"step_id": step_id, "status": "pending"}


@router.get("/workers", response_model=list[Worker])
def workers(service: PlatformDep) -> list[dict[str, Any]]:
    """Workers with their pools, status, heartbeat age and the steps they run."""
    return service.workers()
