"""Engine throughput and latency: podmill's step engine against established queues.

The real stage graph (10 steps per job, with the join) and no-op stage functions
(``PODMILL_TEST_NOOP_STAGES=1``), run by real ``podmill worker`` processes on SQLite and
on Postgres with 1, 2 and 4 workers; then, in the same run, the same graph on
procrastinate (and Celery with RabbitMQ when it is installed) from
``bench/baselines.py``. Prints steps/s, enqueue→start latency p50/p99, and our/their
ratios.

    python bench/engine.py [--jobs 200] [--workers 1 2 4] [--no-baselines]
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

from sqlalchemy import create_engine, text

from podmill.engine.store import Store
from podmill.pipeline.dag import STAGES
from podmill.storage import db

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


def run_podmill(url: str, jobs: int, workers: int, data_dir: Path) -> dict[str, object]:
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
                "cpu=4",
                "--pool",
                "io=4",
                "--pool",
                "asr=4",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--no-baselines", action="store_true")
    args = parser.parse_args()
    results: dict[tuple[str, int], dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.workers:
            url = f"sqlite:///{tmp}/bench-{n}.db"
            results[("podmill-sqlite", n)] = run_podmill(url, args.jobs, n, Path(tmp))
            pg_url, schema = _postgres_url()
            try:
                results[("podmill-postgres", n)] = run_podmill(pg_url, args.jobs, n, Path(tmp))
            finally:
                _drop_schema(schema)
    if not args.no_baselines:
        sys.path.insert(0, str(Path(__file__).parent))
        import baselines

        dsn = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
        for n in args.workers:
            results[("procrastinate", n)] = baselines.run_procrastinate(args.jobs, n, dsn)
            celery = baselines.run_celery(args.jobs, n)
            if celery:
                results[("celery", n)] = celery
    print(f"{'system':<18}{'workers':>8}{'steps':>8}{'steps/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for (system, n), r in results.items():
        print(
            f"{system:<18}{n:>8}{r['steps']:>8}{r['steps_per_s']:>10.0f}"
            f"{r['latency_p50_ms']:>9.1f}{r['latency_p99_ms']:>9.1f}"
        )
    for n in args.workers:
        ours = results.get(("podmill-postgres", n))
        for other in ("procrastinate", "celery"):
            theirs = results.get((other, n))
            if ours and theirs:
                print(
                    f"ratio podmill-postgres/{other} workers={n}: "
                    f"throughput={ours['steps_per_s'] / theirs['steps_per_s']:.2f} "
                    f"p50_latency={ours['latency_p50_ms'] / theirs['latency_p50_ms']:.2f}"
                )


if __name__ == "__main__":
    main()
