"""Claiming steps: which pending steps a worker may take, and taking them with their locks.

One transaction per claim. Postgres selects with ``FOR UPDATE OF steps SKIP LOCKED``
so concurrent claimers never wait for, nor take, each other's steps (a job row is only
locked to mark it running); SQLite runs it under ``BEGIN IMMEDIATE``, one writer at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    Integer,
    Select,
    String,
    Update,
    bindparam,
    case,
    cast,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from podmill.pipeline.dag import STAGE_NAMES
from podmill.storage.models import JobRow, PausedStageRow, ResourceLockRow, StepRow

STEPS = StepRow.__table__
JOBS = JobRow.__table__
LOCKS = ResourceLockRow.__table__
PAUSED = PausedStageRow.__table__

ClaimOrder = Literal["fifo", "drain"]


@dataclass(frozen=True)
class ClaimedStep:
    """A step a worker now holds: run it, then complete/fail/release it with ``lease_token``."""

    step_id: int
    job_id: int
    stage: str
    attempt: int  # 1 on the first try
    lease_token: str
    payload: dict[str, Any]  # the job's payload
    episode_key: str
    fingerprint: str
    correlation_id: str | None


def claim_for_pools(
    conn: Connection,
    worker_id: str,
    requests: Sequence[tuple[Collection[str], int]],
    *,
    order: ClaimOrder,
    now: datetime,
    lease: timedelta,
) -> list[list[ClaimedStep]]:
    """Take claimable steps for ``worker_id`` for several pools, ``(stages, limit)`` each,
    inside the caller's transaction.

    Stamps each step ``running`` with a fresh lease token, ``attempts + 1`` and a lease
    ending at ``now + lease``; takes its resource lock; marks its job ``running``.

    No pool ever gets more steps than its ``limit``. Answers per request, in order.
    """
    answers: list[list[ClaimedStep]] = [[] for _ in requests]
    candidates: list[Any] = []
    assigned: dict[int, int] = {}  # step id -> request index
    # One select per pool, each limited to its free slots: a select locks (Postgres,
    # SKIP LOCKED) exactly the rows it returns, so no row is held back from other
    # workers without being taken. The stamping below is one statement for all pools.
    for i, (stages, limit) in enumerate(requests):
        if limit < 1 or not stages:
            continue
        rows = conn.execute(
            _claimable(order), {"now": now, "limit": limit, "stages": sorted(stages)}
        ).all()
        for row in rows:
            if row.id not in assigned:  # pools share no stage, but be safe
                assigned[row.id] = i
                candidates.append(row)
    if not assigned:
        return answers
    wanted: list[int] = []
    # Lock keys are taken in key order, so two claimers can never wait on each other.
    for row in sorted(candidates, key=lambda r: (r.resource_key or "", r.id)):
        if row.id not in assigned:
            continue
        if row.resource_key is None or take_lock(
            conn, row.resource_key, worker_id, now=now, ttl=lease, step_id=row.id
        ):
            wanted.append(row.id)  # else another claim took the resource since the select
    if not wanted:
        return answers
    # One statement stamps them all, each with its own fresh lease token.
    stamped = {
        row.id: row
        for row in conn.execute(
            _stamp(conn.dialect.name),
            {"ids": wanted, "worker": worker_id, "now": now, "expires": now + lease},
        )
    }
    jobs: set[int] = set()
    for row in candidates:
        if row.id in stamped:
            answers[assigned[row.id]].append(
                ClaimedStep(
                    step_id=row.id,
                    job_id=row.job_id,
                    stage=row.stage,
                    attempt=stamped[row.id].attempts,
                    lease_token=stamped[row.id].lease_token,
                    payload=row.payload,
                    episode_key=row.episode_key,
                    fingerprint=row.fingerprint,
                    correlation_id=row.correlation_id,
                )
            )
            jobs.add(row.job_id)
    if jobs:
        conn.execute(_MARK_JOBS_RUNNING, {"job_ids": sorted(jobs), "now": now})
    return answers


# The claim's statements are built once, with bound parameters, and reused: building a
# statement costs more than the database takes to run it.


@functools.cache
def _claimable(order: ClaimOrder) -> Select:
    now = bindparam("now", type_=STEPS.c.not_before.type)
    held_by_another_step = exists().where(
        LOCKS.c.key == STEPS.c.resource_key,
        LOCKS.c.expires_at > now,  # an expired lock is ignored, and taken over by the claim
        or_(LOCKS.c.step_id.is_(None), LOCKS.c.step_id != STEPS.c.id),
    )
    query = (
        select(
            STEPS.c.id,
            STEPS.c.job_id,
            STEPS.c.stage,
            STEPS.c.resource_key,
            JOBS.c.payload,
            JOBS.c.episode_key,
            JOBS.c.fingerprint,
            JOBS.c.correlation_id,
        )
        .join(JOBS, JOBS.c.id == STEPS.c.job_id)
        .where(
            STEPS.c.status == "pending",
            # Only steps that were enqueued (became ready) are claimable.
            STEPS.c.enqueued_at.is_not(None),
            or_(STEPS.c.not_before.is_(None), STEPS.c.not_before <= now),
            STEPS.c.stage.in_(bindparam("stages", expanding=True)),
            STEPS.c.stage.not_in(select(PAUSED.c.stage)),
            JOBS.c.status != "cancelled",
            or_(STEPS.c.resource_key.is_(None), ~held_by_another_step),
        )
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(of=[STEPS], skip_locked=True)
    )
    fifo = (STEPS.c.enqueued_at, STEPS.c.id)
    if order == "drain":
        # Later stages first, so started jobs finish before new audio is transcribed.
        rank = case({name: i for i, name in enumerate(STAGE_NAMES)}, value=STEPS.c.stage)
        return query.order_by(rank.desc(), *fifo)
    if order == "fifo":
        return query.order_by(*fifo)
    raise ValueError(f"unknown claim order {order!r}; expected 'fifo' or 'drain'")


@functools.cache
def _stamp(dialect: str) -> Update:
    """Mark steps running for a worker; each gets a fresh random lease token."""
    if dialect == "postgresql":
        token: Any = func.replace(cast(func.gen_random_uuid(), String), "-", "")
    else:
        token = func.lower(func.hex(func.randomblob(16)))
    now = bindparam("now", type_=STEPS.c.started_at.type)
    return (
        update(STEPS)
        .where(STEPS.c.id.in_(bindparam("ids", expanding=True)), STEPS.c.status == "pending")
        .values(
            status="running",
            worker_id=bindparam("worker", type_=String),
            lease_token=token,
            lease_expires_at=bindparam("expires", type_=STEPS.c.lease_expires_at.type),
            attempts=STEPS.c.attempts + 1,
            started_at=now,
            finished_at=None,
        )
        .returning(STEPS.c.id, STEPS.c.attempts, STEPS.c.lease_token)
    )


_MARK_JOBS_RUNNING = (
    update(JOBS)
    .where(JOBS.c.id.in_(bindparam("job_ids", expanding=True)), JOBS.c.status == "pending")
    .values(
        status="running",
        started_at=func.coalesce(JOBS.c.started_at, bindparam("now", type_=JOBS.c.started_at.type)),
    )
)


def take_lock(
    conn: Connection,
    key: str,
    holder: str,
    *,
    now: datetime,
    ttl: timedelta,
    step_id: int | None = None,
) -> bool:
    """Take the resource lock ``key`` unless someone else holds it live; one statement.

    A step's lock (``step_id`` given) may be re-taken for that same step; a free-standing
    lock may be re-taken by its holder. Expired locks are taken over.
    """
    ours = LOCKS.c.step_id == step_id if step_id is not None else LOCKS.c.holder == holder
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(LOCKS).values(key=key, holder=holder, step_id=step_id, expires_at=now + ttl)
    stmt = stmt.on_conflict_do_update(
        index_elements=[LOCKS.c.key],
        set_={
            "holder": stmt.excluded.holder,
            "step_id": stmt.excluded.step_id,
            "expires_at": stmt.excluded.expires_at,
        },
        where=or_(LOCKS.c.expires_at <= now, ours),
    )
    return conn.execute(stmt.returning(LOCKS.c.key)).first() is not None
