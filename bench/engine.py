"""Engine throughput and latency: podmill's step engine against established queues.

The real stage graph (10 steps per job, with the join) and no-op stage functions
(``PODMILL_TEST_NOOP_STAGES=1``), run by real ``podmill worker`` processes on SQLite and
on Postgres with 1, 2 and 4 workers; then, in the same run, the same graph on
procrastinate (and Celery with RabbitMQ when it is installed) from
``bench/baselines.py``. Prints steps/s, enqueue→start latency p50/p99, and our/their
ratios.

    python bench/engine.py [--jobs 300] [--workers 1 2 4] [--pool-slots 32] [--no-baselines]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from podmill.engine.store import Store
from podmill.pipeline.dag import STAGES
from podmill.storage import db

# Slots per pool of each podmill worker (--pool-slots): the claim batch is bounded by
# the free slots, and the batch size is what sets throughput (bench/engine_sql_ceiling.py).
POOL_SLOTS = 32
PG_ADMIN = os.environ.get("PODMILL_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_url() -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(PG_ADMIN)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    return f"{PG_ADMIN}?options=-csearch_path%3D{schema}", schema


def _drop_schema(schema: str) -> None:
    engine = create_engine(PG_ADMIN)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def _ts(value: object) -> datetime:
    # Raw SQL on SQLite returns the stored text; Postgres returns datetimes.
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def run_podmill(
    url: str, jobs: int, workers: int, data_dir: Path, *, rate: float | None = None
) -> dict[str, object]:
    """``jobs`` jobs on ``workers`` worker processes: all at once (``rate=None``: the
    throughput run), or submitted steadily at ``rate`` jobs/s (the latency run)."""
    db.upgrade(url)
    store = Store(url)
    env = {**os.environ, "PODMILL_TEST_NOOP_STAGES": "1", "PODMILL_DB": url}
    payload = {
        "episode": {"episode_key": "x", "title": "x", "audio_url": None},
        "settings": {"data_dir": str(data_dir)},
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "podmill",
                "worker",
                "--db",
                url,
                "--pool",
                f"cpu={POOL_SLOTS}",
                "--pool",
                f"io={POOL_SLOTS}",
                "--pool",
                f"asr={POOL_SLOTS}",
                "--poll",
                "0.05",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        time.sleep(1.5)  # workers up and listening before the clock starts
        started = time.perf_counter()
        for i in range(jobs):
            if rate:
                pause = started + i / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            store.submit(f"bench-{i}", "fp", payload)
        total = jobs * len(STAGES)
        deadline = started + 300
        while time.perf_counter() < deadline:
            with store.engine.connect() as conn:
                done = conn.execute(text("SELECT count(*) FROM steps WHERE status='done'")).scalar()
            if done >= total:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        with store.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT enqueued_at, started_at FROM steps WHERE status='done'")
            ).all()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        store.engine.dispose()
    latencies = sorted(
        (_ts(s) - _ts(e)).total_seconds() * 1000 for e, s in rows if e is not None and s is not None
    )
    return {
        "steps": len(rows),
        "seconds": seconds,
        "steps_per_s": len(rows) / seconds,
        "latency_p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "latency_p99_ms": latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan"),
    }


def _merge(burst: dict[str, Any], paced: dict[str, Any]) -> dict[str, Any]:
    """Throughput from the all-at-once run; hand-off latency from the steady one."""
    return {
        "steps_per_s": burst["steps_per_s"],
        "burst_p50_ms": burst["latency_p50_ms"],
        "p50_ms": paced["latency_p50_ms"],
        "p99_ms": paced["latency_p99_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs in the throughput run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--rate", type=float, default=10.0, help="jobs/s submitted in the latency run"
    )
    parser.add_argument("--latency-jobs", type=int, default=50, help="jobs in the latency run")
    parser.add_argument(
        "--systems",
        nargs="+",
        default=["sqlite", "postgres", "procrastinate", "celery"],
        help="which to run (default all)",
    )
    parser.add_argument("--no-baselines", action="store_true", help="only podmill")
    parser.add_argument("--pool-slots", type=int, default=32, help="slots per pool of each worker")
    args = parser.parse_args()
    global POOL_SLOTS
    POOL_SLOTS = args.pool_slots
    systems = [s for s in args.systems if not args.no_baselines or s in ("sqlite", "postgres")]
    results: dict[tuple[str, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:

        def podmill(kind: str, n: int, jobs: int, rate: float | None) -> dict[str, Any]:
            if kind == "sqlite":
                return run_podmill(
                    f"sqlite:///{tmp}/{uuid.uuid4().hex}.db", jobs, n, Path(tmp), rate=rate
                )
            pg_url, schema = _postgres_url()
            try:
                return run_podmill(pg_url, jobs, n, Path(tmp), rate=rate)
            finally:
                _drop_schema(schema)

        for n in args.workers:
            for kind in ("sqlite", "postgres"):
                if kind in systems:
                    results[(f"podmill-{kind}", n)] = _merge(
                        podmill(kind, n, args.jobs, None),
                        podmill(kind, n, args.latency_jobs, args.rate),
                    )
    if "procrastinate" in systems or "celery" in systems:
        sys.path.insert(0, str(Path(__file__).parent))
        import baselines

        dsn = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
        for n in args.workers:
            if "procrastinate" in systems:
                # as many jobs at once per process as a podmill worker may run steps:
                # its three pools (cpu, io, asr) of --pool-slots each
                concurrency = 3 * args.pool_slots
                results[("procrastinate", n)] = _merge(
                    baselines.run_procrastinate(args.jobs, n, dsn, concurrency=concurrency),
                    baselines.run_procrastinate(
                        args.latency_jobs, n, dsn, rate=args.rate, concurrency=concurrency
                    ),
                )
            if "celery" in systems:
                burst = baselines.run_celery(args.jobs, n)
                if burst:
                    paced = baselines.run_celery(args.latency_jobs, n, rate=args.rate)
                    if paced:
                        results[("celery", n)] = _merge(burst, paced)
    print(
        f"throughput: {args.jobs} jobs at once; latency (enqueue→start): "
        f"{args.latency_jobs} jobs at {args.rate:g} jobs/s ({args.rate * len(STAGES):g} steps/s)"
    )
    print(f"{'system':<18}{'workers':>8}{'steps/s':>10}{'burst p50':>11}{'p50 ms':>9}{'p99 ms':>9}")
    for (system, n), r in results.items():
        print(
            f"{system:<18}{n:>8}{r['steps_per_s']:>10.0f}{r['burst_p50_ms']:>11.1f}"
            f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
        )
    for n in args.workers:
        ours = results.get(("podmill-postgres", n))
        for other in ("procrastinate", "celery"):
            theirs = results.get((other, n))
            if ours and theirs:
                print(
                    f"ratio podmill-postgres/{other} workers={n}: "
                    f"throughput={ours['steps_per_s'] / theirs['steps_per_s']:.2f} "
                    f"p50_latency={ours['p50_ms'] / theirs['p50_ms']:.2f}"
                )


if __name__ == "__main__":
    main()
