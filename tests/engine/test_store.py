"""The engine's store on real SQLite and Postgres: every step transition, fenced writes,
leases, locks, pauses, and concurrent submits from threads and processes."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from podmill.engine import ClaimedStep, ManualClock, Store
from podmill.engine.claim import JOBS, STEPS
from podmill.engine.store import CHANNEL
from podmill.pipeline.dag import STAGE_NAMES, STAGES, stage
from podmill.storage.db import downgrade, upgrade

LEASE = 30.0  # the store fixture's lease_seconds
EPISODE = "e" * 32
PRINT = "f" * 32
PAYLOAD = {"episode": {"episode_key": EPISODE, "title": "One"}, "settings": {"asr": "tiny"}}


def _submit(store: Store, key: str = EPISODE, **kwargs: Any) -> int:
    job_id, created = store.submit(key, PRINT, PAYLOAD, **kwargs)
    assert created
    return job_id


def _one(store: Store, worker: str, stage_name: str) -> ClaimedStep:
    [claimed] = store.claim(worker, [stage_name])
    assert claimed.stage == stage_name
    return claimed


def _run_through(store: Store, stages: Iterable[str], worker: str = "w1") -> None:
    """Claim and complete every ready step of each stage, in the order given."""
    for name in stages:
        claimed = store.claim(worker, [name], limit=10_000)
        assert claimed, f"nothing to claim for {name}"
        for c in claimed:
            assert store.complete(c.step_id, c.lease_token)


def _statuses(store: Store, job_id: int) -> dict[str, str]:
    job = store.job(job_id)
    assert job is not None
    return {name: step["status"] for name, step in job["steps"].items()}


def _step(store: Store, job_id: int, stage_name: str) -> dict[str, Any]:
    job = store.job(job_id)
    assert job is not None
    return job["steps"][stage_name]


def _deps(store: Store, job_id: int) -> dict[str, int]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(STEPS.c.stage, STEPS.c.deps_remaining).where(STEPS.c.job_id == job_id)
        ).all()
    return dict(rows)


# --- submit -----------------------------------------------------------------------


def test_submit_creates_roots_pending_and_the_rest_waiting(store: Store) -> None:
    job_id = _submit(store, correlation_id="req-1", resource_keys={"fetch": "host:a"})

    job = store.job(job_id)
    assert job is not None
    assert job["status"] == "pending"
    assert job["correlation_id"] == "req-1"
    assert list(job["steps"]) == list(STAGE_NAMES)
    assert _statuses(store, job_id) == {
        s.name: ("waiting" if s.after else "pending") for s in STAGES
    }
    assert _deps(store, job_id) == {s.name: len(s.after) for s in STAGES}
    assert _deps(store, job_id)["synthesize"] == 2
    with store.engine.connect() as conn:
        rows = {
            r.stage: r
            for r in conn.execute(
                select(
                    STEPS.c.stage,
                    STEPS.c.profile,
                    STEPS.c.max_attempts,
                    STEPS.c.resource_key,
                    STEPS.c.enqueued_at,
                ).where(STEPS.c.job_id == job_id)
            )
        }
        payload = conn.execute(select(JOBS.c.payload)).scalar_one()
    assert payload == PAYLOAD
    for s in STAGES:
        assert rows[s.name].profile == s.profile
        assert rows[s.name].max_attempts == s.retry.max_attempts
        assert (rows[s.name].enqueued_at is None) == bool(s.after)
    assert rows["fetch"].resource_key == "host:a"
    assert rows["transcribe"].resource_key is None
    assert rows["fetch"].enqueued_at == store.clock.now()


def test_duplicate_submit_returns_the_same_job(store: Store) -> None:
    job_id = _submit(store)

    assert store.submit(EPISODE, PRINT, {"other": True}) == (job_id, False)
    assert store.submit(EPISODE, "g" * 32, PAYLOAD)[1] is True
    assert len(store.jobs()) == 2


def test_submit_rejects_resource_keys_for_unknown_stages(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown stage 'fetchh'"):
        store.submit(EPISODE, PRINT, PAYLOAD, resource_keys={"fetchh": "x"})
    assert store.jobs() == []


def test_100_concurrent_submits_from_threads_make_one_job(store: Store) -> None:
    callers = 100
    barrier = threading.Barrier(callers)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def submit() -> None:
        barrier.wait()
        try:
            results.append(store.submit(EPISODE, PRINT, PAYLOAD))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(results) == callers
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(JOBS)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(STEPS)).scalar_one() == len(STAGES)


def _submit_from_process(url: str, barrier: Any, results: Any) -> None:
    with Store(url) as store:
        barrier.wait()
        results.put(store.submit(EPISODE, PRINT, PAYLOAD))


def test_concurrent_submits_from_processes_make_one_job(db_url: str, store: Store) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_submit_from_process, args=(db_url, barrier, results)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    assert len({job_id for job_id, _ in got}) == 1
    assert sorted(created for _, created in got) == [False, False, False, True]
    assert len(store.jobs()) == 1


# --- claim ------------------------------------------------------------------------


def test_claim_stamps_worker_lease_and_attempt(store: Store, clock: ManualClock) -> None:
    job_id = _submit(store, correlation_id="req-7")

    [claimed] = store.claim("w1", STAGE_NAMES, limit=5)

    assert claimed.stage == "fetch"
    assert claimed.job_id == job_id
    assert claimed.attempt == 1
    assert len(claimed.lease_token) == 32
    assert claimed.payload == PAYLOAD
    assert (claimed.episode_key, claimed.fingerprint) == (EPISODE, PRINT)
    assert claimed.correlation_id == "req-7"
    with store.engine.connect() as conn:
        row = conn.execute(select(STEPS).where(STEPS.c.id == claimed.step_id)).one()
    assert row.status == "running"
    assert row.worker_id == "w1"
    assert row.lease_token == claimed.lease_token
    assert row.lease_expires_at == clock.now() + timedelta(seconds=LEASE)
    assert row.started_at == clock.now()
    job = store.job(job_id)
    assert job is not None and job["status"] == "running"
    assert job["steps"]["fetch"]["worker_id"] == "w1"
    assert store.claim("w2", STAGE_NAMES) == []  # nothing else is ready


def test_claim_respects_the_stage_filter_and_the_limit(store: Store) -> None:
    for i in range(5):
        _submit(store, key=f"{i}" * 32)

    assert store.claim("w1", ["transcribe", "publish"], limit=10) == []
    assert store.claim("w1", [], limit=10) == []
    first = store.claim("w1", ["fetch"], limit=2)
    rest = store.claim("w2", ["fetch"], limit=10)

    assert len(first) == 2 and len(rest) == 3
    assert len({c.step_id for c in first + rest}) == 5
    assert [c.job_id for c in first + rest] == sorted(c.job_id for c in first + rest)  # fifo


def test_claim_skips_paused_stages_until_resumed(store: Store) -> None:
    _submit(store)
    store.pause("fetch")
    store.pause("fetch")  # twice is fine

    assert store.paused() == {"fetch"}
    assert store.claim("w1", ["fetch"]) == []
    assert store.queue_stats()["fetch"]["paused"] == 1

    store.resume("fetch")
    assert store.paused() == set()
    assert len(store.claim("w1", ["fetch"])) == 1
    with pytest.raises(ValueError, match="unknown stage"):
        store.pause("nope")


def test_claim_skips_cancelled_jobs(store: Store) -> None:
    cancelled = _submit(store, key="c" * 32)
    kept = _submit(store, key="k" * 32)
    assert store.cancel_job(cancelled)

    claimed = store.claim("w1", ["fetch"], limit=10)

    assert [c.job_id for c in claimed] == [kept]


def test_resource_lock_held_by_another_blocks_the_claim_until_it_expires(
    store: Store, clock: ManualClock
) -> None:
    job_id = _submit(store, resource_keys={"fetch": "host:example.org"})
    assert store.acquire_lock("host:example.org", "w9", ttl=60)

    assert store.claim("w1", ["fetch"]) == []

    clock.advance(61)  # the lock expired: the claim takes it over
    [claimed] = store.claim("w1", ["fetch"])
    assert claimed.job_id == job_id
    assert not store.acquire_lock("host:example.org", "w9", ttl=60)  # now held by the step
    assert store.complete(claimed.step_id, claimed.lease_token)
    assert store.acquire_lock("host:example.org", "w9", ttl=60)  # released on completion


def test_one_resource_runs_one_step_at_a_time(store: Store) -> None:
    a = _submit(store, key="a" * 32, resource_keys={"fetch": "host:x"})
    b = _submit(store, key="b" * 32, resource_keys={"fetch": "host:x"})

    [first] = store.claim("w1", ["fetch"], limit=10)
    assert first.job_id == a
    assert store.claim("w1", ["fetch"], limit=10) == []  # even for the same worker
    assert store.fail(first.step_id, first.lease_token, "boom", retryable=False) == "dead"
    [second] = store.claim("w2", ["fetch"], limit=10)
    assert second.job_id == b


def test_drain_order_prefers_later_stages(store: Store) -> None:
    old = _submit(store, key="o" * 32)
    _run_through(store, ["fetch", "transcribe"])
    new = _submit(store, key="n" * 32)

    assert [c.job_id for c in store.claim("w1", STAGE_NAMES, order="drain")] == [old]
    fifo = store.claim("w2", STAGE_NAMES, limit=2, order="fifo")
    assert [c.job_id for c in fifo] == [new]
    with pytest.raises(ValueError, match="unknown claim order"):
        store.claim("w1", STAGE_NAMES, order="lifo")  # type: ignore[arg-type]


def test_llm_jobs_tree_steps_go_to_the_llm_pool_and_the_others_to_cpu(store: Store) -> None:
    from podmill.pipeline.dag import step_profiles

    llm_job = _submit(store, "l" * 32, profiles=step_profiles("llm"))
    cpu_job = _submit(store, "c" * 32, profiles=step_profiles("extractive"))
    _run_through(store, ["fetch", "transcribe"])
    tree = [s.name for s in STAGES if s.tree]
    cpu_pool = (tree, 10, ["cpu"])
    llm_pool = (tree, 10, ["llm"])

    on_cpu, on_llm = store.claim_pools("w1", [cpu_pool, llm_pool])

    assert [(c.job_id, c.stage) for c in on_cpu] == [(cpu_job, "segment")]
    assert [(c.job_id, c.stage) for c in on_llm] == [(llm_job, "segment")]
    # a pool named by stage takes that stage's steps whatever their profile
    assert store.claim("w2", ["segment"]) == []  # both taken above
    with store.engine.connect() as conn:
        profiles = dict(
            conn.execute(
                select(STEPS.c.stage, STEPS.c.profile).where(STEPS.c.job_id == llm_job)
            ).all()
        )
    assert profiles["transcribe"] == "asr"
    assert {profiles[name] for name in tree} == {"llm"}
    assert profiles["index"] == "cpu"


def test_submit_refuses_an_unknown_profile(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown profile 'gpu'"):
        store.submit(EPISODE, PRINT, PAYLOAD, profiles={"segment": "gpu"})


# --- complete ---------------------------------------------------------------------


def test_complete_makes_successors_pending(store: Store, clock: ManualClock) -> None:
    job_id = _submit(store)
    _run_through(store, ["fetch", "transcribe"])
    segment = _one(store, "w1", "segment")
    clock.advance(5)

    assert store.complete(segment.step_id, segment.lease_token, duration=4.5)

    statuses = _statuses(store, job_id)
    assert statuses["decide"] == statuses["summarize_l1"] == "pending"
    assert statuses["subsegment"] == statuses["synthesize"] == "waiting"
    assert _deps(store, job_id)["synthesize"] == 2  # neither summary is done yet
    seg = _step(store, job_id, "segment")
    assert seg["status"] == "done"
    assert seg["duration_seconds"] == 4.5
    assert seg["finished_at"] == clock.now()


def test_walking_the_whole_graph_finishes_the_job(store: Store) -> None:
    job_id = _submit(store)
    order: list[str] = []
    while claimed := store.claim("w1", STAGE_NAMES, limit=10):
        for c in claimed:
            order.append(c.stage)
            assert store.complete(c.step_id, c.lease_token)

    assert sorted(order) == sorted(STAGE_NAMES)
    for s in STAGES:  # every stage ran after its predecessors
        assert all(order.index(dep) < order.index(s.name) for dep in s.after)
    job = store.job(job_id)
    assert job is not None
    assert job["status"] == "done"
    assert job["finished_at"] == store.clock.now()
    assert set(_statuses(store, job_id).values()) == {"done"}
    assert store.counters["completed"] == len(STAGES)


def test_a_reaped_worker_cannot_complete_fail_or_release(store: Store, clock: ManualClock) -> None:
    job_id = _submit(store)
    stale = _one(store, "w1", "fetch")
    clock.advance(LEASE + 1)
    assert store.reap(self_worker_id="w2") == [stale.step_id]
    fresh = _one(store, "w2", "fetch")
    assert fresh.step_id == stale.step_id and fresh.attempt == 2

    assert store.complete(stale.step_id, stale.lease_token) is False
    assert store.fail(stale.step_id, stale.lease_token, "late") == "lost"
    assert store.release(stale.step_id, stale.lease_token) is False

    step = _step(store, job_id, "fetch")
    assert (step["status"], step["worker_id"], step["attempts"]) == ("running", "w2", 2)
    assert _statuses(store, job_id)["transcribe"] == "waiting"
    assert store.counters["lease_lost"] == 3
    assert store.complete(fresh.step_id, fresh.lease_token)  # the owner's result counts
    assert _statuses(store, job_id)["transcribe"] == "pending"


def test_a_duplicate_complete_counts_once(store: Store) -> None:
    job_id = _submit(store)
    _run_through(store, ["fetch", "transcribe", "segment"])
    l1 = _one(store, "w1", "summarize_l1")

    assert store.complete(l1.step_id, l1.lease_token)
    assert store.complete(l1.step_id, l1.lease_token) is False

    assert _deps(store, job_id)["synthesize"] == 1
    assert _statuses(store, job_id)["synthesize"] == "waiting"
    assert store.complete(123_456, "nope") is False  # no such step


def test_complete_many_fences_each_step_and_joins_once_when_both_branches_share_a_batch(
    store: Store, clock: ManualClock
) -> None:
    jobs = [_submit(store, key=f"ep-{i}") for i in range(3)]
    _run_through(store, ["fetch", "transcribe", "segment", "decide", "subsegment"])
    l1 = store.claim("w1", ["summarize_l1"], limit=10)
    l2 = store.claim("w1", ["summarize_l2"], limit=10)
    assert len(l1) == len(l2) == 3
    stale = l1[2]
    clock.advance(LEASE + 1)
    assert sorted(store.reap(self_worker_id="w2")) == sorted(c.step_id for c in [*l1, *l2])
    # everything expired and was reaped: take them again; one old lease stands in for
    # its step in the batch, so that completion must be refused
    again = {c.step_id: c for c in store.claim("w2", ["summarize_l1", "summarize_l2"], limit=10)}
    batch = [(c.step_id, c.lease_token, 1.5) for c in again.values() if c.step_id != stale.step_id]
    batch.append((stale.step_id, stale.lease_token, 9.9))
    batch.append((123_456, "nope", None))  # no such step

    answer = store.complete_many(batch)

    assert answer[stale.step_id] is False and answer[123_456] is False
    assert all(answer[step_id] for step_id in again if step_id != stale.step_id)
    for job_id in jobs:  # both predecessors in one transaction: counted down twice
        expected = (1, "waiting") if job_id == stale.job_id else (0, "pending")
        assert (_deps(store, job_id)["synthesize"], _statuses(store, job_id)["synthesize"]) == (
            expected
        )
    assert _step(store, jobs[0], "summarize_l2")["duration_seconds"] == 1.5
    assert _step(store, stale.job_id, "summarize_l1")["status"] == "running"
    fresh = again[stale.step_id]
    assert store.complete_many([(fresh.step_id, fresh.lease_token, None)]) == {fresh.step_id: True}
    assert len(store.claim("w3", ["synthesize"], limit=10)) == 3
    assert store.counters["lease_lost"] == 2


def test_notes_are_kept_with_the_step_and_fenced_like_a_completion(store: Store) -> None:
    from podmill.engine.execute import run_claimed

    job_id = _submit(store)
    fetch = _one(store, "w1", "fetch")

    outcome = run_claimed(store, fetch, run_step=lambda step: ["fell back to ASR: 404"])

    assert outcome == "done"
    assert _step(store, job_id, "fetch")["notes"] == ["fell back to ASR: 404"]
    assert _step(store, job_id, "transcribe")["notes"] == []
    # a worker that lost its lease keeps no notes
    transcribe = _one(store, "w1", "transcribe")
    assert store.release(transcribe.step_id, transcribe.lease_token)
    assert not store.record_notes(transcribe.step_id, transcribe.lease_token, ["late"])
    assert _step(store, job_id, "transcribe")["notes"] == []


def test_complete_many_finishes_jobs_whose_last_step_is_in_the_batch(store: Store) -> None:
    jobs = [_submit(store, key=f"ep-{i}") for i in range(4)]
    _run_through(store, STAGE_NAMES[:-1])
    last = store.claim("w1", [STAGE_NAMES[-1]], limit=10)
    done = last[:3]

    assert all(store.complete_many([(c.step_id, c.lease_token, None) for c in done]).values())

    finished = {c.job_id for c in done}
    for job_id in jobs:
        job = store.job(job_id)
        assert job is not None
        assert job["status"] == ("done" if job_id in finished else "running")


def test_completions_batch_concurrent_steps_and_answer_each_one(store: Store) -> None:
    from podmill.engine.worker import Completions

    for i in range(40):
        _submit(store, key=f"ep-{i}")
    claimed = store.claim("w1", ["fetch"], limit=100)
    stale = claimed[0]
    assert store.release(stale.step_id, stale.lease_token)  # its completion must be refused
    all_queued = threading.Event()
    first_taken = threading.Event()
    first_batch: list[Any] = []

    class HeldStore:
        """The first write waits until every other completion is queued behind it."""

        def __init__(self) -> None:
            self.calls = 0

        def complete_many(self, results: Any) -> dict[int, bool]:
            self.calls += 1
            if self.calls == 1:
                first_batch.extend(results)
                first_taken.set()
                assert all_queued.wait(60)
            return store.complete_many(results)

        def complete(self, step_id: int, token: str, duration: float | None = None) -> bool:
            return store.complete(step_id, token, duration=duration)

    completions = Completions(HeldStore())
    completions.start()
    answers: dict[int, bool] = {}

    def finish(c: ClaimedStep) -> None:
        answers[c.step_id] = completions.complete(c.step_id, c.lease_token, duration=0.1)

    threads = [threading.Thread(target=finish, args=(c,)) for c in claimed]
    for t in threads:
        t.start()
    assert first_taken.wait(30)
    deadline = time.monotonic() + 30
    while (
        len(first_batch) + completions._queue.qsize() < len(claimed) and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    all_queued.set()
    for t in threads:
        t.join()
    completions.close()

    assert answers[stale.step_id] is False
    assert sum(answers.values()) == len(claimed) - 1
    # the first batch (whatever was queued when the writer woke), then all the rest
    assert completions.batches == (1 if len(first_batch) == len(claimed) else 2)
    assert store.queue_stats()["transcribe"]["pending"] == len(claimed) - 1
    # closed: completions are written directly
    [c] = store.claim("w1", ["fetch"])
    assert completions.complete(c.step_id, c.lease_token) is True


# --- fail, retry, dead ------------------------------------------------------------


def test_fail_retries_after_exponential_backoff_with_jitter(
    store: Store, clock: ManualClock, jitter_seed: int
) -> None:
    job_id = _submit(store)
    policy = stage("fetch").retry
    reference = random.Random(jitter_seed)  # the store's rng, replayed

    for attempt in range(1, policy.max_attempts):
        claimed = _one(store, "w1", "fetch")
        assert claimed.attempt == attempt
        failed_at = clock.now()
        assert store.fail(claimed.step_id, claimed.lease_token, f"timeout {attempt}") == "retry"

        step = _step(store, job_id, "fetch")
        base = policy.base_delay * 2 ** (attempt - 1)
        assert step["status"] == "pending"
        assert step["error"] == f"timeout {attempt}"
        # equal jitter (podmill.retry): the upper half of the exponential delay
        expected = failed_at + timedelta(seconds=base * reference.uniform(0.5, 1.0))
        assert step["not_before"] == expected
        assert (
            failed_at + timedelta(seconds=0.5 * base)
            <= step["not_before"]
            <= failed_at + timedelta(seconds=base)
        )
        clock.set(step["not_before"] - timedelta(microseconds=1))
        assert store.claim("w1", ["fetch"]) == []  # not before not_before
        clock.set(step["not_before"])

    last = _one(store, "w1", "fetch")
    assert last.attempt == policy.max_attempts
    assert store.fail(last.step_id, last.lease_token, "timeout, for good") == "dead"
    job = store.job(job_id)
    assert job is not None
    assert job["status"] == "failed"
    assert job["error"] == "fetch: timeout, for good"
    assert job["steps"]["fetch"]["status"] == "dead"
    assert store.claim("w1", STAGE_NAMES) == []


def test_a_non_retryable_failure_is_dead_at_once_and_retry_dead_finishes_the_job(
    store: Store,
) -> None:
    job_id = _submit(store)
    claimed = _one(store, "w1", "fetch")

    assert store.fail(claimed.step_id, claimed.lease_token, "404", retryable=False) == "dead"

    [dead] = store.list_dead()
    assert dead["step_id"] == claimed.step_id
    assert (dead["job_id"], dead["stage"], dead["error"]) == (job_id, "fetch", "404")
    assert (dead["attempts"], dead["episode_key"]) == (1, EPISODE)
    assert store.job(job_id)["status"] == "failed"  # type: ignore[index]
    assert store.retry_dead(claimed.step_id)
    assert store.retry_dead(claimed.step_id) is False  # no longer dead
    assert store.list_dead() == []
    job = store.job(job_id)
    assert job is not None
    assert job["status"] == "running" and job["error"] is None
    assert job["steps"]["fetch"]["attempts"] == 0

    _run_through(store, STAGE_NAMES)
    assert store.job(job_id)["status"] == "done"  # type: ignore[index]


def test_cancel_job_lets_running_steps_finish_and_retry_job_brings_it_back(
    store: Store,
) -> None:
    job_id = _submit(store)
    _run_through(store, ["fetch", "transcribe", "segment"])
    l1 = _one(store, "w1", "summarize_l1")

    assert store.cancel_job(job_id)
    assert store.cancel_job(job_id) is False
    statuses = _statuses(store, job_id)
    assert statuses["summarize_l1"] == "running"
    assert statuses["decide"] == statuses["synthesize"] == "cancelled"
    assert store.complete(l1.step_id, l1.lease_token)  # a running step finishes
    assert store.job(job_id)["status"] == "cancelled"  # type: ignore[index]
    assert store.claim("w1", STAGE_NAMES, limit=10) == []

    assert store.retry_job(job_id) == len(STAGES) - 4
    statuses = _statuses(store, job_id)
    assert statuses["decide"] == "pending"
    assert statuses["subsegment"] == statuses["summarize_l2"] == "waiting"
    assert _deps(store, job_id)["synthesize"] == 1  # summarize_l1 is done
    assert store.job(job_id)["status"] == "running"  # type: ignore[index]
    _run_through(store, ["decide", "subsegment", "summarize_l2", "synthesize", "index"])
    _run_through(store, ["publish"])
    assert store.job(job_id)["status"] == "done"  # type: ignore[index]
    assert store.retry_job(job_id) == 0
    assert store.cancel_job(job_id) is False  # done
    assert store.cancel_job(999_999) is False


def test_a_step_failing_in_a_cancelled_job_is_cancelled(store: Store) -> None:
    job_id = _submit(store)
    claimed = _one(store, "w1", "fetch")
    store.cancel_job(job_id)

    assert store.fail(claimed.step_id, claimed.lease_token, "boom") == "dead"
    assert _statuses(store, job_id)["fetch"] == "cancelled"
    assert store.job(job_id)["status"] == "cancelled"  # type: ignore[index]


# --- release, reap, heartbeat -----------------------------------------------------


def test_release_returns_the_step_without_counting_the_attempt(store: Store) -> None:
    job_id = _submit(store)
    first = _one(store, "w1", "fetch")

    assert store.release(first.step_id, first.lease_token)
    assert store.release(first.step_id, first.lease_token) is False

    step = _step(store, job_id, "fetch")
    assert (step["status"], step["attempts"], step["worker_id"]) == ("pending", 0, None)
    again = _one(store, "w2", "fetch")
    assert again.attempt == 1
    with store.engine.connect() as conn:
        released = conn.execute(
            select(STEPS.c.released_count).where(STEPS.c.id == again.step_id)
        ).scalar_one()
    assert released == 1


def test_reap_returns_expired_steps_of_other_workers_only(store: Store, clock: ManualClock) -> None:
    theirs_job = _submit(store, key="t" * 32)
    mine_job = _submit(store, key="m" * 32)
    theirs = store.claim("w1", ["fetch"])[0]
    mine = store.claim("w2", ["fetch"])[0]
    assert (theirs.job_id, mine.job_id) == (theirs_job, mine_job)

    clock.advance(LEASE - 1)
    assert store.reap(self_worker_id="w3") == []  # not expired yet
    clock.advance(2)

    assert store.reap(self_worker_id="w2") == [theirs.step_id]
    step = _step(store, theirs_job, "fetch")
    assert (step["status"], step["worker_id"], step["attempts"]) == ("pending", None, 1)
    assert "lease expired" in step["error"]
    assert _step(store, mine_job, "fetch")["status"] == "running"  # never reaps its own
    assert store.reap(self_worker_id="w2") == []
    assert store.reap() == [mine.step_id]
    assert store.counters["reaped"] == 2


def test_a_step_that_keeps_losing_its_worker_ends_dead(store: Store, clock: ManualClock) -> None:
    job_id = _submit(store)
    for _ in range(stage("fetch").retry.max_attempts):
        _one(store, "w1", "fetch")
        clock.advance(LEASE + 1)
        store.reap()

    assert _step(store, job_id, "fetch")["status"] == "dead"
    assert store.job(job_id)["status"] == "failed"  # type: ignore[index]


def test_heartbeat_extends_leases_so_a_live_worker_is_never_reaped(
    store: Store, clock: ManualClock
) -> None:
    for i in range(4):
        _submit(store, key=f"{i}" * 32)
    store.register_worker("w1", "host", 123, {"io": 2})
    a, b, forgotten = store.claim("w1", ["fetch"], limit=3)
    other = store.claim("w2", ["fetch"])[0]

    for _ in range(5):  # 5 leases' worth of time, a heartbeat every third of a lease
        for _ in range(3):
            clock.advance(LEASE / 3)
            assert store.heartbeat("w1", [a.step_id, b.step_id]) == 2
            assert set(store.reap(self_worker_id="w9")) <= {other.step_id, forgotten.step_id}

    # a step the worker no longer names (its thread died) expired and was reaped
    assert _step(store, forgotten.job_id, "fetch")["status"] == "pending"
    assert store.complete(a.step_id, a.lease_token)
    assert store.heartbeat("w1", [a.step_id, b.step_id]) == 1  # a is done
    assert store.heartbeat("w1", [other.step_id]) == 0  # not its step
    assert store.heartbeat("w2", [other.step_id]) == 0  # reaped
    assert store.heartbeat("w1") == 0
    [worker] = store.workers()
    assert worker["heartbeat_at"] == clock.now()
    assert worker["current_steps"] == []
    store.heartbeat("w1", [b.step_id])
    assert store.workers()[0]["current_steps"] == [b.step_id]
    assert store.complete(b.step_id, b.lease_token)


def test_workers_register_report_and_die_when_silent(store: Store, clock: ManualClock) -> None:
    store.register_worker("h:1:a", "h", 1, {"asr": 1, "cpu": 2})
    store.register_worker("h:2:b", "h", 2, {"io": 4})
    store.set_worker_status("h:2:b", "stopped")
    with pytest.raises(ValueError, match="unknown worker status"):
        store.set_worker_status("h:1:a", "sleeping")

    clock.advance(LEASE + 1)
    store.reap()

    workers = {w["id"]: w for w in store.workers()}
    assert workers["h:1:a"]["status"] == "dead"
    assert workers["h:1:a"]["pools"] == {"asr": 1, "cpu": 2}
    assert workers["h:1:a"]["pid"] == 1
    assert workers["h:2:b"]["status"] == "stopped"  # a stopped worker is not dead
    store.heartbeat("h:1:a")
    assert {w["id"]: w["status"] for w in store.workers()}["h:1:a"] == "running"


# --- locks, stats, views ----------------------------------------------------------


def test_resource_locks_acquire_refresh_release_and_sweep(store: Store, clock: ManualClock) -> None:
    assert store.acquire_lock("k", "a", ttl=10)
    assert store.acquire_lock("k", "a", ttl=10)  # its own
    assert not store.acquire_lock("k", "b", ttl=10)
    assert store.refresh_lock("k", "a", ttl=20)
    assert not store.refresh_lock("k", "b", ttl=20)
    clock.advance(15)
    assert not store.acquire_lock("k", "b", ttl=10)  # refreshed to 20 s
    assert not store.release_lock("k", "b")
    assert store.release_lock("k", "a")
    assert store.acquire_lock("k", "b", ttl=10)
    assert store.acquire_lock("other", "b", ttl=100)
    clock.advance(10)
    assert store.sweep_locks() == 1
    assert store.acquire_lock("k", "c", ttl=10)
    assert not store.acquire_lock("other", "c", ttl=10)


def test_queue_stats_count_steps_per_stage(store: Store) -> None:
    for i in range(3):
        _submit(store, key=f"{i}" * 32)
    _run_through(store, ["fetch"])
    store.claim("w1", ["transcribe"])
    store.pause("segment")

    stats = store.queue_stats()

    assert list(stats) == list(STAGE_NAMES)
    assert stats["fetch"]["done"] == 3
    assert (stats["transcribe"]["running"], stats["transcribe"]["pending"]) == (1, 2)
    assert stats["segment"] == {
        "waiting": 3,
        "pending": 0,
        "running": 0,
        "done": 0,
        "failed": 0,
        "dead": 0,
        "cancelled": 0,
        "skipped": 0,
        "paused": 1,
    }


def test_jobs_and_job_views(store: Store, clock: ManualClock) -> None:
    first = _submit(store, key="1" * 32, correlation_id="c1")
    clock.advance(1)
    second = _submit(store, key="2" * 32)
    claimed = _one(store, "w1", "fetch")  # first job's fetch (fifo)
    clock.advance(2)
    store.complete(claimed.step_id, claimed.lease_token, duration=2.0)

    assert [j["id"] for j in store.jobs()] == [second, first]
    assert [j["id"] for j in store.jobs(status="running")] == [first]
    assert [j["id"] for j in store.jobs(limit=1)] == [second]
    assert store.job(999_999) is None
    job = store.job(first)
    assert job is not None
    assert {"id", "episode_key", "fingerprint", "status", "created_at", "correlation_id"} <= set(
        job
    )
    assert (job["episode_key"], job["fingerprint"]) == ("1" * 32, PRINT)
    assert job["created_at"] == clock.now() - timedelta(seconds=3)
    assert job["correlation_id"] == "c1"
    fetch = job["steps"]["fetch"]
    assert {
        "status",
        "attempts",
        "worker_id",
        "started_at",
        "finished_at",
        "duration_seconds",
        "error",
        "not_before",
    } <= set(fetch)
    assert (fetch["status"], fetch["attempts"], fetch["worker_id"]) == ("done", 1, "w1")
    assert fetch["finished_at"] - fetch["started_at"] == timedelta(seconds=2)
    assert fetch["duration_seconds"] == 2.0


# --- wake-ups ---------------------------------------------------------------------


@pytest.mark.postgres
def test_a_listener_wakes_when_another_connection_submits(postgres_url: str) -> None:
    upgrade(postgres_url)
    with (
        Store(postgres_url) as listening,
        Store(postgres_url) as submitting,
        listening.listen() as waiter,
    ):
        assert waiter.wait(0.05) is False  # nothing yet
        with submitting.engine.begin() as conn:  # another install's schema: not ours
            conn.execute(select(func.pg_notify(CHANNEL, "someone_else:fetch")))
        assert waiter.wait(0.3) is False

        timer = threading.Timer(0.2, submitting.submit, args=(EPISODE, PRINT, PAYLOAD))
        timer.start()
        try:
            woke = waiter.wait(1.2)  # the submit comes at 0.2 s
        finally:
            timer.join()
        assert woke
        assert listening.claim("w1", ["fetch"])

        for i in range(3):  # a burst is one wake-up
            submitting.submit(f"{i}" * 32, PRINT, PAYLOAD)
        time.sleep(0.2)
        assert waiter.wait(1.0)
        assert waiter.wait(0.2) is False


def test_a_sqlite_waiter_wakes_on_this_process_s_own_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'podmill.db'}"
    upgrade(url)
    with Store(url) as store, store.listen() as waiter:
        started = time.monotonic()
        assert waiter.wait(0.05) is False
        assert time.monotonic() - started >= 0.05  # it slept the poll interval
        threading.Timer(0.1, store.submit, args=(EPISODE, PRINT, PAYLOAD)).start()
        assert waiter.wait(5.0)


# --- migration ----------------------------------------------------------------------


def test_downgrade_to_0001_keeps_steps_and_upgrade_restores_the_engine(db_url: str) -> None:
    with Store(db_url) as store:
        job_id = _submit(store)
    downgrade(db_url, "0001")

    with Store(db_url) as store, store.engine.connect() as conn:
        # `waiting` does not exist before 0002: such steps are simply not started
        rows = conn.execute(
            select(STEPS.c.stage, STEPS.c.status).where(STEPS.c.job_id == job_id)
        ).all()
    statuses = dict(rows)
    assert set(statuses.values()) == {"pending"}

    upgrade(db_url)
    with Store(db_url) as store:
        assert store.submit(EPISODE, PRINT, PAYLOAD) == (job_id, False)
        assert _submit(store, key="n" * 32) != job_id
