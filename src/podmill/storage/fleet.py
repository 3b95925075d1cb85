"""The whole fleet's state, read from the database: queue depth (ready steps, and those a
paused queue holds back), running and dead steps, jobs by status, live workers, the oldest
unfinished job.

The API's ``/metrics`` (gauges) and ``/health`` (backlog and workers checks) both read
it, so a scrape of the API sees every worker's queue even when workers run elsewhere.
Four ``GROUP BY``/aggregate queries on indexed columns; :class:`FleetCache` keeps one
snapshot for a couple of seconds so many scrapers do not multiply them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, case, func, select

from podmill.domain import JOB_LIVE
from podmill.storage.models import JOB_STATUSES, SearchDocRow, WorkerRow
from podmill.storage.ready import JOBS, PAUSED, STEPS, ready, ready_but_paused

WORKERS = WorkerRow.__table__
SEARCH_DOCS = SearchDocRow.__table__


@dataclass
class FleetState:
    """One reading of the fleet; every stage asked for and every job status is present
    (0 when none)."""

    queue_depth: dict[str, int] = field(default_factory=dict)
    # steps that would be ready but for their stage's pause (not in queue_depth)
    paused_depth: dict[str, int] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    paused: set[str] = field(default_factory=set)
    jobs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(JOB_STATUSES, 0))
    workers_alive: int = 0
    oldest_unfinished_job_seconds: float = 0.0
    # search documents by kind (the index's size; its vectors are a cache of these rows)
    search_docs: dict[str, int] = field(default_factory=dict)

    @property
    def ready_total(self) -> int:
        return sum(self.queue_depth.values())


def read_fleet(
    engine: Engine,
    *,
    stages: Iterable[str],
    stale_seconds: float,
    now: datetime | None = None,
) -> FleetState:
    """Read the fleet's state for ``stages`` (the DAG's ``STAGE_NAMES``: this module
    sits below the pipeline, so the caller names them; a stage with no steps reads 0).
    Queue depth counts the steps a worker could claim now (podmill.storage.ready: a
    paused stage's steps are not among them, they are its ``paused_depth``); a worker is
    *alive* when its status is ``running`` and its heartbeat is younger than
    ``stale_seconds``."""
    now = now or datetime.now(UTC)
    state = FleetState()
    for counts in (state.queue_depth, state.paused_depth, state.running, state.dead):
        counts.update(dict.fromkeys(stages, 0))
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                STEPS.c.stage,
                func.sum(case((ready(now), 1), else_=0)),
                func.sum(case((ready_but_paused(now), 1), else_=0)),
                func.sum(case((STEPS.c.status == "running", 1), else_=0)),
                func.sum(case((STEPS.c.status == "dead", 1), else_=0)),
            )
            .join(JOBS, JOBS.c.id == STEPS.c.job_id)
            .where(STEPS.c.status.in_(("pending", "running", "dead")))
            .group_by(STEPS.c.stage)
        ).all()
        for stage, ready_steps, held_by_pause, running, dead in rows:
            state.queue_depth[stage] = int(ready_steps or 0)
            state.paused_depth[stage] = int(held_by_pause or 0)
            state.running[stage] = int(running or 0)
            state.dead[stage] = int(dead or 0)
        for status, count in conn.execute(
            select(JOBS.c.status, func.count()).group_by(JOBS.c.status)
        ).all():
            state.jobs[status] = int(count)
        state.workers_alive = int(
            conn.execute(
                select(func.count()).where(
                    WORKERS.c.status == "running",
                    WORKERS.c.heartbeat_at >= now - timedelta(seconds=stale_seconds),
                )
            ).scalar_one()
        )
        oldest = conn.execute(
            select(func.min(JOBS.c.created_at)).where(JOBS.c.status.in_(JOB_LIVE))
        ).scalar_one()
        state.paused = set(conn.execute(select(PAUSED.c.stage)).scalars())
        for kind, count in conn.execute(
            select(SEARCH_DOCS.c.kind, func.count()).group_by(SEARCH_DOCS.c.kind)
        ).all():
            state.search_docs[str(kind)] = int(count)
    if oldest is not None:
        if oldest.tzinfo is None:  # an aggregate skips the column type's UTC conversion
            oldest = oldest.replace(tzinfo=UTC)
        state.oldest_unfinished_job_seconds = max(0.0, (now - oldest).total_seconds())
    return state


class FleetCache:
    """:func:`read_fleet` at most once per ``ttl`` seconds (thread-safe)."""

    def __init__(
        self, engine: Engine, *, stages: Iterable[str], stale_seconds: float, ttl: float = 2.0
    ) -> None:
        self.engine = engine
        self.stages = tuple(stages)
        self.stale_seconds = stale_seconds
        self.ttl = ttl
        self._lock = threading.Lock()
        self._state: FleetState | None = None
        self._read_at = 0.0

    def get(self) -> FleetState:
        with self._lock:
            if self._state is None or time.monotonic() - self._read_at >= self.ttl:
                self._state = read_fleet(
                    self.engine, stages=self.stages, stale_seconds=self.stale_seconds
                )
                self._read_at = time.monotonic()
            return self._state
