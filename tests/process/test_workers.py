"""The engine's guarantees, checked with real worker processes and real signals.

Each test runs on SQLite and on Postgres. Stage functions are no-ops; a stage is slowed
down with ``PODMILL_TEST_STAGE_DELAY`` when a test needs to catch a worker mid-step.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from podmill.pipeline.dag import STAGE_NAMES

from support.cli import run_cli
from support.paths import DEMO
from support.workers import EngineDB, Workers, wait_for

LEASE = "2"  # seconds; reaping waits for a lease to expire, so keep it short


def _delay(spec: str) -> dict[str, str]:
    return {"PODMILL_TEST_STAGE_DELAY": spec}


def _assert_each_ran_once(
    db: EngineDB, job_ids: list[int], *, except_: frozenset[str] = frozenset()
) -> None:
    runs = db.runs()
    for job_id in job_ids:
        for stage in STAGE_NAMES:
            if stage not in except_:
                assert runs[(job_id, stage)] == 1, (
                    f"job {job_id} {stage} ran {runs[(job_id, stage)]}x"
                )


def _assert_all_done_once(db: EngineDB, job_ids: list[int]) -> None:
    steps = db.steps()
    for job_id in job_ids:
        for stage in STAGE_NAMES:
            assert steps[(job_id, stage)]["status"] == "done", db.describe()
    # one row per (job, stage), so "done" can only be recorded once
    assert len([k for k in steps if k[0] in job_ids]) == len(job_ids) * len(STAGE_NAMES)


# ----------------------------------------------------------------- crash recovery


def test_kill9_mid_step_is_rerun_after_lease_expiry(engine_db: EngineDB, workers: Workers) -> None:
    [job] = engine_db.submit(1)
    first = workers.start("--lease", LEASE, env=_delay("transcribe:60"))
    step = engine_db.wait_step(job, "transcribe", "running")
    assert first.owns(step)

    first.signal(signal.SIGKILL)
    first.wait(timeout=10)
    second = workers.start("--lease", LEASE)
    engine_db.wait_jobs([job], timeout=60)

    _assert_all_done_once(engine_db, [job])
    transcribe = engine_db.step(job, "transcribe")
    assert second.owns(transcribe)
    assert transcribe["attempts"] == 2  # the killed attempt counts
    assert engine_db.step(job, "synthesize")["attempts"] == 1
    _assert_each_ran_once(engine_db, [job])  # the killed worker never finished transcribe
    assert engine_db.worker_status(first.pid) == "dead"


def test_stopped_worker_cannot_finish_a_reaped_step(engine_db: EngineDB, workers: Workers) -> None:
    [job] = engine_db.submit(1)
    stalled = workers.start("--lease", LEASE, env=_delay("transcribe:3"))
    assert stalled.owns(engine_db.wait_step(job, "transcribe", "running"))

    stalled.freeze(engine_db)  # past its lease: no heartbeats, looks dead
    other = workers.start("--lease", LEASE)
    engine_db.wait_jobs([job], timeout=60)
    before = engine_db.steps(job)
    assert other.owns(before[(job, "transcribe")])

    stalled.signal(signal.SIGCONT)  # wakes up, finishes transcribe, tries to complete it
    wait_for(lambda: "lease lost" in stalled.log(), 30, "the stalled worker to lose its lease")

    assert engine_db.steps(job) == before  # its late completion changed nothing
    assert engine_db.job_status(job) == "done"
    runs = engine_db.runs()
    assert runs[(job, "transcribe")] == 2  # it ran twice; only one result counts
    _assert_each_ran_once(engine_db, [job], except_=frozenset({"transcribe"}))


# ---------------------------------------------------------------------- shutdown


def test_sigterm_releases_steps_in_flight(engine_db: EngineDB, workers: Workers) -> None:
    jobs = engine_db.submit(2)
    worker = workers.start(
        "--grace", "1", "--pool", "io=2", "--pool", "asr=2", env=_delay("transcribe:60")
    )
    wait_for(
        lambda: all(engine_db.step(j, "transcribe")["status"] == "running" for j in jobs),
        30,
        "both transcribe steps to run",
    )

    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    assert time.monotonic() - started < 10, "grace is 1 s; shutdown must not wait for the step"

    steps = engine_db.steps()
    assert not [k for k, s in steps.items() if s["status"] == "running"], engine_db.describe()
    for job in jobs:
        released = steps[(job, "transcribe")]
        assert released["status"] == "pending"
        assert released["attempts"] == 0  # a release is not an attempt
        assert released["released_count"] == 1
        assert released["worker_id"] is None
        assert steps[(job, "fetch")]["attempts"] == 1
    assert engine_db.worker_status(worker.pid) == "stopped"
    assert "released=2" in worker.log()

    workers.start()
    engine_db.wait_jobs(jobs, timeout=60)
    _assert_all_done_once(engine_db, jobs)
    _assert_each_ran_once(engine_db, jobs)  # fetch was not re-run
    assert all(engine_db.step(j, "transcribe")["attempts"] == 1 for j in jobs)


def test_sigterm_lets_short_steps_finish(engine_db: EngineDB, workers: Workers) -> None:
    [job] = engine_db.submit(1)
    worker = workers.start("--grace", "20", env=_delay("transcribe:1.5"))
    engine_db.wait_step(job, "transcribe", "running")

    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0

    transcribe = engine_db.step(job, "transcribe")
    assert transcribe["status"] == "done" and worker.owns(transcribe)
    segment = engine_db.step(job, "segment")
    assert segment["status"] == "pending" and segment["attempts"] == 0  # not claimed after stop
    assert engine_db.worker_status(worker.pid) == "stopped"


# ------------------------------------------------------------------------- pools


def test_pool_claims_only_free_slots_for_its_stages(engine_db: EngineDB, workers: Workers) -> None:
    jobs = engine_db.submit(3)
    workers.start("--pool", "io=1", env=_delay("fetch:0.7"))
    most_running = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        steps = engine_db.steps()
        most_running = max(most_running, sum(s["status"] == "running" for s in steps.values()))
        if all(steps[(j, "fetch")]["status"] == "done" for j in jobs):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"fetch steps did not finish:\n{engine_db.describe()}")

    assert most_running == 1  # one slot: never a lease on a step it cannot start
    for job in jobs:  # transcribe is an asr stage: an io-only worker never claims it
        transcribe = engine_db.step(job, "transcribe")
        assert transcribe["status"] == "pending" and transcribe["attempts"] == 0


# ----------------------------------------------------------------------- Postgres


@pytest.mark.postgres
@pytest.mark.pg_restart
def test_workers_survive_a_postgres_restart(engine_db: EngineDB, workers: Workers) -> None:
    if engine_db.dialect != "postgresql":
        pytest.skip("restarts the Postgres server; SQLite has no server to restart")
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        pytest.skip("cannot restart Postgres here: no pg_ctlcluster / /etc/postgresql")
    jobs = engine_db.submit(4)
    delays = _delay("fetch:0.2,transcribe:0.5,segment:0.2,synthesize:0.2,publish:0.2")
    for _ in range(2):
        workers.start("--lease", "10", "--poll", "0.5", env=delays)
    wait_for(
        lambda: sum(s["status"] == "done" for s in engine_db.steps().values()) >= 6,
        60,
        "some steps to finish",
    )

    done_before = sum(s["status"] == "done" for s in engine_db.steps().values())
    assert done_before < len(jobs) * len(STAGE_NAMES), "finished before the restart"
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
    restart = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if restart.returncode != 0:
        pytest.skip(f"cannot restart Postgres here: {restart.stderr.strip() or restart.stdout}")

    engine_db.wait_jobs(jobs, timeout=120)
    _assert_all_done_once(engine_db, jobs)
    _assert_each_ran_once(engine_db, jobs)
    assert all(w.proc.poll() is None for w in workers.started), workers.logs()
    assert "LISTEN lost" in workers.logs()  # the restart did cut the workers off


# --------------------------------------------------------------------------- CLI


def test_cli_submit_jobs_queues_and_dead_round_trip(
    engine_db: EngineDB, workers: Workers, tmp_path: Path
) -> None:
    db = ("--db", engine_db.url)
    audio = DEMO / "jfk.flac"
    submitted = run_cli("submit", audio, *db, "--data-dir", tmp_path / "data", "--json")
    assert submitted.code == 0, submitted.stderr
    [first] = submitted.json_lines()
    assert first["created"] is True and first["title"] == "jfk"
    job_id = first["job_id"]
    again = run_cli("submit", audio, *db, "--data-dir", tmp_path / "data", "--json")
    assert again.json_lines() == [{**first, "created": False}]  # same episode, same job

    [listed] = run_cli("jobs", "list", *db, "--json").json_lines()
    assert listed["id"] == job_id and listed["episode_key"] == first["episode_key"]
    assert listed["steps"]["fetch"]["status"] == "pending"
    assert listed["steps"]["transcribe"]["status"] == "waiting"
    assert set(listed["steps"]) == set(STAGE_NAMES)

    assert run_cli("queues", "pause", "fetch", *db).code == 0
    worker = workers.start(
        "--pool",
        "io=1",
        "--pool",
        "asr=1",
        "--pool",
        "cpu=1",
        env={"PODMILL_TEST_FAIL_STAGES": "index"},
    )
    time.sleep(1.0)  # several claim rounds
    queues = {q["stage"]: q for q in run_cli("queues", "list", *db, "--json").json_lines()}
    assert queues["fetch"]["paused"] == 1 and queues["fetch"]["pending"] == 1
    assert engine_db.step(job_id, "fetch")["attempts"] == 0  # paused: not claimed

    assert run_cli("queues", "resume", "fetch", *db).code == 0
    engine_db.wait_step(job_id, "index", "dead", timeout=60)  # 3 attempts with backoff
    [dead] = run_cli("dead", "list", *db, "--json").json_lines()
    assert dead["stage"] == "index" and dead["job_id"] == job_id
    shown = run_cli("jobs", "show", str(job_id), *db, "--json").json_lines()[0]
    assert shown["status"] == "failed"
    assert shown["steps"]["index"]["attempts"] == 3
    assert "fails on purpose" in shown["steps"]["index"]["error"]
    assert shown["steps"]["publish"]["status"] == "waiting"

    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    step_id = dead["step_id"]
    assert run_cli("dead", "retry", str(step_id), *db).code == 0
    healthy = workers.start("--max-idle", "2")
    engine_db.wait_jobs([job_id], timeout=60)
    assert healthy.wait(timeout=30) == 0  # --max-idle: exits once the queue is empty

    [done] = run_cli("jobs", "list", *db, "--status", "done", "--json").json_lines()
    assert done["id"] == job_id
    assert all(s["status"] == "done" for s in done["steps"].values())
    assert run_cli("dead", "list", *db, "--json").json_lines() == []
    again_retry = run_cli("dead", "retry", str(step_id), *db)
    assert again_retry.code == 1 and "is not dead" in again_retry.error_line

    table = run_cli("jobs", "list", *db)
    assert table.code == 0 and first["episode_key"] in table.stdout


def test_cli_cancel_and_retry_a_job(engine_db: EngineDB, workers: Workers, tmp_path: Path) -> None:
    db = ("--db", engine_db.url)
    submitted = run_cli("submit", DEMO / "jfk.flac", *db, "--data-dir", tmp_path / "data")
    assert submitted.code == 0, submitted.stderr
    job_id = int(submitted.stdout.strip())

    assert run_cli("jobs", "cancel", str(job_id), *db).code == 0
    shown = run_cli("jobs", "show", str(job_id), *db, "--json").json_lines()[0]
    assert shown["status"] == "cancelled"
    assert shown["steps"]["fetch"]["status"] == "cancelled"

    assert run_cli("jobs", "retry", str(job_id), *db).code == 0
    assert engine_db.step(job_id, "fetch")["status"] == "pending"
    workers.start("--max-idle", "2")
    engine_db.wait_jobs([job_id], timeout=60)
    table = run_cli("jobs", "show", str(job_id), *db)
    assert table.code == 0 and "publish" in table.stdout

    missing = run_cli("jobs", "show", "999999", *db)
    assert missing.code == 1 and "no job 999999" in missing.error_line


def test_cli_database_errors_are_one_line(tmp_path: Path) -> None:
    # no --db: the data dir's SQLite file, which nothing has created yet
    no_db = run_cli("jobs", "list", "--data-dir", tmp_path / "nothing")
    assert no_db.code == 1 and "no database" in no_db.error_line
    assert str(tmp_path / "nothing") in no_db.error_line
    assert not (tmp_path / "nothing").exists()  # reading created nothing

    unreachable = run_cli("queues", "list", "--db", "postgresql+psycopg://postgres@127.0.0.1:9/x")
    assert unreachable.code == 1 and "cannot use database" in unreachable.error_line
    assert "Traceback" not in unreachable.stderr

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    unmigrated = run_cli("dead", "list", "--db", fresh)
    assert unmigrated.code == 1 and "podmill db upgrade" in unmigrated.error_line

    bad_pool = run_cli("worker", "--db", fresh, "--pool", "gpu=1")
    assert bad_pool.code == 1 and "unknown pool 'gpu'" in bad_pool.error_line

    bad_stage = run_cli("queues", "pause", "nosuch", "--db", fresh)
    assert bad_stage.code == 1 and "unknown stage 'nosuch'" in bad_stage.error_line
