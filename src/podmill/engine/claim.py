"""Claiming steps: which pending steps a worker may take, and taking them with their locks.

One transaction per claim. Postgres selects with ``FOR UPDATE OF steps SKIP LOCKED``
so concurrent claimers never wait for, nor take, each other's steps (a job row is only
locked to mark it running); SQLite runs it under ``BEGIN IMMEDIATE``, one writer at a time.

On Postgres a claim is one statement (:func:`_pg_claim`): a CTE per pool picks its
steps, one UPDATE stamps them, one marks their jobs running, and the rows come back with
their jobs' payloads — one round trip, where round trips are what a claim costs. Steps
that need a resource lock come back picked but not stamped; the same transaction takes
their locks and stamps them as SQLite does (they are rare: only API submissions name
resources).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    String,
    TextClause,
    Update,
    any_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql

from podmill.pipeline.dag import STAGE_NAMES
from podmill.storage.db import dialect_insert
from podmill.storage.ready import JOBS, LOCKS, STEPS, ready

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
    enqueued_at: datetime | None = None  # when the step last became ready (queue wait)
    claimed_at: datetime | None = None  # the claim's ``now`` (the same clock)


def claim_for_pools(
    conn: Connection,
    worker_id: str,
    requests: Sequence[tuple[Collection[str], int, Collection[str]]],
    *,
    order: ClaimOrder,
    now: datetime,
    lease: timedelta,
) -> list[list[ClaimedStep]]:
    """Take claimable steps for ``worker_id`` for several pools, ``(stages, limit,
    profiles)`` each, inside the caller's transaction: steps of ``stages`` whose profile
    (set at submit: a tree stage runs in ``llm`` when the job's topics use the LLM) is one
    of ``profiles``.

    Stamps each step ``running`` with a fresh lease token, ``attempts + 1`` and a lease
    ending at ``now + lease``; takes its resource lock; marks its job ``running``.

    No pool ever gets more steps than its ``limit``. Answers per request, in order.
    """
    answers: list[list[ClaimedStep]] = [[] for _ in requests]
    asked = [
        (i, sorted(stages), limit, sorted(profiles))
        for i, (stages, limit, profiles) in enumerate(requests)
        if limit >= 1 and stages and profiles
    ]
    if not asked:
        return answers
    if conn.dialect.name == "postgresql":
        candidates, stamped = _pg_claim(conn, worker_id, asked, order, now, lease)
    else:
        candidates = []
        # One select per pool, each limited to its free slots. The stamping below is one
        # statement for all pools.
        for i, stages, limit, profiles in asked:
            for row in conn.execute(
                _claimable(order),
                {"now": now, "limit": limit, "stages": stages, "profiles": profiles},
            ):
                candidates.append((i, row))
        stamped = {}
    # Pools share no stage (resolve_pools), but never hand out one step twice.
    seen: set[int] = set()
    candidates = [c for c in candidates if not (c[1].id in seen or seen.add(c[1].id))]
    # Steps that need a resource lock: take it (in key order, so two claimers can never
    # wait on each other), then stamp them. On SQLite that is every step.
    wanted: list[int] = []
    for _, row in sorted(candidates, key=lambda c: (c[1].resource_key or "", c[1].id)):
        if row.id in stamped:
            continue
        if row.resource_key is None or take_lock(
            conn, row.resource_key, worker_id, now=now, ttl=lease, step_id=row.id
        ):
            wanted.append(row.id)  # else another claim took the resource since the select
    if wanted:
        # One statement stamps them all, each with its own fresh lease token.
        for row in conn.execute(
            _stamp(conn.dialect.name),
            {"ids": wanted, "worker": worker_id, "now": now, "expires": now + lease},
        ):
            stamped[row.id] = (row.attempts, row.lease_token)
    jobs: set[int] = set()
    for i, row in candidates:
        if row.id in stamped:
            attempt, token = stamped[row.id]
            answers[i].append(
                ClaimedStep(
                    step_id=row.id,
                    job_id=row.job_id,
                    stage=row.stage,
                    attempt=attempt,
                    lease_token=token,
                    payload=row.payload,
                    episode_key=row.episode_key,
                    fingerprint=row.fingerprint,
                    correlation_id=row.correlation_id,
                    enqueued_at=row.enqueued_at,
                    claimed_at=now,
                )
            )
            jobs.add(row.job_id)
    if wanted and jobs:
        # (the Postgres statement marked the jobs of the steps it stamped itself)
        conn.execute(_MARK_JOBS_RUNNING, {"job_ids": sorted(jobs), "now": now})
    return answers


def _pg_claim(
    conn: Connection,
    worker_id: str,
    asked: list[tuple[int, list[str], int, list[str]]],
    order: ClaimOrder,
    now: datetime,
    lease: timedelta,
) -> tuple[list[tuple[int, Any]], dict[int, tuple[int, str]]]:
    """Postgres: pick, stamp and mark running in one statement.

    Returns every picked row as ``(request index, row)`` and the stamped ones as
    ``{step id: (attempt, lease token)}``; picked rows that need a resource lock are
    left for the caller (still row-locked by this transaction).
    """
    params: dict[str, Any] = {"now": now, "expires": now + lease, "worker": worker_id}
    for n, (_, stages, limit, profiles) in enumerate(asked):
        params[f"stages{n}"] = stages
        params[f"limit{n}"] = limit
        params[f"profiles{n}"] = profiles
    candidates: list[tuple[int, Any]] = []
    stamped: dict[int, tuple[int, str]] = {}
    for row in conn.execute(_pg_claim_statement(len(asked), order), params):
        candidates.append((asked[row.pool][0], row))
        if row.lease_token is not None:
            stamped[row.id] = (row.attempts, row.lease_token)
    return candidates, stamped


# The claim's statements are built once, with bound parameters, and reused: building a
# statement costs more than the database takes to run it.

_S = STEPS.alias("s")
_J = JOBS.alias("j")


@functools.cache
def _claimable(order: ClaimOrder) -> Select:
    """One pool's ready steps, with their jobs' payloads (SQLite; the general form)."""
    return _pick(
        order,
        now=bindparam("now", type_=STEPS.c.not_before.type),
        stages=_S.c.stage.in_(bindparam("stages", expanding=True)),
        profiles=_S.c.profile.in_(bindparam("profiles", expanding=True)),
        limit=bindparam("limit", type_=Integer),
    ).add_columns(_J.c.payload, _J.c.episode_key, _J.c.fingerprint, _J.c.correlation_id)


def _pick(
    order: ClaimOrder,
    *,
    now: ColumnElement[Any],
    stages: ColumnElement[bool],
    profiles: ColumnElement[bool],
    limit: ColumnElement[int],
) -> Select:
    """The ready steps (podmill.storage.ready) of one pool, in claim order, each row
    locked as it is returned (``SKIP LOCKED``): no row is held back from other workers
    without being taken."""
    query = (
        select(_S.c.id, _S.c.job_id, _S.c.stage, _S.c.resource_key, _S.c.enqueued_at)
        .join_from(_S, _J, _J.c.id == _S.c.job_id)
        .where(ready(now, _S, _J), stages, profiles)
        .limit(limit)
        .with_for_update(of=[_S], skip_locked=True)
    )
    fifo = (_S.c.enqueued_at, _S.c.id)
    if order == "drain":
        # Later stages first, so started jobs finish before new audio is transcribed.
        rank = case({name: i for i, name in enumerate(STAGE_NAMES)}, value=_S.c.stage)
        return query.order_by(rank.desc(), *fifo)
    if order == "fifo":
        return query.order_by(*fifo)
    raise ValueError(f"unknown claim order {order!r}; expected 'fifo' or 'drain'")


@functools.cache
def _pg_claim_statement(pools: int, order: ClaimOrder) -> TextClause:
    """The one-statement claim for ``pools`` pools (Postgres): see :func:`_pg_claim`.

    Each pool's CTE is :func:`_pick` rendered as Postgres SQL, with placeholders the
    text statement binds (``:now``, ``:stagesN``, ``:profilesN``, ``:limitN``), so the
    two claims share one definition of a ready step.
    """
    picks = [f"p{n} AS (\n{_pg_pick(n, order)})" for n in range(pools)]
    union = " UNION ALL ".join(f"SELECT * FROM p{n}" for n in range(pools))
    return (
        text(
            f"""WITH {", ".join(picks)},
picked AS ({union}),
stamped AS (
    UPDATE steps SET status = 'running', worker_id = :worker,
        lease_token = replace(gen_random_uuid()::text, '-', ''),
        lease_expires_at = :expires, attempts = steps.attempts + 1,
        started_at = :now, finished_at = NULL
    FROM picked
    WHERE steps.id = picked.id AND picked.resource_key IS NULL AND steps.status = 'pending'
    RETURNING steps.id, steps.job_id, steps.attempts, steps.lease_token),
running AS (
    UPDATE jobs SET status = 'running', started_at = coalesce(jobs.started_at, :now)
    WHERE jobs.id IN (SELECT job_id FROM stamped) AND jobs.status = 'pending')
SELECT picked.id, picked.job_id, picked.stage, picked.resource_key, picked.enqueued_at,
    picked.pool,
    stamped.attempts, stamped.lease_token,
    j.payload, j.episode_key, j.fingerprint, j.correlation_id
FROM picked JOIN jobs j ON j.id = picked.job_id
LEFT JOIN stamped ON stamped.id = picked.id
ORDER BY picked.pool, picked.id"""
        )
        .columns(
            payload=JOBS.c.payload.type,
            enqueued_at=STEPS.c.enqueued_at.type,
        )
        .bindparams(
            bindparam("now", type_=STEPS.c.not_before.type),
            bindparam("expires", type_=STEPS.c.lease_expires_at.type),
            *(bindparam(f"stages{n}", type_=postgresql.ARRAY(String)) for n in range(pools)),
            *(bindparam(f"profiles{n}", type_=postgresql.ARRAY(String)) for n in range(pools)),
            *(bindparam(f"limit{n}", type_=Integer) for n in range(pools)),
        )
    )


def _pg_pick(n: int, order: ClaimOrder) -> str:
    """Pool ``n``'s :func:`_pick` as Postgres SQL text, its values written in and its
    parameters left as ``:name`` placeholders for the text statement to bind."""
    pick = _pick(
        order,
        now=literal_column(":now"),
        stages=_S.c.stage == any_(literal_column(f":stages{n}")),
        profiles=_S.c.profile == any_(literal_column(f":profiles{n}")),
        limit=literal_column(f":limit{n}"),
    ).add_columns(literal_column(str(n)).label("pool"))
    dialect = postgresql.dialect(paramstyle="named")
    return str(pick.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


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
    stmt = dialect_insert(conn.dialect.name, LOCKS).values(
        key=key, holder=holder, step_id=step_id, expires_at=now + ttl
    )
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
