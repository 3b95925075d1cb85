"""One definition of a ready step (podmill/storage/ready.py), read four ways over the same
rows on real SQLite and Postgres: the claim's SQLAlchemy select, the one-statement
Postgres claim, ``Store.has_ready`` and the fleet gauges (``podmill_queue_depth`` and
``podmill_queue_paused_depth``). Every edge case is one step of its own job; all four
must name exactly the steps the table below calls ready."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, update

from podmill.engine import Store
from podmill.engine.claim import _claimable, claim_for_pools
from podmill.pipeline.dag import STAGE_NAMES
from podmill.storage.fleet import read_fleet
from podmill.storage.ready import JOBS, LOCKS, STEPS

PAUSED_STAGE = "summarize_l2"
SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Case:
    name: str
    stage: str
    ready: bool
    step: dict[str, Any] = field(default_factory=dict)  # over a pending, enqueued step
    job: dict[str, Any] = field(default_factory=dict)
    lock: str | None = None  # "free-standing", "other step", "own", "expired"
    held_by_pause: bool = False  # ready but for the pause (podmill_queue_paused_depth)


def _cases(now: datetime) -> list[Case]:
    running = {"status": "running", "worker_id": "gone", "lease_token": "t" * 32}
    return [
        Case("plain pending", "fetch", True),
        Case("back-off passed", "transcribe", True, {"not_before": now - SECOND}),
        Case("back-off ends now", "segment", True, {"not_before": now}),
        Case("back-off ahead", "fetch", False, {"not_before": now + SECOND}),
        Case("never enqueued", "decide", False, {"enqueued_at": None}),
        Case("stage paused", PAUSED_STAGE, False, held_by_pause=True),
        Case("stage paused, back-off ahead", PAUSED_STAGE, False, {"not_before": now + SECOND}),
        Case("stage paused, job cancelled", PAUSED_STAGE, False, job={"status": "cancelled"}),
        Case("job cancelled", "fetch", False, job={"status": "cancelled"}),
        Case("lock held (free-standing)", "index", False, lock="free-standing"),
        Case("lock held by another step", "publish", False, lock="other step"),
        Case("lock expired", "synthesize", True, lock="expired"),
        Case("lock is its own", "subsegment", True, lock="own"),
        Case("dead", "fetch", False, {"status": "dead"}),
        Case(
            "running, lease expired",
            "transcribe",
            False,
            {**running, "lease_expires_at": now - SECOND},
        ),
        Case(
            "running, lease live", "segment", False, {**running, "lease_expires_at": now + SECOND}
        ),
        Case(
            "waiting for a predecessor",
            "synthesize",
            False,
            {"status": "waiting", "deps_remaining": 1, "enqueued_at": None},
        ),
        Case("failed", "segment", False, {"status": "failed"}),
        Case("cancelled", "index", False, {"status": "cancelled"}),
        Case("done", "fetch", False, {"status": "done"}),
    ]


def _build(store: Store, cases: list[Case], now: datetime) -> dict[str, int]:
    """One job per case; every step of it ``waiting`` except the case's own step. Each
    case's step gets a profile of its own (``case<n>``), so ``has_ready`` (which filters
    by stage and profile, as a pool does) can be asked about it alone. Returns the step
    id of each case."""
    ids: dict[str, int] = {}
    for n, case in enumerate(cases):
        job_id, _ = store.submit(f"{n:032x}", "f" * 32, {"episode": {}})
        with store.engine.begin() as conn:
            conn.execute(
                update(STEPS)
                .where(STEPS.c.job_id == job_id)
                .values(status="waiting", enqueued_at=None, deps_remaining=1)
            )
            lock_key = f"host:{n}" if case.lock else None
            values = {
                "status": "pending",
                "enqueued_at": now - SECOND,
                "deps_remaining": 0,
                "profile": f"case{n}",
                "resource_key": lock_key,
                **case.step,
            }
            ids[case.name] = conn.execute(
                update(STEPS)
                .where(STEPS.c.job_id == job_id, STEPS.c.stage == case.stage)
                .values(**values)
                .returning(STEPS.c.id)
            ).scalar_one()
            if case.job:
                conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(**case.job))
            if case.lock:
                _hold(conn, case.lock, lock_key, ids[case.name], now)
    store.pause(PAUSED_STAGE)
    return ids


def _hold(conn: Connection, kind: str, key: str | None, step_id: int, now: datetime) -> None:
    step, expires = {
        "free-standing": (None, now + SECOND),
        "other step": (step_id + 100_000, now + SECOND),
        "own": (step_id, now + SECOND),
        "expired": (step_id + 100_000, now),  # expires_at == now: expired
    }[kind]
    conn.execute(
        LOCKS.insert().values(key=key, holder="other-worker", step_id=step, expires_at=expires)
    )


def _profiles(cases: list[Case]) -> list[str]:
    return [f"case{n}" for n in range(len(cases))]


def _claimed(store: Store, cases: list[Case], now: datetime, order: str) -> set[int]:
    """The claim this database runs (one statement on Postgres), rolled back."""
    with store.engine.connect() as conn, conn.begin() as tx:
        [answer] = claim_for_pools(
            conn,
            "probe",
            [(STAGE_NAMES, 1000, _profiles(cases))],
            order=order,  # type: ignore[arg-type]
            now=now,
            lease=timedelta(seconds=30),
        )
        tx.rollback()
    return {step.step_id for step in answer}


def _selected(store: Store, cases: list[Case], now: datetime, order: str) -> set[int]:
    """The claim's SQLAlchemy select, on either database."""
    params = {"now": now, "limit": 1000, "stages": STAGE_NAMES, "profiles": _profiles(cases)}
    with store.engine.connect() as conn, conn.begin() as tx:
        ids = {row.id for row in conn.execute(_claimable(order), params)}  # type: ignore[arg-type]
        tx.rollback()
    return ids


@pytest.mark.parametrize("order", ["fifo", "drain"])
def test_every_reading_of_ready_names_the_same_steps(store: Store, order: str) -> None:
    now = store.clock.now()
    cases = _cases(now)
    ids = _build(store, cases, now)
    expected = {ids[c.name] for c in cases if c.ready}
    names = {step_id: name for name, step_id in ids.items()}

    def named(found: set[int]) -> set[str]:
        return {names[i] for i in found}

    assert named(_selected(store, cases, now, order)) == named(expected)
    # on Postgres, the one-statement claim (engine/claim.py: _pg_claim_statement)
    assert named(_claimed(store, cases, now, order)) == named(expected)

    has_ready = {
        ids[c.name] for n, c in enumerate(cases) if store.has_ready(STAGE_NAMES, [f"case{n}"])
    }
    assert named(has_ready) == named(expected)

    fleet = read_fleet(store.engine, stages=STAGE_NAMES, stale_seconds=60, now=now)
    want_depth = Counter(c.stage for c in cases if c.ready)
    assert fleet.queue_depth == {s: want_depth[s] for s in STAGE_NAMES}
    want_paused = Counter(c.stage for c in cases if c.held_by_pause)
    assert fleet.paused_depth == {s: want_paused[s] for s in STAGE_NAMES}
    assert fleet.ready_total == len(expected)


def test_a_resumed_stage_and_a_passing_clock_agree_everywhere(store: Store) -> None:
    """The same rows a second later, the pause lifted: the back-off that was ahead has
    passed, the live lock and live lease have expired (the step with an expired lease is
    still not ready: the reaper hands it back first)."""
    now = store.clock.now()
    cases = _cases(now)
    ids = _build(store, cases, now)
    store.resume(PAUSED_STAGE)
    later = now + SECOND
    store.clock.set(later)  # type: ignore[attr-defined]
    newly = {
        "back-off ahead",
        "stage paused",
        "stage paused, back-off ahead",
        "lock held (free-standing)",
        "lock held by another step",
    }
    expected = {c.name for c in cases if c.ready} | newly
    names = {step_id: name for name, step_id in ids.items()}
    assert {names[i] for i in _selected(store, cases, later, "fifo")} == expected
    assert {names[i] for i in _claimed(store, cases, later, "fifo")} == expected
    has_ready = {c.name for n, c in enumerate(cases) if store.has_ready(STAGE_NAMES, [f"case{n}"])}
    assert has_ready == expected
    fleet = read_fleet(store.engine, stages=STAGE_NAMES, stale_seconds=60, now=later)
    assert fleet.ready_total == len(expected)
    assert sum(fleet.paused_depth.values()) == 0
