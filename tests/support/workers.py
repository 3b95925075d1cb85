"""Helpers for tests that run real ``podmill worker`` processes (see tests/process)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from podmill.domain import Episode
from podmill.engine.store import Store
from podmill.storage import db as storage_db


def wait_for(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    detail: Callable[[], str] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # e.g. the database restarting under the test
            pass
        time.sleep(0.05)
    extra = f"\n{detail()}" if detail else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")


def finish_job(store: Store, job_id: int) -> None:
    """Run the job's steps to done through the engine (claim, complete), as a worker."""
    from podmill.pipeline.dag import STAGE_NAMES

    while store.job(job_id)["status"] != "done":
        claimed = store.claim("test-worker", STAGE_NAMES, limit=10)
        assert claimed, store.job(job_id)
        for step in claimed:
            assert store.complete(step.step_id, step.lease_token)


@dataclass
class EngineDB:
    """The database under test, read the way an operator would: straight from the tables."""

    url: str
    data_dir: Path
    run_log: Path
    store: Store
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = storage_db.make_engine(self.url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def submit(self, count: int, prefix: str = "ep") -> list[int]:
        """``count`` jobs whose payload runs on no-op stages."""
        ids = []
        for i in range(count):
            episode = Episode(episode_key=f"{prefix}-{i}", title=f"episode {i}", audio_url=None)
            payload = {
                "episode": episode.to_dict(),
                "settings": {"data_dir": str(self.data_dir)},
            }
            job_id, created = self.store.submit(episode.episode_key, "fp", payload)
            assert created
            ids.append(job_id)
        return ids

    def steps(self, job_id: int | None = None) -> dict[tuple[int, str], dict[str, Any]]:
        """``(job_id, stage)`` → the step row (every column)."""
        query = "SELECT * FROM steps" + (" WHERE job_id = :job" if job_id is not None else "")
        with self.engine.connect() as conn:
            rows = conn.execute(text(query), {"job": job_id}).mappings().all()
        return {(row["job_id"], row["stage"]): dict(row) for row in rows}

    def step(self, job_id: int, stage: str) -> dict[str, Any]:
        return self.steps(job_id)[(job_id, stage)]

    def job_status(self, job_id: int) -> str:
        with self.engine.connect() as conn:
            return conn.execute(
                text("SELECT status FROM jobs WHERE id = :id"), {"id": job_id}
            ).scalar_one()

    def worker_status(self, pid: int) -> str | None:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, status FROM workers")).all()
        found = [status for worker_id, status in rows if f":{pid}:" in worker_id]
        return found[0] if found else None

    def runs(self) -> Counter[tuple[int, str]]:
        """How many times each ``(job_id, stage)`` actually finished running, any worker."""
        if not self.run_log.exists():
            return Counter()
        lines = self.run_log.read_text().splitlines()
        return Counter((int(line.split()[0]), line.split()[1]) for line in lines if line)

    def wait_step(self, job_id: int, stage: str, status: str, timeout: float = 30) -> dict:
        wait_for(
            lambda: self.step(job_id, stage)["status"] == status,
            timeout,
            f"job {job_id} step {stage} to be {status}",
        )
        return self.step(job_id, stage)

    def wait_jobs(self, job_ids: list[int], status: str = "done", timeout: float = 60) -> None:
        wait_for(
            lambda: all(self.job_status(j) == status for j in job_ids),
            timeout,
            f"jobs {job_ids} to be {status}",
            detail=self.describe,
        )

    def write_lock_free(self) -> bool:
        """SQLite only: can another connection take the write lock right now?"""
        path = self.url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()

    def describe(self) -> str:
        rows = sorted(self.steps().values(), key=lambda r: (r["job_id"], r["id"]))
        return "\n".join(
            f"  job {r['job_id']} {r['stage']:<13} {r['status']:<8} attempts={r['attempts']} "
            f"worker={r['worker_id']}"
            for r in rows
        )


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def owns(self, row: dict[str, Any]) -> bool:
        return f":{self.pid}:" in (row["worker_id"] or "")

    def freeze(self, db: EngineDB, attempts: int = 50) -> None:
        """SIGSTOP the worker at a moment it holds no database write lock.

        On Postgres a stopped process's transaction blocks nobody we care about (claims
        skip locked rows). SQLite has one write lock for the whole file: a process frozen
        inside a write transaction holds it until it is continued, and every other
        process waits on it (the documented single-machine limit, docs/engine.md). So on
        SQLite, check after stopping that the lock is free, and if it is not, let the
        worker run on briefly and try again.
        """
        for _ in range(attempts):
            self.signal(signal.SIGSTOP)
            if db.dialect != "sqlite" or db.write_lock_free():
                return
            self.signal(signal.SIGCONT)
            time.sleep(0.02)
        raise AssertionError(f"worker {self.pid} held the SQLite write lock {attempts} times")


class Workers:
    """Starts ``python -m podmill worker`` processes; kills whatever is left at teardown."""

    def __init__(self, engine_db: EngineDB, tmp_path: Path) -> None:
        self.db = engine_db
        self.tmp_path = tmp_path
        self.started: list[WorkerProcess] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PODMILL_")}
        full_env.update(
            {
                "PODMILL_TEST_NOOP_STAGES": "1",
                "PODMILL_TEST_RUN_LOG": str(self.db.run_log),
                "PODMILL_LOG_LEVEL": "INFO",
                "COLUMNS": "200",
            }
        )
        full_env.update(env or {})
        log_path = self.tmp_path / f"worker-{len(self.started)}.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "podmill", "worker", "--db", self.db.url, *args],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=full_env,
            )
        worker = WorkerProcess(proc, log_path)
        self.started.append(worker)
        wait_for(
            lambda: self.db.worker_status(proc.pid) is not None or proc.poll() is not None,
            30,
            f"worker {proc.pid} to register",
        )
        assert proc.poll() is None, f"worker exited early:\n{worker.log()}"
        return worker

    def logs(self) -> str:
        return "\n".join(f"--- worker {w.pid}\n{w.log()}" for w in self.started)

    def close(self) -> None:
        for worker in self.started:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGCONT)
                worker.proc.kill()
                worker.proc.wait(timeout=10)
