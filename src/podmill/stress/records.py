"""What one stress job looked like, and the arithmetic over many: percentiles,
throughput, per-stage aggregates and the pass criteria. Pure functions, no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

# A step that ran to completion; ``skipped`` is the engine's "nothing to do" success.
FINISHED_STEP = ("done", "skipped")


def parse_time(value: str | None) -> datetime | None:
    """An ISO timestamp from the API; a naive one is UTC (SQLite stores naive UTC)."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def seconds_between(start: str | None, end: str | None) -> float | None:
    a, b = parse_time(start), parse_time(end)
    return None if a is None or b is None else round((b - a).total_seconds(), 3)


@dataclass
class StageRecord:
    """One step of a job as ``GET /jobs/{id}`` last showed it."""

    status: str
    attempts: int = 0
    worker_id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_seconds: float | None = None
    error: str | None = None

    @classmethod
    def from_api(cls, step: dict[str, Any]) -> StageRecord:
        return cls(
            status=str(step.get("status")),
            attempts=int(step.get("attempts") or 0),
            worker_id=step.get("worker_id"),
            started_at=step.get("started_at"),
            finished_at=step.get("finished_at"),
            duration_seconds=step.get("duration_seconds"),
            error=step.get("error"),
        )


@dataclass
class JobRecord:
    """One submitted job: client-side times (``submitted_at``, ``observed_at``) from the
    harness clock, server-side times (``created_at``, ``started_at``, ``finished_at``)
    from the API. Latency uses the server's clock only, so clock skew between the
    harness and the server cannot distort it."""

    index: int
    group: str  # the concurrency level (``c4``) or the A/B arm name
    audio_sha256: str
    status: str  # a job status, or ``timeout`` / ``submit_error`` (the harness's own)
    id: int | None = None
    correlation_id: str | None = None
    episode_key: str | None = None
    created: bool | None = None  # False: the API attached it to an existing job
    submitted_at: str | None = None
    observed_at: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    latency_seconds: float | None = None
    error: str | None = None
    stages: dict[str, StageRecord] = field(default_factory=dict)

    def update_from_api(self, job: dict[str, Any]) -> None:
        self.id = job.get("id", self.id)
        self.status = str(job.get("status"))
        self.correlation_id = job.get("correlation_id")
        self.episode_key = job.get("episode_key")
        self.created_at = job.get("created_at")
        self.started_at = job.get("started_at")
        self.finished_at = job.get("finished_at")
        self.error = job.get("error")
        self.stages = {
            name: StageRecord.from_api(step) for name, step in (job.get("steps") or {}).items()
        }
        self.latency_seconds = seconds_between(self.created_at, self.finished_at)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        stages = {k: StageRecord(**v) for k, v in (data.get("stages") or {}).items()}
        return cls(**{**data, "stages": stages})


# ----------------------------------------------------------------- arithmetic


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation between the closest
    ranks (numpy's default ``linear`` method); ``None`` for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class GroupSummary:
    """A group of jobs (one concurrency level, one A/B arm) in numbers."""

    group: str
    concurrency: int
    jobs: int
    done: int
    failed: int  # every job that is not done: failed, cancelled, timed out, not submitted
    window_seconds: float | None
    throughput_per_minute: float | None
    latency_p50: float | None
    latency_p95: float | None
    latency_max: float | None
    stages: dict[str, dict[str, float | int | None]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stage_stats(jobs: Sequence[JobRecord]) -> dict[str, dict[str, float | int | None]]:
    """Per stage, over the steps that finished: count, mean, p50, p95, max seconds."""
    durations: dict[str, list[float]] = {}
    for job in jobs:
        for name, stage in job.stages.items():
            if stage.status in FINISHED_STEP and stage.duration_seconds is not None:
                durations.setdefault(name, []).append(float(stage.duration_seconds))
    return {
        name: {
            "count": len(values),
            "mean": _rounded(sum(values) / len(values)),
            "p50": _rounded(percentile(values, 50)),
            "p95": _rounded(percentile(values, 95)),
            "max": _rounded(max(values)),
        }
        for name, values in durations.items()
    }


def summarize(group: str, concurrency: int, jobs: Sequence[JobRecord]) -> GroupSummary:
    """Throughput is done jobs per minute over the group's server-side window, from the
    first job's creation to the last job's finish; latency is creation → finish of each
    done job (so queueing behind the other jobs counts, as a client would feel it)."""
    done = [j for j in jobs if j.status == "done"]
    latencies = [j.latency_seconds for j in done if j.latency_seconds is not None]
    starts = [t for j in jobs if (t := parse_time(j.created_at)) is not None]
    ends = [t for j in done if (t := parse_time(j.finished_at)) is not None]
    window = (max(ends) - min(starts)).total_seconds() if starts and ends else None
    throughput = len(done) / window * 60 if window and window > 0 else None
    return GroupSummary(
        group=group,
        concurrency=concurrency,
        jobs=len(jobs),
        done=len(done),
        failed=len(jobs) - len(done),
        window_seconds=_rounded(window),
        throughput_per_minute=_rounded(throughput),
        latency_p50=_rounded(percentile(latencies, 50)),
        latency_p95=_rounded(percentile(latencies, 95)),
        latency_max=_rounded(max(latencies) if latencies else None),
        stages=stage_stats(jobs),
    )


def ratio(a: float | None, b: float | None) -> float | None:
    """``b / a`` (how B compares with A), ``None`` when either is missing or a is 0."""
    if a is None or b is None or a == 0:
        return None
    return round(b / a, 3)


# ------------------------------------------------------------- pass criteria


def job_problems(jobs: Sequence[JobRecord], stage_names: Sequence[str]) -> list[str]:
    """Why these jobs fail the criteria "all done, every job shows all its stages, no
    failed or dead step, none collapsed into another job"; empty when they pass."""
    problems: list[str] = []
    for job in jobs:
        label = f"job {job.id}" if job.id is not None else f"job #{job.index}"
        if job.status != "done":
            reason = f": {job.error}" if job.error else ""
            problems.append(f"{label} is {job.status}{reason}")
        if job.created is False:
            problems.append(f"{label} was not new (the API attached it to an existing job)")
        missing = [s for s in stage_names if s not in job.stages]
        if missing and job.status != "submit_error":
            problems.append(f"{label} shows no step for {', '.join(missing)}")
        for name in stage_names:
            stage = job.stages.get(name)
            if stage is None:
                continue
            if job.status == "done" and stage.status not in FINISHED_STEP:
                problems.append(f"{label} stage {name} is {stage.status}")
            elif stage.status in ("failed", "dead"):
                detail = f": {stage.error}" if stage.error else ""
                problems.append(f"{label} stage {name} is {stage.status}{detail}")
            elif stage.error:
                # done in the end, but an attempt failed: a worker hit an error on the way
                problems.append(
                    f"{label} stage {name} took {stage.attempts} attempts (error: {stage.error})"
                )
    return problems
