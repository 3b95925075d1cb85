"""Health: ``healthy | degraded | unhealthy`` with one entry per check.

The answer (API ``GET /health`` and a worker's ``GET /health`` on its metrics port)::

    {"status": "healthy|degraded|unhealthy", "version": "...", "git_sha": "...|unknown",
     "checks": {"database": {"status": ..., "latency_ms": ..., "detail": ...}, ...}}

The overall status is the worst check's. The rules (docs/observability.md):

- ``database``: ``SELECT 1`` answers → healthy (with its latency), else **unhealthy**;
- ``backlog``: steps ready to run > ``health.backlog_threshold`` → degraded;
- ``workers``: no worker alive (status ``running``, heartbeat younger than
  ``health.worker_stale_seconds``) while steps are ready to run → degraded; no worker
  and nothing queued is healthy (a quiet install);
- ``disk``: free bytes in ``data_dir`` below ``health.disk_low_bytes`` → degraded,
  below ``health.disk_critical_bytes`` → **unhealthy**;
- ``models``: the configured ASR, embedder (and local LLM) packages importable and their
  weights present — checked without loading anything → else degraded;
- ``gpu`` (only when ``asr.device`` or ``diarization.device`` is ``cuda``): CTranslate2
  sees a CUDA device → else degraded;
- ``writes`` (a worker's own): its last step ran out of disk space → degraded.

A check that cannot run because the database is down says ``unknown``; it does not
change the overall status (the database check already made it unhealthy).

This module holds the verdicts and the checks that need nothing above obs; the
``models`` and ``gpu`` checks are :mod:`podmill.ml.preflight` (each backend's own
``preflight``), and the three answers are composed in :mod:`podmill.engine.health`.
"""

from __future__ import annotations

import functools
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podmill import __version__
from podmill.errors import first_line

HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN = "healthy", "degraded", "unhealthy", "unknown"
_RANK = {HEALTHY: 0, UNKNOWN: 0, DEGRADED: 1, UNHEALTHY: 2}


@dataclass
class Check:
    """One check's verdict; ``data`` holds its numbers (latency, counts, bytes)."""

    status: str
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, **self.data, "detail": self.detail}


def overall(checks: dict[str, Check]) -> str:
    """The worst status among ``checks`` (``unknown`` counts as healthy)."""
    worst = max((_RANK[c.status] for c in checks.values()), default=0)
    return {0: HEALTHY, 1: DEGRADED, 2: UNHEALTHY}[worst]


def report(checks: dict[str, Check]) -> dict[str, Any]:
    """The health document for ``checks``."""
    return {
        "status": overall(checks),
        "version": __version__,
        "git_sha": git_sha(),
        "checks": {name: check.to_json() for name, check in checks.items()},
    }


def http_status(document: dict[str, Any]) -> int:
    """200 for healthy and degraded (still serving), 503 for unhealthy."""
    return 503 if document["status"] == UNHEALTHY else 200


# ------------------------------------------------------------------------- checks


def check_database(engine: Any) -> Check:
    """``SELECT 1`` on ``engine``, timed."""
    from sqlalchemy import text

    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return Check(UNHEALTHY, f"unreachable: {first_line(exc)}")
    latency = (time.perf_counter() - started) * 1000
    return Check(HEALTHY, "reachable", {"latency_ms": round(latency, 2)})


def check_backlog(ready: int, threshold: int) -> Check:
    """Degraded when more than ``threshold`` steps are ready to run."""
    data = {"ready": ready, "threshold": threshold}
    if ready > threshold:
        return Check(DEGRADED, f"{ready} steps ready to run, over {threshold}", data)
    return Check(HEALTHY, f"{ready} steps ready to run", data)


def check_workers(alive: int, ready: int) -> Check:
    """Degraded when no worker is alive while steps are ready to run."""
    data = {"alive": alive, "ready": ready}
    if alive == 0 and ready > 0:
        return Check(DEGRADED, f"no live worker while {ready} steps are ready to run", data)
    if alive == 0:
        return Check(HEALTHY, "no live worker; nothing queued", data)
    return Check(HEALTHY, f"{alive} live worker(s)", data)


def check_disk(path: Path, low_bytes: int, critical_bytes: int) -> Check:
    """Free bytes under ``path``: degraded below ``low_bytes``, unhealthy below
    ``critical_bytes``."""
    from podmill.obs.metrics import disk_free_bytes

    free = disk_free_bytes(path)
    data: dict[str, Any] = {"path": str(path), "free_bytes": free}
    if free is None:
        return Check(DEGRADED, f"cannot read free space of {path}", data)
    if free < critical_bytes:
        return Check(UNHEALTHY, f"{free >> 20} MiB free, under {critical_bytes >> 20} MiB", data)
    if free < low_bytes:
        return Check(DEGRADED, f"{free >> 20} MiB free, under {low_bytes >> 20} MiB", data)
    return Check(HEALTHY, f"{free >> 20} MiB free", data)


def check_writes(disk_full: str | None) -> Check:
    """Degraded while a worker's last step ran out of disk space (it released the step
    and pauses its claims; the next step that finishes clears it)."""
    if disk_full:
        return Check(DEGRADED, disk_full)
    return Check(HEALTHY, "no step ran out of disk space")


# ------------------------------------------------------------------------ version


@functools.cache
def git_sha() -> str:
    """``PODMILL_GIT_SHA`` (the Docker build sets it), else ``git rev-parse HEAD`` when
    podmill runs from a checkout, else ``unknown``."""
    sha = os.environ.get("PODMILL_GIT_SHA", "").strip()
    if sha:
        return sha
    here = Path(__file__).resolve().parent
    if not any((parent / ".git").exists() for parent in here.parents):
        return "unknown"
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out or "unknown"
