"""The health answers of podmill's processes (docs/observability.md): the API's
``GET /health``, a worker's ``GET /health`` on its metrics port, the scheduler's.

Each composes checks from the layers below it: the verdicts and the generic checks
(database, disk, backlog, workers, writes) from :mod:`podmill.obs.health`, the fleet's
numbers from :mod:`podmill.storage.fleet`, and whether the models could load from
:mod:`podmill.ml.preflight` (each backend's own ``preflight``).
"""

from __future__ import annotations

import time
from typing import Any

from podmill.errors import first_line
from podmill.ml.preflight import check_gpu, check_models
from podmill.obs.health import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    UNKNOWN,
    Check,
    check_backlog,
    check_database,
    check_disk,
    check_workers,
    check_writes,
    report,
)
from podmill.pipeline.dag import STAGE_NAMES
from podmill.settings import Settings
from podmill.storage.fleet import read_fleet


def api_health(settings: Settings, engine: Any) -> dict[str, Any]:
    """The API's health: database, backlog, workers, disk, models, and gpu if configured."""
    checks: dict[str, Check] = {"database": check_database(engine)}
    if checks["database"].status == HEALTHY:
        try:
            fleet = read_fleet(
                engine, stages=STAGE_NAMES, stale_seconds=settings.health.worker_stale_seconds
            )
        except Exception as exc:
            checks["database"] = Check(UNHEALTHY, f"queries fail: {first_line(exc)}")
            fleet = None
    else:
        fleet = None
    if fleet is not None:
        checks["backlog"] = check_backlog(fleet.ready_total, settings.health.backlog_threshold)
        checks["workers"] = check_workers(fleet.workers_alive, fleet.ready_total)
    else:
        checks["backlog"] = Check(UNKNOWN, "database unreachable")
        checks["workers"] = Check(UNKNOWN, "database unreachable")
    _common_checks(settings, checks)
    return report(checks)


def worker_health(worker: Any, settings: Settings) -> dict[str, Any]:
    """A worker's health: database, its own heartbeat, its steps in flight, disk, models,
    gpu if configured.

    The heartbeat is degraded when older than two heartbeat intervals (2/3 of the
    lease) and unhealthy when older than the lease: from then on other workers may reap
    its steps.
    """
    checks: dict[str, Check] = {"database": check_database(worker.store.engine)}
    lease = worker.store.lease_seconds
    last = worker.last_heartbeat
    age = None if last is None else max(0.0, time.time() - last)
    data = {"age_seconds": None if age is None else round(age, 3), "lease_seconds": lease}
    if age is None:
        checks["heartbeat"] = Check(DEGRADED, "no heartbeat written yet", data)
    elif age > lease:
        checks["heartbeat"] = Check(
            UNHEALTHY, f"last heartbeat {age:.1f}s ago, over the lease", data
        )
    elif age > lease * 2 / 3:
        checks["heartbeat"] = Check(DEGRADED, f"last heartbeat {age:.1f}s ago", data)
    else:
        checks["heartbeat"] = Check(HEALTHY, f"last heartbeat {age:.1f}s ago", data)
    steps = worker.in_flight()
    checks["in_flight"] = Check(
        HEALTHY,
        f"{len(steps)} step(s) running; stopping"
        if worker.stopping
        else f"{len(steps)} step(s) running",
        {"count": len(steps), "steps": steps, "stopping": worker.stopping},
    )
    checks["writes"] = check_writes(worker.degraded)
    _common_checks(settings, checks)
    document = report(checks)
    document["worker_id"] = worker.worker_id
    return document


def process_health(settings: Settings, engine: Any) -> dict[str, Any]:
    """The health of a process that runs no steps (the scheduler): database and disk."""
    checks = {
        "database": check_database(engine),
        "disk": check_disk(
            settings.data_dir, settings.health.disk_low_bytes, settings.health.disk_critical_bytes
        ),
    }
    return report(checks)


def _common_checks(settings: Settings, checks: dict[str, Check]) -> None:
    checks["disk"] = check_disk(
        settings.data_dir, settings.health.disk_low_bytes, settings.health.disk_critical_bytes
    )
    checks["models"] = check_models(settings)
    gpu = check_gpu(settings)
    if gpu is not None:
        checks["gpu"] = gpu
