"""The durable engine's store: jobs, steps, leases, workers and locks in the database.

Every state change of a step is one method here, one transaction, with its SQL in one
place. The same code runs on SQLite (embedded: every write transaction takes the write
lock with ``BEGIN IMMEDIATE``) and Postgres (distributed: row locks, ``SKIP LOCKED``,
``LISTEN/NOTIFY``). Times come from the injected clock; retry jitter from the injected
``random.Random``.

Lock order on Postgres, which keeps transactions from deadlocking: a transaction that
changes a job's steps locks the job row first (:meth:`Store._lock_job`; a batch of
completions locks its jobs in id order); claim and reap, which touch many jobs, skip step
rows that are locked instead of waiting for them. A claim's one job write (``pending`` →
``running``) may wait for a job lock; should that ever deadlock with an operator's
cancel, Postgres aborts one side and :meth:`Store._write` runs it again.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

from sqlalchemy import (
    Connection,
    Float,
    Integer,
    Row,
    and_,
    bindparam,
    case,
    delete,
    func,
    make_url,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from podmill.domain import JOB_LIVE
from podmill.engine.claim import ClaimedStep, ClaimOrder, claim_for_pools, take_lock
from podmill.engine.clock import Clock, SystemClock
from podmill.pipeline.dag import PROFILES, STAGE_NAMES, STAGES, stage, successors
from podmill.storage.db import DEFERRED, dialect_insert, make_engine, session_factory
from podmill.storage.models import STEP_STATUSES, WORKER_STATUSES, WorkerRow
from podmill.storage.ready import JOBS, LOCKS, PAUSED, STEPS, ready

__all__ = ["CHANNEL", "ClaimedStep", "StepStore", "Store", "Waiter", "libpq_dsn"]

WORKERS = WorkerRow.__table__
CHANNEL = "podmill_steps"  # Postgres NOTIFY channel: some step became pending
# Arbitrary constant: only one reaper at a time on a Postgres database.
_PG_REAPER_LOCK = 0x706F6472  # "podr"
_RETRIES_ON_DEADLOCK = 3
_COUNTERS = ("lease_lost", "completed", "failed", "released", "reaped")

T = TypeVar("T")
FailOutcome = Literal["retry", "dead", "lost"]


class Waiter(Protocol):
    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` s; ``True`` if woken because steps became pending."""
        ...


class StepStore(Protocol):
    """What a worker (engine/worker.py) and the step runner (engine/execute.py) need from
    a store: claim, fence every outcome, keep leases alive, wake up. :class:`Store` is
    the one implementation; each method's contract is on it."""

    dialect: str
    lease_seconds: float
    sessions: sessionmaker[Session]

    def register_worker(
        self, worker_id: str, host: str, pid: int, pools: dict[str, int]
    ) -> None: ...

    def set_worker_status(self, worker_id: str, status: str) -> None: ...

    def claim_pools(
        self,
        worker_id: str,
        requests: Collection[tuple[Collection[str], int, Collection[str]]],
        order: ClaimOrder = "fifo",
    ) -> list[list[ClaimedStep]]: ...

    def has_ready(self, stages: Collection[str], profiles: Collection[str]) -> bool: ...

    def complete(
        self, step_id: int, lease_token: str, *, duration: float | None = None
    ) -> bool: ...

    def complete_many(
        self, results: Collection[tuple[int, str, float | None]]
    ) -> dict[int, bool]: ...

    def record_notes(self, step_id: int, lease_token: str, notes: Collection[str]) -> bool: ...

    def fail(
        self,
        step_id: int,
        lease_token: str,
        error: str,
        *,
        retryable: bool = True,
        duration: float | None = None,
    ) -> FailOutcome: ...

    def release(self, step_id: int, lease_token: str) -> bool: ...

    def heartbeat(self, worker_id: str, step_ids: Collection[int] = ()) -> int: ...

    def reap(self, self_worker_id: str | None = None) -> list[int]: ...

    def listen(self) -> AbstractContextManager[Waiter]: ...


@dataclass
class _Tx:
    """One write transaction, and the stages whose steps it made pending."""

    conn: Connection
    ready: set[str] = field(default_factory=set)


class Store:
    """Jobs and steps of the durable engine, on SQLite or Postgres.

    Safe to share between threads (one engine, a connection per call). Run
    ``podmill.storage.db.upgrade(url)`` before using a new database.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        lease_seconds: float = 30.0,
        rng: random.Random | None = None,
        retry_delay_scale: float = 1.0,
    ) -> None:
        self.url = url
        # Multiplies every stage's retry delays (setting pipeline.retry_delay_scale).
        self.retry_delay_scale = retry_delay_scale
        self.engine = make_engine(url, immediate=True, pre_ping=False)
        self.dialect: str = self.engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(
                f"unsupported database {self.dialect!r}: the engine runs on SQLite or Postgres"
            )
        self.sessions = session_factory(self.engine)
        self.clock: Clock = clock or SystemClock()
        self.lease_seconds = lease_seconds
        self._rng = rng or random.Random()
        self._reader = self.engine.execution_options(**{DEFERRED: True})
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._wakeups = _LocalWakeups()

    def close(self) -> None:
        """Close the store's database connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    @property
    def counters(self) -> dict[str, int]:
        """What this process saw: lease_lost, completed, failed, released, reaped."""
        with self._counts_lock:
            return {name: self._counts[name] for name in _COUNTERS}

    # ------------------------------------------------------------------ submit

    def submit(
        self,
        episode_key: str,
        fingerprint: str,
        payload: dict[str, Any],
        *,
        correlation_id: str | None = None,
        resource_keys: dict[str, str] | None = None,
        profiles: Mapping[str, str] | None = None,
        held_by_operator: bool = False,
    ) -> tuple[int, bool]:
        """The job for ``(episode_key, fingerprint)``: ``(job_id, created)``.

        A new job gets one step per stage: roots ``pending``, the others ``waiting`` for
        their predecessors. Idempotent, also for concurrent callers (threads or
        processes): the job insert is ``ON CONFLICT DO NOTHING``, then the winner's id is
        read. ``resource_keys`` maps a stage to the lock its step must hold to run;
        ``profiles`` a stage to the profile whose pools run it (default: the stage's own;
        see :func:`podmill.pipeline.dag.step_profiles`). ``held_by_operator`` (``podmill
        submit``) marks the job, new or existing, as the operator's: see
        :meth:`cancel_unless_wanted`.
        """
        resource_keys = resource_keys or {}
        profiles = {s.name: s.profile for s in STAGES} | dict(profiles or {})
        for name in [*resource_keys, *profiles]:
            stage(name)  # unknown stage names fail with the list of stages
        for name, profile in profiles.items():
            if profile not in PROFILES:
                raise ValueError(
                    f"stage {name}: unknown profile {profile!r}; profiles are {', '.join(PROFILES)}"
                )

        def work(tx: _Tx) -> tuple[int, bool]:
            job_id, created = self._submit(
                tx, episode_key, fingerprint, payload, correlation_id, resource_keys, profiles
            )
            if held_by_operator:
                tx.conn.execute(
                    update(JOBS).where(JOBS.c.id == job_id).values(held_by_operator=True)
                )
            return job_id, created

        return self._write(work)

    def _submit(
        self,
        tx: _Tx,
        episode_key: str,
        fingerprint: str,
        payload: dict[str, Any],
        correlation_id: str | None,
        resource_keys: dict[str, str],
        profiles: dict[str, str],
    ) -> tuple[int, bool]:
        now = self.clock.now()
        job_id = tx.conn.execute(
            self._insert(JOBS)
            .values(
                episode_key=episode_key,
                fingerprint=fingerprint,
                status="pending",
                created_at=now,
                payload=payload,
                correlation_id=correlation_id,
            )
            .on_conflict_do_nothing(index_elements=["episode_key", "fingerprint"])
            .returning(JOBS.c.id)
        ).scalar_one_or_none()
        if job_id is None:
            existing = tx.conn.execute(
                select(JOBS.c.id).where(
                    JOBS.c.episode_key == episode_key, JOBS.c.fingerprint == fingerprint
                )
            ).scalar_one()
            return existing, False
        tx.conn.execute(
            STEPS.insert(),
            [
                {
                    "job_id": job_id,
                    "stage": s.name,
                    "status": "waiting" if s.after else "pending",
                    "deps_remaining": len(s.after),
                    "enqueued_at": None if s.after else now,
                    "profile": profiles[s.name],
                    "max_attempts": s.retry.max_attempts,
                    "resource_key": resource_keys.get(s.name),
                    "attempts": 0,
                    "released_count": 0,
                }
                for s in STAGES
            ],
        )
        tx.ready.update(s.name for s in STAGES if not s.after)
        return job_id, True

    # ------------------------------------------------------------------- claim

    def claim(
        self,
        worker_id: str,
        stages: Collection[str],
        limit: int = 1,
        order: ClaimOrder = "fifo",
    ) -> list[ClaimedStep]:
        """Take up to ``limit`` ready steps of ``stages`` for ``worker_id`` (see engine/claim.py;
        what *ready* means is podmill.storage.ready). ``order="drain"`` prefers later stages.
        """
        [claimed] = self.claim_pools(worker_id, [(stages, limit, PROFILES)], order=order)
        return claimed

    def claim_pools(
        self,
        worker_id: str,
        requests: Collection[tuple[Collection[str], int, Collection[str]]],
        order: ClaimOrder = "fifo",
    ) -> list[list[ClaimedStep]]:
        """:meth:`claim` for several pools, ``(stages, limit, profiles)`` each (steps of
        those stages whose profile is one of ``profiles``), in one transaction.

        A worker fills all its pools' free slots with one commit; the answer lists the
        claimed steps per request, in order (see engine/claim.py).
        """
        return self._write(
            lambda tx: claim_for_pools(
                tx.conn,
                worker_id,
                list(requests),
                order=order,
                now=self.clock.now(),
                lease=self.lease,
            )
        )

    def has_ready(self, stages: Collection[str], profiles: Collection[str]) -> bool:
        """Whether some step of ``stages`` with one of ``profiles`` is ready
        (podmill.storage.ready) and could be claimed now; reads only, takes no lock. For
        a worker deciding whether to start more audio while LLM work waits (drain order)."""
        query = (
            select(STEPS.c.id)
            .join(JOBS, JOBS.c.id == STEPS.c.job_id)
            .where(
                ready(self.clock.now()),
                STEPS.c.stage.in_(sorted(stages)),
                STEPS.c.profile.in_(sorted(profiles)),
            )
            .limit(1)
        )
        with self._read() as conn:
            return conn.execute(query).first() is not None

    # ----------------------------------------------------- fenced step results

    def complete(self, step_id: int, lease_token: str, *, duration: float | None = None) -> bool:
        """Mark the step done and make ready the successors whose predecessors are all done.

        ``False`` (and nothing changed) if the lease was lost: the step was reaped,
        released or already completed.
        """
        return self.complete_many([(step_id, lease_token, duration)])[step_id]

    def complete_many(self, results: Collection[tuple[int, str, float | None]]) -> dict[int, bool]:
        """:meth:`complete` for several ``(step_id, lease_token, duration)`` in one transaction.

        Each step is fenced on its own lease; the answer maps every step id to whether its
        completion counted. Workers batch the completions that finish together, so the
        cost of a transaction is shared (engine/worker.py).
        """
        if not results:
            return {}
        done = self._write(lambda tx: self._complete(tx, results))
        answer = {step_id: step_id in done for step_id, _, _ in results}
        self._count("completed", len(done))
        self._count("lease_lost", len(answer) - len(done))
        return answer

    def _complete(self, tx: _Tx, results: Collection[tuple[int, str, float | None]]) -> set[int]:
        conn = tx.conn
        # Lock the jobs in id order (the module's lock order), all in one statement.
        conn.execute(_LOCK_JOBS_OF_STEPS, {"ids": [step_id for step_id, _, _ in results]}).all()
        now = self.clock.now()
        # fenced: a reaped worker cannot finish a step it no longer owns
        if self.dialect == "postgresql":
            # one statement for the whole batch, durations included
            rows = conn.execute(
                _PG_COMPLETE_FENCED,
                {
                    "ids": [step_id for step_id, _, _ in results],
                    "tokens": [token for _, token, _ in results],
                    "durations": [d for _, _, d in results],
                    "now": now,
                },
            ).all()
        else:
            rows = conn.execute(
                _COMPLETE_FENCED,
                {"fence": [(step_id, token) for step_id, token, _ in results], "now": now},
            ).all()
            finished = {row.id for row in rows}
            durations = [
                {"sid": i, "d": d} for i, _, d in results if d is not None and i in finished
            ]
            if durations:
                conn.execute(_SET_DURATION, durations)
        if not rows:
            return set()
        done = {row.id for row in rows}
        locked = [row.id for row in rows if row.resource_key is not None]
        if locked:
            conn.execute(_DROP_STEP_LOCKS, {"ids": locked})
        by_stage: dict[str, set[int]] = {}
        finished_jobs: set[int] = set()
        for row in rows:
            if successors(row.stage):
                by_stage.setdefault(row.stage, set()).add(row.job_id)
            else:
                finished_jobs.add(row.job_id)
        if self.dialect == "postgresql":
            self._pg_unblock_successors(tx, by_stage, now)
        else:
            # One statement per finished stage: a job appears once in each, and a join
            # whose two predecessors finish in this batch counts down twice.
            for done_stage in sorted(by_stage, key=STAGE_NAMES.index):
                self._unblock_successors(tx, by_stage[done_stage], done_stage, now)
        if finished_jobs:
            conn.execute(_FINISH_JOBS, {"job_ids": sorted(finished_jobs), "now": now})
        return done

    def _pg_unblock_successors(self, tx: _Tx, by_stage: dict[str, set[int]], now: datetime) -> None:
        # Postgres: one statement for every (job, successor) pair of the batch, counting
        # down by how many of the successor's predecessors finished in it (a join whose
        # two branches finish together counts down by 2 at once). The job rows are locked,
        # so concurrent completions of one job's steps run one after the other.
        counts: Counter[tuple[int, str]] = Counter()
        for done_stage, job_ids in by_stage.items():
            for job_id in job_ids:
                for following in successors(done_stage):
                    counts[(job_id, following)] += 1
        if not counts:
            return
        pairs = sorted(counts)
        ready = tx.conn.execute(
            _PG_UNBLOCK,
            {
                "jobs": [job_id for job_id, _ in pairs],
                "stages": [following for _, following in pairs],
                "counts": [counts[pair] for pair in pairs],
                "now": now,
            },
        ).all()
        tx.ready.update(row.stage for row in ready if row.status == "pending")

    def _unblock_successors(
        self, tx: _Tx, job_ids: Collection[int], done_stage: str, now: datetime
    ) -> None:
        # join: one statement decrements and flips to pending together, and the row lock
        # orders concurrent completions, so a join becomes pending exactly once. Only
        # `waiting` rows count down: a duplicate completion was fenced out above.
        ready = tx.conn.execute(
            _UNBLOCK,
            {"job_ids": sorted(job_ids), "following": list(successors(done_stage)), "now": now},
        ).all()
        tx.ready.update(row.stage for row in ready if row.status == "pending")

    def record_notes(self, step_id: int, lease_token: str, notes: Collection[str]) -> bool:
        """Keep ``notes`` (facts the stage recorded, e.g. a fallback it took) on the step,
        fenced like a completion: ``False`` and nothing written if the lease was lost.
        A worker records them just before it completes the step."""
        notes = [str(note) for note in notes]
        return self._write(
            lambda tx: (
                tx.conn.execute(
                    update(STEPS).where(*_fenced(step_id, lease_token)).values(notes=notes)
                ).rowcount
                == 1
            )
        )

    def fail(
        self,
        step_id: int,
        lease_token: str,
        error: str,
        *,
        retryable: bool = True,
        duration: float | None = None,
    ) -> FailOutcome:
        """Record a failed attempt: ``"retry"`` (pending again after a back-off),
        ``"dead"`` (no attempts left, not retryable, or the job was cancelled meanwhile:
        the step will not run again) or ``"lost"`` (the lease was lost; nothing changed).

        The back-off is the stage's ``retry.backoff`` (:class:`~podmill.retry.Backoff`,
        jitter drawn from the injected ``rng``) times ``retry_delay_scale``.
        """
        outcome = self._write(
            lambda tx: self._fail(tx, step_id, lease_token, error, retryable, duration)
        )
        self._count("lease_lost" if outcome == "lost" else "failed")
        return outcome

    def _fail(
        self,
        tx: _Tx,
        step_id: int,
        token: str,
        error: str,
        retryable: bool,
        duration: float | None,
    ) -> FailOutcome:
        job = self._lock_job_of_step(tx.conn, step_id)
        if job is None:
            return "lost"
        step = tx.conn.execute(
            select(
                STEPS.c.stage, STEPS.c.attempts, STEPS.c.max_attempts, STEPS.c.resource_key
            ).where(*_fenced(step_id, token))
        ).first()
        if step is None:
            return "lost"
        now = self.clock.now()
        values: dict[str, Any]
        if job.status == "cancelled":
            values = {"status": "cancelled", "finished_at": now}
        elif retryable and step.attempts < step.max_attempts:
            backoff = stage(step.stage).retry.backoff
            delay = backoff.delay(step.attempts, self._rng) * self.retry_delay_scale
            values = {
                "status": "pending",
                "not_before": now + timedelta(seconds=delay),
                "enqueued_at": now,
            }
        else:
            values = {"status": "dead", "finished_at": now}
        # fenced: a reaped worker cannot fail a step it no longer owns
        changed = tx.conn.execute(
            update(STEPS)
            .where(*_fenced(step_id, token))
            .values(
                error=error,
                duration_seconds=duration,
                lease_token=None,
                lease_expires_at=None,
                **values,
            )
        ).rowcount
        if changed == 0:
            return "lost"
        if step.resource_key is not None:
            _drop_step_lock(tx.conn, step_id)
        if values["status"] == "pending":
            tx.ready.add(step.stage)
            return "retry"
        if values["status"] == "dead":
            self._fail_job(tx.conn, job.id, f"{step.stage}: {error}", now)
        return "dead"

    def release(self, step_id: int, lease_token: str) -> bool:
        """Hand a running step back unfinished (shutdown): ``pending`` again, the attempt
        not counted. ``False`` (and nothing changed) if the lease was lost."""
        released = self._write(lambda tx: self._release(tx, step_id, lease_token))
        self._count("released" if released else "lease_lost")
        return released

    def _release(self, tx: _Tx, step_id: int, token: str) -> bool:
        job = self._lock_job_of_step(tx.conn, step_id)
        if job is None:
            return False
        now = self.clock.now()
        back_to = "cancelled" if job.status == "cancelled" else "pending"
        # fenced: a reaped worker cannot release a step it no longer owns
        released = tx.conn.execute(
            update(STEPS)
            .where(*_fenced(step_id, token))
            .values(
                status=back_to,
                attempts=STEPS.c.attempts - 1,  # a release is not an attempt
                released_count=STEPS.c.released_count + 1,
                worker_id=None,
                lease_token=None,
                lease_expires_at=None,
                enqueued_at=now,
            )
            .returning(STEPS.c.stage, STEPS.c.resource_key)
        ).first()
        if released is None:
            return False
        if released.resource_key is not None:
            _drop_step_lock(tx.conn, step_id)
        if back_to == "pending":
            tx.ready.add(released.stage)
        return True

    # --------------------------------------------------------- leases, workers

    def heartbeat(self, worker_id: str, step_ids: Collection[int] = ()) -> int:
        """The worker is alive: extend the leases (and resource locks) of ``step_ids`` to
        now + lease, those of them it still owns. Returns how many were extended.

        Only the steps the worker names: a step it lost track of (its thread died before
        recording the outcome) is left to expire and be reaped.
        """
        return self._write(lambda tx: self._heartbeat(tx, worker_id, step_ids))

    def _heartbeat(self, tx: _Tx, worker_id: str, step_ids: Collection[int]) -> int:
        now = self.clock.now()
        expires = now + self.lease
        extended: list[int] = []
        if step_ids:
            # Only steps this worker still owns: a reaped and re-claimed one has another.
            owned = (
                STEPS.c.id.in_(list(step_ids)),
                STEPS.c.worker_id == worker_id,
                STEPS.c.status == "running",
            )
            extended = list(
                tx.conn.execute(
                    update(STEPS)
                    .where(*owned)
                    .values(lease_expires_at=expires)
                    .returning(STEPS.c.id)
                ).scalars()
            )
        if extended:
            tx.conn.execute(
                update(LOCKS)
                .where(LOCKS.c.holder == worker_id, LOCKS.c.step_id.in_(extended))
                .values(expires_at=expires)
            )
        tx.conn.execute(
            update(WORKERS)
            .where(WORKERS.c.id == worker_id)
            .values(
                heartbeat_at=now,
                current_steps=sorted(extended),
                # declared dead while alive (a long pause): it is back
                status=case((WORKERS.c.status == "dead", "running"), else_=WORKERS.c.status),
            )
        )
        return len(extended)

    def reap(self, self_worker_id: str | None = None) -> list[int]:
        """Return steps whose lease expired to the queue; their silent workers are ``dead``.

        Never touches ``self_worker_id``'s own steps. A reaped step keeps its attempt count
        (the lost attempt counts): with no attempts left it is ``dead`` and its job
        ``failed``, so a step that kills its worker cannot loop forever. On Postgres only
        one reaper runs at a time; the others return ``[]`` at once.
        """
        reaped = self._write(lambda tx: self._reap(tx, self_worker_id))
        self._count("reaped", len(reaped))
        return reaped

    def _reap(self, tx: _Tx, self_worker_id: str | None) -> list[int]:
        conn = tx.conn
        if (
            self.dialect == "postgresql"
            and not conn.execute(
                select(func.pg_try_advisory_xact_lock(_PG_REAPER_LOCK))
            ).scalar_one()
        ):
            return []
        now = self.clock.now()
        expired = [STEPS.c.status == "running", STEPS.c.lease_expires_at < now]
        if self_worker_id is not None:
            expired.append(STEPS.c.worker_id.is_distinct_from(self_worker_id))
        rows = conn.execute(
            select(
                STEPS.c.id,
                STEPS.c.job_id,
                STEPS.c.stage,
                STEPS.c.worker_id,
                STEPS.c.attempts,
                STEPS.c.max_attempts,
                STEPS.c.resource_key,
                JOBS.c.status.label("job_status"),
            )
            .join(JOBS, JOBS.c.id == STEPS.c.job_id)
            .where(*expired)
            .order_by(STEPS.c.id)
            # skip what a completing transaction holds: reaped next time if still expired
            .with_for_update(of=[STEPS, JOBS], skip_locked=True)
        ).all()
        reaped: list[int] = []
        for row in rows:
            error = f"lease expired on attempt {row.attempts} (worker {row.worker_id})"
            values: dict[str, Any] = {"status": "pending", "enqueued_at": now}
            if row.job_status == "cancelled":
                values = {"status": "cancelled", "finished_at": now}
            elif row.attempts >= row.max_attempts:
                values = {"status": "dead", "finished_at": now}
            conn.execute(
                update(STEPS)
                .where(STEPS.c.id == row.id)
                .values(worker_id=None, lease_token=None, lease_expires_at=None, error=error)
                .values(**values)
            )
            if row.resource_key is not None:
                _drop_step_lock(conn, row.id)
            if values["status"] == "pending":
                tx.ready.add(row.stage)
            elif values["status"] == "dead":
                self._fail_job(conn, row.job_id, f"{row.stage}: {error}", now)
            reaped.append(row.id)
        conn.execute(
            update(WORKERS)
            .where(
                WORKERS.c.status.in_(("running", "stopping")),
                WORKERS.c.heartbeat_at < now - self.lease,
            )
            .values(status="dead")
        )
        return reaped

    def register_worker(self, worker_id: str, host: str, pid: int, pools: dict[str, int]) -> None:
        """Record a starting worker (``running``, heartbeat now); re-registering resets it."""
        now = self.clock.now()
        row = {
            "host": host,
            "pid": pid,
            "pools": dict(pools),
            "started_at": now,
            "heartbeat_at": now,
            "status": "running",
            "current_steps": [],
        }
        stmt = self._insert(WORKERS).values(id=worker_id, **row)
        self._write(
            lambda tx: tx.conn.execute(
                stmt.on_conflict_do_update(index_elements=[WORKERS.c.id], set_=row)
            )
        )

    def set_worker_status(self, worker_id: str, status: str) -> None:
        """Set a worker's status: running, stopping, stopped or dead."""
        if status not in WORKER_STATUSES:
            raise ValueError(
                f"unknown worker status {status!r}; expected one of {', '.join(WORKER_STATUSES)}"
            )
        self._write(
            lambda tx: tx.conn.execute(
                update(WORKERS).where(WORKERS.c.id == worker_id).values(status=status)
            )
        )

    def workers(self) -> list[dict[str, Any]]:
        """Every worker row, newest first."""
        with self._read() as conn:
            rows = conn.execute(select(WORKERS).order_by(WORKERS.c.started_at.desc())).all()
        return [dict(row._mapping) for row in rows]

    # ------------------------------------------------------- jobs, dead steps

    def cancel_job(self, job_id: int) -> bool:
        """Cancel a job: its pending and waiting steps are cancelled, running ones finish.
        ``False`` if there is no such job or it is already done or cancelled."""
        return self._write(lambda tx: self._cancel_job(tx, job_id))

    def cancel_unless_wanted(self, job_id: int, wanted: Callable[[Connection], bool]) -> bool:
        """Cancel a job nobody holds any more: not when the operator submitted it
        (``held_by_operator``) nor when ``wanted`` (run on the transaction's connection,
        e.g. "does a tenant still request it?") is true. The check and the cancel are
        one transaction with the job row locked, so a request that arrives meanwhile
        either is counted or finds the job cancelled (and revives it).
        ``True`` if it was cancelled."""

        def work(tx: _Tx) -> bool:
            job = self._lock_job(tx.conn, job_id)
            if job is None or wanted(tx.conn):
                return False
            held = tx.conn.execute(
                select(JOBS.c.held_by_operator).where(JOBS.c.id == job_id)
            ).scalar_one()
            return not held and self._cancel_job(tx, job_id)

        return self._write(work)

    def _cancel_job(self, tx: _Tx, job_id: int) -> bool:
        job = self._lock_job(tx.conn, job_id)
        if job is None or job.status in ("done", "cancelled"):
            return False
        now = self.clock.now()
        tx.conn.execute(
            update(JOBS).where(JOBS.c.id == job_id).values(status="cancelled", finished_at=now)
        )
        tx.conn.execute(
            update(STEPS)
            .where(STEPS.c.job_id == job_id, STEPS.c.status.in_(("pending", "waiting")))
            .values(status="cancelled", finished_at=now)
        )
        return True

    def retry_job(self, job_id: int) -> int:
        """Run a job's failed, dead and cancelled steps again, attempts reset to 0: each is
        ``pending`` if its predecessors are done, else ``waiting``. Returns how many."""
        return self._write(lambda tx: self._requeue_stages(tx, job_id, STAGE_NAMES, _RETRIED))

    def rerun_steps(self, job_id: int, stages: Collection[str]) -> int:
        """Run ``stages`` of a job again (damaged artifacts: docs/security.md), attempts
        reset: those done, failed, dead or cancelled become ``pending`` or ``waiting``;
        running, pending and waiting ones are left as they are, so a second call while
        the first re-run is under way changes nothing. The caller names the dependants
        too (``podmill.pipeline.repair``). Returns how many steps were queued."""
        wanted = set(stages)
        return self._write(lambda tx: self._requeue_stages(tx, job_id, wanted, _RERUN))

    def _requeue_stages(
        self, tx: _Tx, job_id: int, stages: Collection[str], again_from: frozenset[str]
    ) -> int:
        """Queue again those of ``stages`` whose step is in a status of ``again_from``."""
        job = self._lock_job(tx.conn, job_id)
        if job is None:
            return 0
        statuses = dict(
            tx.conn.execute(
                select(STEPS.c.stage, STEPS.c.status).where(STEPS.c.job_id == job_id)
            ).all()
        )
        again = [
            name for name in STAGE_NAMES if name in stages and statuses.get(name) in again_from
        ]
        return self._requeue(tx, job, statuses, again)

    def _requeue(self, tx: _Tx, job: Row[Any], statuses: dict[str, str], again: list[str]) -> int:
        if not again:
            return 0
        statuses = {**statuses, **dict.fromkeys(again, "waiting")}  # none of them is done now
        now = self.clock.now()
        job_id = job.id
        for name in again:
            not_done = sum(statuses.get(dep) != "done" for dep in stage(name).after)
            status = "waiting" if not_done else "pending"
            tx.conn.execute(
                update(STEPS)
                .where(STEPS.c.job_id == job_id, STEPS.c.stage == name)
                .values(
                    status=status,
                    deps_remaining=not_done,
                    enqueued_at=None if not_done else now,
                    **_FRESH_STEP,
                )
            )
            if status == "pending":
                tx.ready.add(name)
        self._revive_job(tx.conn, job)
        return len(again)

    def list_dead(self) -> list[dict[str, Any]]:
        """Steps that ran out of attempts (or failed for good), oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                select(
                    STEPS.c.id.label("step_id"),
                    STEPS.c.job_id,
                    JOBS.c.episode_key,
                    JOBS.c.fingerprint,
                    STEPS.c.stage,
                    STEPS.c.attempts,
                    STEPS.c.max_attempts,
                    STEPS.c.error,
                    STEPS.c.finished_at,
                    JOBS.c.correlation_id,
                )
                .join(JOBS, JOBS.c.id == STEPS.c.job_id)
                .where(STEPS.c.status == "dead")
                .order_by(STEPS.c.finished_at, STEPS.c.id)
            ).all()
        return [dict(row._mapping) for row in rows]

    def retry_dead(self, step_id: int) -> bool:
        """Queue a dead step again with attempts reset; its job is live again once it has
        no other dead step. ``False`` if the step is not dead."""
        return self._write(lambda tx: self._retry_dead(tx, step_id))

    def _retry_dead(self, tx: _Tx, step_id: int) -> bool:
        job = self._lock_job_of_step(tx.conn, step_id)
        if job is None:
            return False
        now = self.clock.now()
        stage_name = tx.conn.execute(
            update(STEPS)
            .where(STEPS.c.id == step_id, STEPS.c.status == "dead")
            .values(status="pending", enqueued_at=now, **_FRESH_STEP)
            .returning(STEPS.c.stage)
        ).scalar_one_or_none()
        if stage_name is None:
            return False
        tx.ready.add(stage_name)
        still_dead = tx.conn.execute(
            select(func.count())
            .select_from(STEPS)
            .where(STEPS.c.job_id == job.id, STEPS.c.status == "dead")
        ).scalar_one()
        if job.status == "failed" and still_dead == 0:
            self._revive_job(tx.conn, job)
        return True

    # ------------------------------------------------------------------ queues

    def pause(self, stage_name: str) -> None:
        """Stop claims of ``stage_name`` (running steps finish)."""
        stage(stage_name)
        now = self.clock.now()
        self._write(
            lambda tx: tx.conn.execute(
                self._insert(PAUSED)
                .values(stage=stage_name, paused_at=now)
                .on_conflict_do_nothing(index_elements=[PAUSED.c.stage])
            )
        )

    def resume(self, stage_name: str) -> None:
        """Let ``stage_name`` be claimed again."""
        stage(stage_name)

        def resume(tx: _Tx) -> None:
            tx.conn.execute(delete(PAUSED).where(PAUSED.c.stage == stage_name))
            tx.ready.add(stage_name)

        self._write(resume)

    def paused(self) -> set[str]:
        """The paused stages."""
        with self._read() as conn:
            return set(conn.execute(select(PAUSED.c.stage)).scalars())

    def queue_stats(self) -> dict[str, dict[str, int]]:
        """Per stage in graph order: the number of steps in each status, and ``paused``
        (1 if the stage is paused, else 0)."""
        with self._read() as conn:
            counts = conn.execute(
                select(STEPS.c.stage, STEPS.c.status, func.count()).group_by(
                    STEPS.c.stage, STEPS.c.status
                )
            ).all()
            paused = set(conn.execute(select(PAUSED.c.stage)).scalars())
        stats = {
            name: {**dict.fromkeys(STEP_STATUSES, 0), "paused": int(name in paused)}
            for name in STAGE_NAMES
        }
        for name, status, count in counts:
            if name in stats:
                stats[name][status] = count
        return stats

    # ------------------------------------------------------------------- views

    def job(self, job_id: int) -> dict[str, Any] | None:
        """A job and its steps by stage (see docs/engine-spec.md), or ``None``."""
        found = self._job_views(JOBS.c.id == job_id, limit=1)
        return found[0] if found else None

    def job_id(self, episode_key: str, fingerprint: str) -> int | None:
        """The id of the job of ``(episode_key, fingerprint)``, or ``None``."""
        with self._read() as conn:
            return conn.execute(
                select(JOBS.c.id).where(
                    JOBS.c.episode_key == episode_key, JOBS.c.fingerprint == fingerprint
                )
            ).scalar_one_or_none()

    def jobs(
        self, status: str | None = None, limit: int = 100, *, job_ids: Any = None
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` jobs, those with ``status`` only if given, and only those
        among ``job_ids`` (ids, or a select of ids) if given."""
        where = [JOBS.c.status == status] if status else []
        if job_ids is not None:
            where.append(JOBS.c.id.in_(job_ids))
        return self._job_views(and_(*where) if where else None, limit=limit)

    def _job_views(self, where: Any, *, limit: int) -> list[dict[str, Any]]:
        query = select(JOBS).order_by(JOBS.c.id.desc()).limit(limit)
        if where is not None:
            query = query.where(where)
        with self._read() as conn:
            jobs = conn.execute(query).all()
            steps = conn.execute(
                select(STEPS).where(STEPS.c.job_id.in_([j.id for j in jobs]))
            ).all()
            paused = set(conn.execute(select(PAUSED.c.stage)).scalars())
        by_job: dict[int, dict[str, Row[Any]]] = {}
        for step in steps:
            by_job.setdefault(step.job_id, {})[step.stage] = step
        return [_job_view(job, by_job.get(job.id, {}), paused) for job in jobs]

    # ---------------------------------------------------------- resource locks

    def acquire_lock(self, key: str, holder: str, ttl: float) -> bool:
        """Take lock ``key`` for ``ttl`` s unless another holder has it (expired locks are
        taken over; the holder may re-acquire its own)."""
        return self._write(
            lambda tx: take_lock(
                tx.conn, key, holder, now=self.clock.now(), ttl=timedelta(seconds=ttl)
            )
        )

    def refresh_lock(self, key: str, holder: str, ttl: float) -> bool:
        """Extend ``holder``'s lock ``key`` to now + ``ttl``; ``False`` if not its lock."""
        expires = self.clock.now() + timedelta(seconds=ttl)
        return self._write(
            lambda tx: (
                tx.conn.execute(
                    update(LOCKS)
                    .where(LOCKS.c.key == key, LOCKS.c.holder == holder)
                    .values(expires_at=expires)
                ).rowcount
                > 0
            )
        )

    def release_lock(self, key: str, holder: str) -> bool:
        """Drop ``holder``'s lock ``key``; ``False`` if it was not its lock."""
        return self._write(
            lambda tx: (
                tx.conn.execute(
                    delete(LOCKS).where(LOCKS.c.key == key, LOCKS.c.holder == holder)
                ).rowcount
                > 0
            )
        )

    def sweep_locks(self) -> int:
        """Delete expired locks; returns how many."""
        now = self.clock.now()
        return self._write(
            lambda tx: tx.conn.execute(delete(LOCKS).where(LOCKS.c.expires_at <= now)).rowcount
        )

    # ---------------------------------------------------------------- wake-ups

    @contextmanager
    def listen(self) -> Iterator[Waiter]:
        """A waiter woken when steps become pending: Postgres ``LISTEN podmill_steps``; on
        SQLite, wake-ups from this process's own writes, else it sleeps out the timeout.
        The database stays the truth: a wake-up only means "try a claim now"."""
        if self.dialect == "postgresql":
            waiter = _PostgresWaiter(libpq_dsn(self.url))
            try:
                yield waiter
            finally:
                waiter.close()
        else:
            with self._wakeups.waiter() as local:
                yield local

    # ----------------------------------------------------------------- helpers

    def _write(self, work: Callable[[_Tx], T]) -> T:
        """Run ``work`` in one write transaction; retried if Postgres picks it as a
        deadlock victim (it was rolled back whole)."""
        for attempt in range(1, _RETRIES_ON_DEADLOCK + 1):
            try:
                with self.engine.begin() as conn:
                    tx = _Tx(conn)
                    result = work(tx)
                    if tx.ready and self.dialect == "postgresql":
                        # "<schema>:<stage>,<stage>": installs sharing a database (one
                        # schema each) share the channel; waiters keep their own schema's.
                        stages = ":" + ",".join(sorted(tx.ready))
                        conn.execute(
                            select(func.pg_notify(CHANNEL, func.current_schema() + stages))
                        )
            except DBAPIError as exc:
                if attempt == _RETRIES_ON_DEADLOCK or not _is_deadlock(exc):
                    raise
                time.sleep(0.01 * attempt)
                continue
            if tx.ready:
                self._wakeups.wake()
            return result
        raise AssertionError("unreachable")

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A consistent snapshot for reads; on SQLite it does not take the write lock."""
        with self._reader.connect() as conn, conn.begin():
            yield conn

    def _insert(self, table: Any) -> Any:
        """The dialect's INSERT, which has ``on_conflict_do_*`` on both databases."""
        return dialect_insert(self.dialect, table)

    def _lock_job(self, conn: Connection, job_id: int | Any) -> Row[Any] | None:
        """Lock the job row (Postgres) before changing its steps: see the module doc."""
        return conn.execute(
            select(JOBS.c.id, JOBS.c.status, JOBS.c.started_at)
            .where(JOBS.c.id == job_id)
            .with_for_update()
        ).first()

    def _lock_job_of_step(self, conn: Connection, step_id: int) -> Row[Any] | None:
        job_of_step = select(STEPS.c.job_id).where(STEPS.c.id == step_id).scalar_subquery()
        return self._lock_job(conn, job_of_step)

    def _fail_job(self, conn: Connection, job_id: int, error: str, now: datetime) -> None:
        conn.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id, JOBS.c.status.in_(JOB_LIVE))
            .values(status="failed", error=error, finished_at=now)
        )

    def _revive_job(self, conn: Connection, job: Row[Any]) -> None:
        conn.execute(
            update(JOBS)
            .where(JOBS.c.id == job.id)
            .values(
                status="running" if job.started_at is not None else "pending",
                finished_at=None,
                error=None,
            )
        )

    def _count(self, name: str, n: int = 1) -> None:
        with self._counts_lock:
            self._counts[name] += n


# The completion's statements, built once with bound parameters (building a statement
# costs more than running it).
_LOCK_JOBS_OF_STEPS = (
    select(JOBS.c.id)
    .where(
        JOBS.c.id.in_(
            select(STEPS.c.job_id)
            .where(STEPS.c.id.in_(bindparam("ids", expanding=True)))
            .scalar_subquery()
        )
    )
    .order_by(JOBS.c.id)
    .with_for_update()
)
_COMPLETE_FENCED = (
    update(STEPS)
    .where(
        tuple_(STEPS.c.id, STEPS.c.lease_token).in_(bindparam("fence", expanding=True)),
        STEPS.c.status == "running",
    )
    .values(
        status="done",
        finished_at=bindparam("now", type_=STEPS.c.finished_at.type),
        lease_token=None,
        lease_expires_at=None,
    )
    .returning(STEPS.c.id, STEPS.c.job_id, STEPS.c.stage, STEPS.c.resource_key)
)
_SET_DURATION = (
    update(STEPS)
    .where(STEPS.c.id == bindparam("sid", type_=Integer))
    .values(duration_seconds=bindparam("d", type_=Float))
)
# Postgres: the batch's fenced completions (with their durations) in one statement, and
# the successors' count-downs in another: ``unnest`` turns parallel arrays into rows.
_PG_COMPLETE_FENCED = text(
    """UPDATE steps SET status = 'done', finished_at = :now, lease_token = NULL,
    lease_expires_at = NULL, duration_seconds = coalesce(d.duration, steps.duration_seconds)
FROM unnest(CAST(:ids AS integer[]), CAST(:tokens AS text[]), CAST(:durations AS float8[]))
    AS d(id, token, duration)
WHERE steps.id = d.id AND steps.lease_token = d.token AND steps.status = 'running'
RETURNING steps.id, steps.job_id, steps.stage, steps.resource_key"""
).bindparams(bindparam("now", type_=STEPS.c.finished_at.type))
_PG_UNBLOCK = text(
    """UPDATE steps SET deps_remaining = steps.deps_remaining - d.n,
    status = CASE WHEN steps.deps_remaining = d.n THEN 'pending' ELSE steps.status END,
    enqueued_at = CASE WHEN steps.deps_remaining = d.n THEN :now ELSE steps.enqueued_at END
FROM unnest(CAST(:jobs AS integer[]), CAST(:stages AS text[]), CAST(:counts AS integer[]))
    AS d(job_id, stage, n)
WHERE steps.job_id = d.job_id AND steps.stage = d.stage
    AND steps.status = 'waiting' AND steps.deps_remaining >= d.n
RETURNING steps.stage, steps.status"""
).bindparams(bindparam("now", type_=STEPS.c.enqueued_at.type))
_DROP_STEP_LOCKS = delete(LOCKS).where(LOCKS.c.step_id.in_(bindparam("ids", expanding=True)))
_LAST_DEP = STEPS.c.deps_remaining == 1
_UNBLOCK = (
    update(STEPS)
    .where(
        STEPS.c.job_id.in_(bindparam("job_ids", expanding=True)),
        STEPS.c.stage.in_(bindparam("following", expanding=True)),
        STEPS.c.status == "waiting",
        STEPS.c.deps_remaining > 0,
    )
    .values(
        deps_remaining=STEPS.c.deps_remaining - 1,
        status=case((_LAST_DEP, "pending"), else_=STEPS.c.status),
        enqueued_at=case(
            (_LAST_DEP, bindparam("now", type_=STEPS.c.enqueued_at.type)),
            else_=STEPS.c.enqueued_at,
        ),
    )
    .returning(STEPS.c.stage, STEPS.c.status)
)
_FINISH_JOBS = (
    update(JOBS)
    .where(
        JOBS.c.id.in_(bindparam("job_ids", expanding=True)),
        JOBS.c.status.in_(JOB_LIVE),
        ~select(STEPS.c.id).where(STEPS.c.job_id == JOBS.c.id, STEPS.c.status != "done").exists(),
    )
    .values(status="done", finished_at=bindparam("now", type_=JOBS.c.finished_at.type))
)


# The steps a retry runs again: those that ended without their outputs. A re-submit of a
# revived job (podmill.engine.submit.REVIVED) and an operator's retry both go through
# retry_job; a re-run for damaged artifacts (rerun_steps) takes done steps too.
_RETRIED = frozenset({"failed", "dead", "cancelled"})
_RERUN = _RETRIED | {"done"}

# Reset when a step is queued afresh by an operator (retry_job, retry_dead).
_FRESH_STEP: dict[str, Any] = {
    "attempts": 0,
    "not_before": None,
    "worker_id": None,
    "lease_token": None,
    "lease_expires_at": None,
    "started_at": None,
    "finished_at": None,
    "error": None,
}


def _fenced(step_id: int, token: str) -> tuple[Any, ...]:
    """The fence of every terminal write: this step, this lease, still running."""
    return (STEPS.c.id == step_id, STEPS.c.lease_token == token, STEPS.c.status == "running")


def _drop_step_lock(conn: Connection, step_id: int) -> None:
    conn.execute(delete(LOCKS).where(LOCKS.c.step_id == step_id))


def _is_deadlock(exc: DBAPIError) -> bool:
    # 40P01 deadlock_detected, 40001 serialization_failure
    return getattr(exc.orig, "sqlstate", None) in ("40P01", "40001")


# A step of a paused stage in one of these is held back by the pause: nothing claims it
# until the stage is resumed (a running one finishes; a failed one waits for its retry).
_HELD_BY_PAUSE = frozenset({"waiting", "pending", "failed"})


def _job_view(job: Row[Any], steps: dict[str, Row[Any]], paused: set[str]) -> dict[str, Any]:
    live = job.status in JOB_LIVE
    held = {
        name
        for name, step in steps.items()
        if live and name in paused and step.status in _HELD_BY_PAUSE
    }
    return {
        "id": job.id,
        "episode_key": job.episode_key,
        "fingerprint": job.fingerprint,
        "status": job.status,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "error": job.error,
        "correlation_id": job.correlation_id,
        # the paused stages this live job still has to run: it waits for `queues resume`
        "paused": [name for name in STAGE_NAMES if name in held],
        "steps": {
            name: {
                "status": step.status,
                "attempts": step.attempts,
                "max_attempts": step.max_attempts,
                "worker_id": step.worker_id,
                "lease_expires_at": step.lease_expires_at,
                "started_at": step.started_at,
                "finished_at": step.finished_at,
                "duration_seconds": step.duration_seconds,
                "error": step.error,
                "not_before": step.not_before,
                "notes": list(step.notes or []),
                "paused": name in held,
            }
            for name in STAGE_NAMES
            if (step := steps.get(name)) is not None
        },
    }


# ------------------------------------------------------------------- wake-ups


def libpq_dsn(url: str) -> str:
    """The libpq connection string for a SQLAlchemy Postgres URL (query options kept)."""
    from psycopg.conninfo import make_conninfo

    parsed = make_url(url)
    params: dict[str, Any] = {
        "host": parsed.host,
        "port": parsed.port,
        "dbname": parsed.database,
        "user": parsed.username,
        "password": parsed.password,
    }
    for key, value in parsed.query.items():
        params[key] = value if isinstance(value, str) else value[-1]
    return make_conninfo(**{k: v for k, v in params.items() if v is not None})


class _PostgresWaiter:
    """``LISTEN podmill_steps`` on a connection of its own; wakes for its schema only."""

    def __init__(self, dsn: str) -> None:
        import psycopg
        from psycopg import sql

        self._conn = psycopg.connect(dsn, autocommit=True)
        row = self._conn.execute("SELECT current_schema()").fetchone()
        self._prefix = f"{row[0] if row else ''}:"
        self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        self.ready_stages: set[str] = set()

    def wait(self, timeout: float) -> bool:
        """``True`` when steps of this schema became pending; their stages are then in
        :attr:`ready_stages`."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            # Consumed whole: a half-read generator would keep the connection's lock.
            notes = list(self._conn.notifies(timeout=remaining, stop_after=1))
            ours = [n.payload for n in notes if n.payload.startswith(self._prefix)]
            if ours:
                # one wake-up for a burst
                ours += [
                    n.payload
                    for n in self._conn.notifies(timeout=0)
                    if n.payload.startswith(self._prefix)
                ]
                self.ready_stages = {
                    stage
                    for payload in ours
                    for stage in payload[len(self._prefix) :].split(",")
                    if stage
                }
                return True
        return False

    def close(self) -> None:
        self._conn.close()


class _LocalWakeups:
    """Wakes this process's waiters after its own writes made steps pending (SQLite)."""

    def __init__(self) -> None:
        self._events: set[threading.Event] = set()
        self._lock = threading.Lock()

    def wake(self) -> None:
        with self._lock:
            for event in self._events:
                event.set()

    @contextmanager
    def waiter(self) -> Iterator[_LocalWaiter]:
        event = threading.Event()
        with self._lock:
            self._events.add(event)
        try:
            yield _LocalWaiter(event)
        finally:
            with self._lock:
                self._events.discard(event)


class _LocalWaiter:
    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def wait(self, timeout: float) -> bool:
        woke = self._event.wait(timeout)
        self._event.clear()
        return woke
