"""The join: when summarize_l1 and summarize_l2 of a job complete at the same instant on two
workers, synthesize becomes pending exactly once, for every one of many jobs."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select, update

from podmill.engine import ClaimedStep, ManualClock, Store
from podmill.engine.claim import STEPS
from podmill.engine.store import CHANNEL, libpq_dsn

JOBS = 1_000
PAYLOAD = {"episode": {}, "settings": {}}
BEFORE_THE_JOIN = ("fetch", "transcribe", "segment", "decide", "subsegment")


def _prepare(store: Store) -> tuple[list[ClaimedStep], list[ClaimedStep]]:
    """JOBS jobs, each with summarize_l1 running on worker A and summarize_l2 on worker B."""
    for i in range(JOBS):
        store.submit(f"{i:032d}", "f" * 32, PAYLOAD)
    # Fast-forward in bulk to just before the join: the stages up to subsegment done and
    # both summaries ready. (test_store walks these transitions one by one.)
    with store.engine.begin() as conn:
        conn.execute(
            update(STEPS)
            .where(STEPS.c.stage.in_(BEFORE_THE_JOIN))
            .values(status="done", attempts=1)
        )
        conn.execute(
            update(STEPS)
            .where(STEPS.c.stage.in_(("summarize_l1", "summarize_l2")))
            .values(status="pending", deps_remaining=0, enqueued_at=store.clock.now())
        )
    l1 = store.claim("worker-a", ["summarize_l1"], limit=JOBS)
    l2 = store.claim("worker-b", ["summarize_l2"], limit=JOBS)
    assert len(l1) == len(l2) == JOBS
    return sorted(l1, key=lambda c: c.job_id), sorted(l2, key=lambda c: c.job_id)


@contextmanager
def _notifications(store: Store) -> Iterator[Counter[str]]:
    """Counts NOTIFY payloads (the stages made pending) while the block runs (Postgres)."""
    seen: Counter[str] = Counter()
    if store.dialect != "postgresql":
        yield seen
        return
    import psycopg

    with psycopg.connect(libpq_dsn(store.url), autocommit=True) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
        conn.execute(f"LISTEN {CHANNEL}")
        yield seen
        for note in conn.notifies(timeout=1.0):
            prefix, _, stages = note.payload.partition(":")
            if prefix == schema:  # other tests' schemas share the channel
                seen.update(stages.split(","))


def test_synthesize_becomes_pending_exactly_once_per_job(db_url: str, clock: ManualClock) -> None:
    with (
        Store(db_url, clock=clock) as a,
        Store(db_url, clock=clock) as b,
    ):
        l1, l2 = _prepare(a)
        assert [c.job_id for c in l1] == [c.job_id for c in l2]
        barrier = threading.Barrier(2, timeout=30)
        results: dict[str, list[bool]] = {"a": [], "b": []}
        errors: list[BaseException] = []

        def finish(name: str, store: Store, steps: list[ClaimedStep]) -> None:
            try:
                for c in steps:
                    barrier.wait()  # both completions of a job start together
                    results[name].append(store.complete(c.step_id, c.lease_token))
            except BaseException as exc:
                errors.append(exc)
                barrier.abort()

        with _notifications(a) as notified:
            threads = [
                threading.Thread(target=finish, args=("a", a, l1)),
                threading.Thread(target=finish, args=("b", b, l2)),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        assert errors == []
        assert results == {"a": [True] * JOBS, "b": [True] * JOBS}
        with a.engine.connect() as conn:
            joins = conn.execute(
                select(STEPS.c.job_id, STEPS.c.status, STEPS.c.deps_remaining).where(
                    STEPS.c.stage == "synthesize"
                )
            ).all()
        assert len(joins) == JOBS
        assert {(row.status, row.deps_remaining) for row in joins} == {("pending", 0)}
        if a.dialect == "postgresql":  # one wake-up per join made ready, none twice
            assert notified["synthesize"] == JOBS

        claimed = a.claim("worker-c", ["synthesize"], limit=2 * JOBS)
        assert sorted(c.job_id for c in claimed) == [c.job_id for c in l1]
        assert b.claim("worker-d", ["synthesize"], limit=2 * JOBS) == []
