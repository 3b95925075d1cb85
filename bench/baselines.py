"""Baseline job queues on podmill's stage graph, for a side-by-side with podmill's own engine.

Workload: ``jobs`` independent jobs, each the ten stages of :data:`podmill.pipeline.dag.STAGES`
with no-op stage functions::

    fetch → transcribe → segment ─┬→ decide → subsegment → summarize_l2 ─┐
                                  └→ summarize_l1 ────────────────────────┴→ synthesize
    synthesize → index → publish

Every step enqueues its successor(s) when it completes; ``synthesize`` (the join) is enqueued
exactly once, when the second of its two predecessors completes. Only the roots (``fetch``)
are enqueued up front, all at once.

Each run returns ``{"system", "workers", "jobs", "steps", "seconds", "steps_per_s",
"latency_p50_ms", "latency_p99_ms", "max_gap_ms", "version", "mode"}``. ``seconds`` runs
from just before the roots are enqueued (workers already up and waiting) to the moment the
harness sees every step done (it polls the queue's own state every 20 ms). Latency is, per
step, the time from its enqueue to the first line of its function; every step writes
``(stage, job, enqueued, started)`` to a per-process file (one ``write`` syscall, no
database round trip), and the harness checks afterwards that every ``(job, stage)`` ran
exactly once and was enqueued only after all its predecessors had run. ``max_gap_ms`` is
the longest stretch in which no step started anywhere (stalls, warm-up).

All roots are enqueued at once and both systems dequeue in FIFO order, so latency here is
mostly queueing behind the other jobs' steps, not the bare hand-off time.

    python bench/baselines.py --jobs 200 --workers 1 2 4 [--repeat 3]
    python bench/baselines.py --systems procrastinate --jobs 50 --workers 2

From Python (``bench/`` on ``sys.path``; workers are ``spawn``-ed processes, so the calling
script needs the usual ``if __name__ == "__main__":`` guard)::

    from baselines import run_celery, run_procrastinate
    run_procrastinate(200, 2, "postgresql://postgres@127.0.0.1:5432/test")
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from podmill.pipeline.dag import STAGES

DEFAULT_PG_DSN = os.environ.get("PODMILL_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_RESULT_BACKEND = "redis://127.0.0.1:6379/0"
RUN_TIMEOUT_S = 120.0  # from the first enqueue to the last step done
STARTUP_TIMEOUT_S = 60.0  # workers up and listening
POLL_S = 0.02  # how often the harness checks for completion

STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
ROOTS: tuple[str, ...] = tuple(s.name for s in STAGES if not s.after)
PREDECESSORS: dict[str, tuple[str, ...]] = {s.name: s.after for s in STAGES}
SUCCESSORS: dict[str, tuple[str, ...]] = {
    n: tuple(s.name for s in STAGES if n in s.after) for n in STAGE_NAMES
}
JOINS: frozenset[str] = frozenset(s.name for s in STAGES if len(s.after) > 1)


class BenchError(RuntimeError):
    """A run did not finish correctly (timeout, failed step, dead worker, wrong step count)."""


# --------------------------------------------------------------------------- step records


class _StepLog:
    """Appends one ``stage job enqueued started`` line per step to ``<dir>/<pid>.log``.

    Opened lazily per process id, so it is safe across ``fork`` (Celery's prefork pool).
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._pid = -1
        self._fd = -1

    def record(self, stage: str, job: int, enqueued: float, started: float) -> None:
        pid = os.getpid()
        if pid != self._pid:
            path = os.path.join(self.directory, f"{pid}.log")
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._pid = pid
        os.write(self._fd, f"{stage} {job} {enqueued!r} {started!r}\n".encode())


def _read_records(directory: str) -> list[tuple[str, int, float, float]]:
    records = []
    for path in Path(directory).glob("*.log"):
        for line in path.read_text().splitlines():
            stage, job, enqueued, started = line.split()
            records.append((stage, int(job), float(enqueued), float(started)))
    return records


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _result(
    system: str, workers: int, jobs: int, seconds: float, records: list, **extra: Any
) -> dict[str, Any]:
    """Check that every step ran exactly once and in DAG order; build the result row."""
    expected = jobs * len(STAGE_NAMES)
    started: dict[tuple[int, str], float] = {}
    enqueued: dict[tuple[int, str], float] = {}
    for stage, job, enq, t in records:
        if (job, stage) in started:
            raise BenchError(f"{system}: step {stage} of job {job} ran more than once")
        started[(job, stage)] = t
        enqueued[(job, stage)] = enq
    if len(started) != expected:
        raise BenchError(f"{system}: {len(started)} steps ran, expected {expected}")
    for (job, stage), enq in enqueued.items():
        for pred in PREDECESSORS[stage]:
            if started[(job, pred)] > enq:
                raise BenchError(f"{system}: job {job}: {stage} was enqueued before {pred} ran")
    if any(math.isnan(e) for _stage, _job, e, _s in records):
        raise BenchError(f"{system}: some steps carried no enqueue timestamp")
    latencies = sorted((s - e) * 1000.0 for _stage, _job, e, s in records)
    starts = sorted(started.values())
    # The longest stretch in which no step started anywhere: a stall (a missed wake-up
    # falling back on polling, say) shows up here rather than in the averages.
    max_gap = max((b - a for a, b in zip(starts, starts[1:])), default=0.0)
    return {
        "system": system,
        "workers": workers,
        "jobs": jobs,
        "steps": expected,
        "seconds": round(seconds, 3),
        "steps_per_s": round(expected / seconds, 1),
        "latency_p50_ms": round(_percentile(latencies, 0.50), 2),
        "latency_p99_ms": round(_percentile(latencies, 0.99), 2),
        "max_gap_ms": round(max_gap * 1000.0, 1),
        **extra,
    }


def _stop_processes(procs: list, grace_s: float = 20.0, *, kill_group: bool = False) -> None:
    """SIGTERM (graceful stop in both systems), then SIGKILL whatever is left (with
    ``kill_group``, the process's whole group: it called ``setpgrp`` and forked a pool)."""
    procs = [p for p in procs if p.pid is not None]  # started ones only
    for p in procs:
        if p.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            with contextlib.suppress(ProcessLookupError):
                (os.killpg if kill_group else os.kill)(p.pid, signal.SIGKILL)
            p.join(5)


def _wait_until(
    check: Callable[[], bool], timeout_s: float, what: str, procs: list | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if procs and any(not p.is_alive() for p in procs):
            raise BenchError(f"a worker process died while waiting for {what}")
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


# --------------------------------------------------------------------------- procrastinate

_PROCRASTINATE_TASK_PREFIX = "podmill_bench."


class _DropMainModuleWarning(logging.Filter):
    """procrastinate warns when an App is built in ``__main__`` (tasks found by import path
    would break); here every process registers the same tasks by explicit name."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "action", None) != "app_defined_in___main__"


logging.getLogger("procrastinate.blueprints").addFilter(_DropMainModuleWarning())

# The join: one row per (job, join stage), holding the predecessors that have arrived. The
# upsert is one atomic statement (concurrent arrivals serialise on the row); it returns a
# row only when this predecessor had not arrived yet, so a retried predecessor cannot count
# twice. The step that sees the cardinality reach the number of predecessors enqueues the
# join step: exactly one does. (The upsert and procrastinate's defer are two transactions:
# a crash between them would lose the join step; fine for a benchmark.)
_JOIN_TABLE_SQL = """
CREATE TABLE podmill_bench_join (
    job integer NOT NULL,
    stage text NOT NULL,
    arrived text[] NOT NULL,
    PRIMARY KEY (job, stage)
)
"""
_JOIN_ARRIVE_SQL = """
INSERT INTO podmill_bench_join AS j (job, stage, arrived)
VALUES (%(job)s, %(stage)s, ARRAY[%(pred)s]::text[])
ON CONFLICT (job, stage) DO UPDATE
    SET arrived = j.arrived || EXCLUDED.arrived
    WHERE NOT (EXCLUDED.arrived[1] = ANY (j.arrived))
RETURNING cardinality(arrived) AS arrived
"""


def _procrastinate_app(dsn: str, log_dir: str | None = None) -> Any:
    """An App with one task per stage; a task records itself, then defers its successors."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))
    log = _StepLog(log_dir) if log_dir else None
    tasks: dict[str, Any] = {}

    def make(stage: str) -> Callable[..., Any]:
        async def step(job: int, enq: float) -> None:
            started = time.time()
            if log is not None:
                log.record(stage, job, enq, started)
            # (the stage's work would go here: the benchmark's stages are no-ops)
            for nxt in SUCCESSORS[stage]:
                if nxt in JOINS:
                    rows = await app.connector.execute_query_all_async(
                        _JOIN_ARRIVE_SQL, job=job, stage=nxt, pred=stage
                    )
                    if not rows or rows[0]["arrived"] != len(PREDECESSORS[nxt]):
                        continue
                await tasks[nxt].defer_async(job=job, enq=time.time())

        step.__name__ = step.__qualname__ = stage
        return step

    for name in STAGE_NAMES:
        tasks[name] = app.task(name=_PROCRASTINATE_TASK_PREFIX + name)(make(name))
    app.bench_tasks = tasks  # type: ignore[attr-defined]
    return app


def _procrastinate_worker_main(dsn: str, log_dir: str, index: int, concurrency: int = 1) -> None:
    """Entry point of one worker process: procrastinate's defaults (but ``concurrency``),
    LISTEN/NOTIFY on, 5 s fallback polling), stopped gracefully by SIGTERM."""

    async def main() -> None:
        app = _procrastinate_app(dsn, log_dir)
        async with app.open_async():
            await app.run_worker_async(name=f"bench-{index}", concurrency=concurrency)

    asyncio.run(main())


async def _procrastinate_setup(dsn: str) -> None:
    app = _procrastinate_app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        await app.connector.execute_query_async(_JOIN_TABLE_SQL)


async def _procrastinate_drive(
    dsn: str, jobs: int, timeout_s: float, rate: float | None = None
) -> float:
    """Enqueue every root (all at once, or ``rate`` jobs/s), wait for every step to
    succeed; return the elapsed seconds."""
    app = _procrastinate_app(dsn)
    expected = jobs * len(STAGE_NAMES)
    async with app.open_async():
        await app.connector.execute_query_async("SELECT 1")  # warm the pool first
        t0 = time.perf_counter()
        if rate:
            for j in range(jobs):
                pause = t0 + j / rate - time.perf_counter()
                if pause > 0:
                    await asyncio.sleep(pause)
                for root in ROOTS:
                    await app.bench_tasks[root].defer_async(job=j, enq=time.time())
        else:
            enq = time.time()
            for root in ROOTS:
                await app.bench_tasks[root].batch_defer_async(
                    *({"job": j, "enq": enq} for j in range(jobs))
                )
        while True:
            row = await app.connector.execute_query_one_async(
                "SELECT count(*) FILTER (WHERE status = 'succeeded') AS ok,"
                " count(*) FILTER (WHERE status IN ('failed', 'aborted', 'cancelled')) AS bad"
                " FROM procrastinate_jobs"
            )
            elapsed = time.perf_counter() - t0
            if row["bad"]:
                raise BenchError(f"procrastinate: {row['bad']} steps failed")
            if row["ok"] >= expected:
                return elapsed
            if elapsed > timeout_s:
                raise BenchError(
                    f"procrastinate: timed out after {timeout_s:g} s "
                    f"({row['ok']}/{expected} steps done)"
                )
            await asyncio.sleep(POLL_S)


def run_procrastinate(
    jobs: int,
    workers: int,
    pg_dsn: str = DEFAULT_PG_DSN,
    *,
    timeout_s: float = RUN_TIMEOUT_S,
    rate: float | None = None,
    concurrency: int = 1,
) -> dict[str, Any]:
    """Run the workload on procrastinate with ``workers`` worker processes, each running
    ``concurrency`` jobs at once (procrastinate's default is 1); ``rate`` (jobs/s)
    submits the jobs steadily instead of all at once.

    A fresh database (``podmill_bench_<random>``) is created on ``pg_dsn``'s server for the
    run and dropped afterwards, whatever happens. Raises :class:`BenchError` on a timeout,
    a failed step or a wrong step count.
    """
    import procrastinate
    import psycopg
    from psycopg import conninfo, sql

    dbname = f"podmill_bench_{uuid.uuid4().hex[:12]}"
    dsn = conninfo.make_conninfo(pg_dsn, dbname=dbname)
    with contextlib.ExitStack() as cleanup:  # callbacks run last-in first-out, all of them
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        cleanup.callback(_drop_database, pg_dsn, dbname)
        log_dir = tempfile.mkdtemp(prefix="podmill-bench-procrastinate-")
        cleanup.callback(shutil.rmtree, log_dir, ignore_errors=True)
        procs: list = []
        cleanup.callback(_stop_processes, procs)

        asyncio.run(_procrastinate_setup(dsn))
        ctx = multiprocessing.get_context("spawn")
        for i in range(workers):
            procs.append(
                ctx.Process(
                    target=_procrastinate_worker_main,
                    args=(dsn, log_dir, i, concurrency),
                    daemon=True,
                )
            )
            procs[-1].start()
        with psycopg.connect(dsn, autocommit=True) as conn:

            def ready() -> bool:
                row = conn.execute(
                    "SELECT (SELECT count(*) FROM procrastinate_workers),"
                    " (SELECT count(*) FROM pg_stat_activity"
                    "  WHERE datname = current_database() AND query LIKE 'LISTEN %')"
                ).fetchone()
                assert row is not None
                return row[0] >= workers and row[1] >= workers

            _wait_until(ready, STARTUP_TIMEOUT_S, "procrastinate workers to listen", procs)
        seconds = asyncio.run(_procrastinate_drive(dsn, jobs, timeout_s, rate))
        _stop_processes(procs)
        return _result(
            "procrastinate",
            workers,
            jobs,
            seconds,
            _read_records(log_dir),
            version=procrastinate.__version__,
            mode="processes",
        )


def _drop_database(pg_dsn: str, dbname: str, attempts: int = 10) -> None:
    """Drop the run's database, retrying for a while should the server be restarting."""
    import psycopg
    from psycopg import sql

    for attempt in range(attempts):
        try:
            with psycopg.connect(pg_dsn, autocommit=True, connect_timeout=5) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(dbname)
                    )
                )
            return
        except psycopg.OperationalError:
            if attempt == attempts - 1:
                print(f"could not drop database {dbname}; drop it by hand", file=sys.stderr)
                raise
            time.sleep(2.0)


# --------------------------------------------------------------------------- Celery

_CELERY_ENQ_HEADER = "podmill_bench_enqueued"


def _stamp_enqueue_time(headers: dict | None = None, **_: Any) -> None:
    """``before_task_publish`` receiver: every message carries the time it was published,
    whoever publishes it (the harness for roots, a worker for chain links and the chord
    body)."""
    if headers is not None:
        headers[_CELERY_ENQ_HEADER] = time.time()


def _celery_app(cfg: dict[str, Any], log_dir: str | None = None) -> Any:
    from celery import Celery
    from celery.signals import before_task_publish

    before_task_publish.connect(_stamp_enqueue_time, weak=False, dispatch_uid=_CELERY_ENQ_HEADER)
    app = Celery("podmill_bench", broker=cfg["broker"], backend=cfg["backend"])
    app.conf.update(
        task_default_queue=cfg["queue"],
        task_default_exchange=cfg["queue"],
        task_default_routing_key=cfg["queue"],
        result_backend_transport_options={"global_keyprefix": cfg["prefix"]},
        result_expires=3600,
        worker_enable_remote_control=False,  # no pidbox queues left behind
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=1,
    )
    log = _StepLog(log_dir) if log_dir else None

    def make(stage: str) -> Callable[..., Any]:
        def step(self: Any, job: int) -> None:
            started = time.time()
            if log is not None:
                enq = getattr(self.request, _CELERY_ENQ_HEADER, None)
                log.record(stage, job, math.nan if enq is None else float(enq), started)

        step.__name__ = step.__qualname__ = stage
        return step

    app.bench_tasks = {  # type: ignore[attr-defined]
        name: app.task(name=f"podmill_bench.{name}", bind=True)(make(name)) for name in STAGE_NAMES
    }
    return app


def _celery_canvas(tasks: dict[str, Any], job: int) -> Any:
    """The job as a Celery canvas: chains for the sequences, a chord for the join."""
    from celery import chain, chord

    t = {name: tasks[name].si(job) for name in STAGE_NAMES}
    return chain(
        t["fetch"],
        t["transcribe"],
        t["segment"],
        chord(
            [chain(t["decide"], t["subsegment"], t["summarize_l2"]), t["summarize_l1"]],
            t["synthesize"],
        ),
        t["index"],
        t["publish"],
    )


def _celery_worker_main(cfg: dict[str, Any], log_dir: str, ready: Any) -> None:
    """Entry point of the Celery worker node: prefork pool with ``workers`` children."""
    from celery.signals import worker_ready

    os.setpgrp()  # so the harness can reap the pool children if the node hangs
    # Celery warns (and carries on) when the worker runs as root, as it does in containers.
    warnings.filterwarnings("ignore", message=".*superuser privileges")
    app = _celery_app(cfg, log_dir)
    worker_ready.connect(lambda **_: ready.set(), weak=False)
    app.worker_main(
        [
            "--quiet",  # no banner
            "worker",
            "--pool=prefork",
            f"--concurrency={cfg['workers']}",
            f"--queues={cfg['queue']}",
            f"--hostname={cfg['queue']}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=WARNING",
        ]
    )


def _celery_unavailable(cfg: dict[str, Any]) -> str | None:
    """Why Celery cannot run here, or None."""
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        return f"not installed: {exc}"
    app = _celery_app(cfg)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
        app.backend.client.ping()
    except Exception as exc:
        return f"broker/backend unreachable: {type(exc).__name__}: {exc}"
    finally:
        app.close()
    return None


def _celery_cleanup(cfg: dict[str, Any]) -> None:
    app = _celery_app(cfg)
    try:
        with app.connection_for_write() as conn:
            channel = conn.default_channel
            with contextlib.suppress(Exception):
                channel.queue_delete(cfg["queue"])
            with contextlib.suppress(Exception):
                conn.default_channel.exchange_delete(cfg["queue"])
        client = app.backend.client
        keys = list(client.scan_iter(match=cfg["prefix"] + "*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    finally:
        app.close()


def _celery_drive(
    cfg: dict[str, Any], jobs: int, timeout_s: float, rate: float | None = None
) -> float:
    """Publish every job's canvas (all at once, or ``rate`` jobs/s), wait until every
    job's last step succeeded."""
    app = _celery_app(cfg)
    expected = jobs
    try:
        canvases = [_celery_canvas(app.bench_tasks, j) for j in range(jobs)]
        backend = app.backend
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            t0 = time.perf_counter()
            with app.producer_or_acquire() as producer:
                results = []
                for j, canvas in enumerate(canvases):
                    pause = t0 + j / rate - time.perf_counter() if rate else 0
                    if pause > 0:
                        time.sleep(pause)
                    results.append(canvas.apply_async(producer=producer))
        keys = [backend.get_key_for_task(r.id) for r in results]
        while True:
            done = failed = 0
            for value in backend.mget(keys):
                if value is None:
                    continue
                status = backend.decode_result(value)["status"]
                done += status == "SUCCESS"
                failed += status in ("FAILURE", "REVOKED")
            elapsed = time.perf_counter() - t0
            if failed:
                raise BenchError(f"celery: {failed} jobs failed")
            if done >= expected:
                return elapsed
            if elapsed > timeout_s:
                raise BenchError(
                    f"celery: timed out after {timeout_s:g} s ({done}/{expected} jobs done)"
                )
            time.sleep(POLL_S)
    finally:
        app.close()


def run_celery(
    jobs: int,
    workers: int,
    broker_url: str = DEFAULT_BROKER_URL,
    *,
    result_backend: str = DEFAULT_RESULT_BACKEND,
    timeout_s: float = RUN_TIMEOUT_S,
    rate: float | None = None,
) -> dict[str, Any] | None:
    """Run the workload on Celery: one worker node, prefork pool of ``workers`` processes,
    RabbitMQ broker, Redis result backend (the chord needs one).

    Returns None (and prints why) when Celery is not installed or the broker or backend
    cannot be reached. The run uses its own queue/exchange and result-key prefix, deleted
    afterwards. Raises :class:`BenchError` on a timeout, a failed step or a wrong count.
    """
    run_id = f"podmill_bench_{uuid.uuid4().hex[:12]}"
    cfg = {
        "broker": broker_url,
        "backend": result_backend,
        "queue": run_id,
        "prefix": run_id + "_",
        "workers": workers,
    }
    why = _celery_unavailable(cfg)
    if why:
        print(f"celery baseline skipped: {why}", file=sys.stderr)
        return None
    import celery

    with contextlib.ExitStack() as cleanup:  # callbacks run last-in first-out, all of them
        cleanup.callback(_celery_cleanup, cfg)
        log_dir = tempfile.mkdtemp(prefix="podmill-bench-celery-")
        cleanup.callback(shutil.rmtree, log_dir, ignore_errors=True)
        procs: list = []
        cleanup.callback(_stop_processes, procs, kill_group=True)

        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        procs.append(ctx.Process(target=_celery_worker_main, args=(cfg, log_dir, ready)))
        procs[0].start()
        _wait_until(ready.is_set, STARTUP_TIMEOUT_S, "the celery worker", procs)
        seconds = _celery_drive(cfg, jobs, timeout_s, rate)
        _stop_processes(procs, kill_group=True)
        return _result(
            "celery",
            workers,
            jobs,
            seconds,
            _read_records(log_dir),
            version=celery.__version__,
            mode="prefork",
        )


# --------------------------------------------------------------------------- CLI

RUNNERS: dict[str, Callable[..., dict[str, Any] | None]] = {
    "procrastinate": lambda jobs, workers, args: run_procrastinate(
        jobs, workers, args.pg_dsn, timeout_s=args.timeout
    ),
    "celery": lambda jobs, workers, args: run_celery(
        jobs, workers, args.broker_url, result_backend=args.result_backend, timeout_s=args.timeout
    ),
}


def _format(row: dict[str, Any]) -> str:
    return (
        f"system={row['system']} workers={row['workers']} steps={row['steps']} "
        f"seconds={row['seconds']:.2f} steps_per_s={row['steps_per_s']:.1f} "
        f"latency_p50_ms={row['latency_p50_ms']:.1f} latency_p99_ms={row['latency_p99_ms']:.1f} "
        f"max_gap_ms={row['max_gap_ms']:.1f}"
    )


def _runs(args: argparse.Namespace) -> Iterator[dict[str, Any] | str]:
    skipped: set[str] = set()
    for _ in range(args.repeat):  # repeats outermost: background noise spreads over all
        for system in args.systems:
            for workers in args.workers:
                if system in skipped:
                    break
                try:
                    row = RUNNERS[system](args.jobs, workers, args)
                except Exception as exc:  # one bad run (e.g. the server went away) ends only it
                    msg = str(exc).strip().replace("\n", " ") or type(exc).__name__
                    yield f"system={system} workers={workers} error={msg}"
                    continue
                if row is None:
                    skipped.add(system)
                    yield f"system={system} workers={workers} skipped"
                    continue
                yield row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--systems", nargs="+", choices=sorted(RUNNERS), default=["procrastinate", "celery"]
    )
    parser.add_argument("--pg-dsn", default=DEFAULT_PG_DSN)
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL)
    parser.add_argument("--result-backend", default=DEFAULT_RESULT_BACKEND)
    parser.add_argument("--timeout", type=float, default=RUN_TIMEOUT_S, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=1, help="run the whole matrix N times")
    args = parser.parse_args(argv)
    ok = True
    for row in _runs(args):
        if isinstance(row, str):
            ok = ok and "error=" not in row
            print(row, flush=True)
        else:
            print(_format(row), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
