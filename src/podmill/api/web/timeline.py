"""A job's stages as the operations and jobs pages show them: each step's status,
attempts, duration and error in graph order, and where its run falls in the job's time
(the waterfall: each bar starts and ends at the step's ``started_at`` / ``finished_at``
as a fraction of the span from the job's first start to its last finish)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from podmill.domain import JOB_LIVE
from podmill.pipeline.dag import STAGE_NAMES


@dataclass(frozen=True)
class StageRow:
    """One stage of a job, ready for a template or the status JSON."""

    stage: str
    status: str
    attempts: int
    max_attempts: int
    seconds: float | None  # the run's duration (so far, while running)
    error: str | None
    paused: bool
    # the waterfall bar, as fractions 0..1 of the job's span (None: not started)
    offset: float | None = None
    width: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def is_terminal(job: dict[str, Any]) -> bool:
    """Whether nothing more will happen to ``job`` without someone acting (done,
    failed or cancelled)."""
    return job["status"] not in JOB_LIVE


def stage_rows(job: dict[str, Any], now: datetime | None = None) -> list[StageRow]:
    """``job``'s stages (a ``Platform.job`` / ``store.jobs`` view) in graph order, with
    their waterfall bars; a running step's bar ends ``now``."""
    now = now or datetime.now(UTC)
    steps: dict[str, dict[str, Any]] = job["steps"]
    spans: dict[str, tuple[datetime, datetime]] = {}
    for name, step in steps.items():
        started = _utc(step.get("started_at"))
        if started is None or step["status"] in ("waiting", "pending", "cancelled", "skipped"):
            continue  # a step waiting for a retry kept its last start: not running now
        finished = _utc(step.get("finished_at")) or now
        spans[name] = (started, max(finished, started))
    first = min((s for s, _ in spans.values()), default=None)
    last = max((e for _, e in spans.values()), default=None)
    total = (last - first).total_seconds() if first and last else 0.0
    rows = []
    for name in STAGE_NAMES:
        step = steps.get(name)
        if step is None:
            continue
        span = spans.get(name)
        offset = width = None
        seconds = step.get("duration_seconds")
        if span is not None and first is not None:
            start, end = span
            if seconds is None:
                seconds = (end - start).total_seconds()
            if total > 0:
                offset = (start - first).total_seconds() / total
                width = (end - start).total_seconds() / total
            else:  # everything in the same instant: one full-width bar each
                offset, width = 0.0, 1.0
        rows.append(
            StageRow(
                stage=name,
                status=step["status"],
                attempts=step["attempts"],
                max_attempts=step["max_attempts"],
                seconds=None if seconds is None else round(float(seconds), 3),
                error=step.get("error"),
                paused=bool(step.get("paused")),
                offset=offset,
                width=width,
            )
        )
    return rows


def job_seconds(job: dict[str, Any], now: datetime | None = None) -> float | None:
    """How long ``job`` has run: from its start to its finish (or ``now``)."""
    started = _utc(job.get("started_at"))
    if started is None:
        return None
    finished = _utc(job.get("finished_at")) or (now or datetime.now(UTC))
    return round(max(0.0, (finished - started).total_seconds()), 3)


def job_status_json(job: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """What ``/view/jobs/{id}/status`` answers: enough for static/jobs.js to update
    the job page's stages without reloading it."""
    return {
        "id": job["id"],
        "status": job["status"],
        "terminal": is_terminal(job),
        "episode_key": job["episode_key"],
        "error": job.get("error"),
        "seconds": job_seconds(job, now),
        "paused": list(job.get("paused") or []),
        "stages": [row.to_json() for row in stage_rows(job, now)],
    }
