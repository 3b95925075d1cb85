"""API latency under concurrent load: ``podmill serve`` with 10,000 episodes.

Fills a database (SQLite file, then a fresh Postgres schema) with one feed of N episodes
and a job per episode (10 steps each), a tenant subscribed to the feed who requested
every job, starts ``podmill serve`` as a real process, and drives it with an async
client at a fixed concurrency. Prints p50/p99 of ``GET /jobs/{id}`` (random ids) and
``GET /episodes`` (the newest page, and a page filtered by status), and their ratio to
``GET /health`` (the same server and client doing no database work) as the baseline.

    python bench/api.py [--episodes 10000] [--requests 2000] [--concurrency 16]
                        [--server-workers 1] [--only sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from podmill.pipeline.dag import STAGES
from podmill.platform import Platform
from podmill.platform.tables import EPISODES, FEEDS, JOBS, REQUESTS, SUBSCRIPTIONS
from podmill.settings import Settings
from podmill.storage import db
from podmill.storage.models import StepRow

PG_ADMIN = os.environ.get("PODMILL_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
STEPS = StepRow.__table__


def fill(url: str, data_dir: Path, episodes: int) -> str:
    """N episodes of one feed, a done job per episode, tenant ``bench`` entitled to all.
    Returns the tenant's key."""
    db.upgrade(url)
    settings = Settings(db=url, data_dir=data_dir)
    platform = Platform(settings)
    fp = platform.fingerprint
    tenant = platform.create_tenant("bench")
    _id, key = platform.create_key("bench")
    now = datetime.now(UTC)
    with platform.engine.begin() as conn:
        feed_id = conn.execute(
            FEEDS.insert().values(
                feed_key="benchfeed",
                url="http://bench.invalid/feed.xml",
                title="Bench",
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        conn.execute(
            SUBSCRIPTIONS.insert().values(tenant_id=tenant.id, feed_id=feed_id, created_at=now)
        )
        conn.execute(
            EPISODES.insert(),
            [
                {
                    "episode_key": f"ep{n:014d}",
                    "feed_id": feed_id,
                    "guid": f"guid-{n}",
                    "title": f"Episode {n}",
                    "audio_url": f"http://bench.invalid/{n}.mp3",
                    "published_at": now - timedelta(hours=n),
                    "metadata_json": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(episodes)
            ],
        )
        statuses = ["done", "done", "done", "running", "pending", "failed"]
        conn.execute(
            JOBS.insert(),
            [
                {
                    "id": n + 1,
                    "episode_key": f"ep{n:014d}",
                    "fingerprint": fp,
                    "status": statuses[n % len(statuses)],
                    "created_at": now,
                    "payload": {},
                }
                for n in range(episodes)
            ],
        )
        conn.execute(
            STEPS.insert(),
            [
                {
                    "job_id": n + 1,
                    "stage": s.name,
                    "status": "done",
                    "attempts": 1,
                    "max_attempts": s.retry.max_attempts,
                    "profile": s.profile,
                    "deps_remaining": 0,
                    "released_count": 0,
                    "duration_seconds": 0.5,
                }
                for n in range(episodes)
                for s in STAGES
            ],
        )
        conn.execute(
            REQUESTS.insert(),
            [
                {"tenant_id": tenant.id, "job_id": n + 1, "created_at": now, "reply_attempts": 0}
                for n in range(episodes)
            ],
        )
        if platform.dialect == "postgresql":
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence('jobs', 'id'), :n)"), {"n": episodes}
            )
            conn.execute(text("ANALYZE"))
    platform.close()
    return key


def start_server(url: str, data_dir: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODMILL_")}
    env["PODMILL_LOG_LEVEL"] = "WARNING"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "podmill",
            "serve",
            "--port",
            str(port),
            "--db",
            url,
            "--data-dir",
            str(data_dir),
            "--no-background",
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("podmill serve did not start")


async def load(base: str, key: str, paths: list[str], concurrency: int) -> list[float]:
    """Latency (ms) of each request, ``concurrency`` in flight at a time."""
    latencies: list[float] = []
    queue = list(paths)
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=30
    ) as client:

        async def one_worker() -> None:
            while queue:
                path = queue.pop()
                started = time.perf_counter()
                response = await client.get(path)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")

        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
    return latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def bench(name: str, url: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        started = time.monotonic()
        key = fill(url, data_dir, args.episodes)
        print(
            f"\n{name}, {args.server_workers} server process(es): {args.episodes} episodes, "
            f"jobs and {args.episodes * len(STAGES)} steps in {time.monotonic() - started:.1f} s; "
            f"concurrency {args.concurrency}, "
            f"{args.requests} requests per route"
        )
        proc, base = start_server(url, data_dir, args.server_workers)
        try:
            rng = random.Random(1)
            cases = {
                "GET /health (baseline)": ["/health"] * args.requests,
                "GET /jobs/{id}": [
                    f"/jobs/{rng.randint(1, args.episodes)}" for _ in range(args.requests)
                ],
                "GET /episodes": ["/episodes"] * args.requests,
                "GET /episodes?status=failed": ["/episodes?status=failed"] * args.requests,
            }
            asyncio.run(load(base, key, ["/jobs/1", "/episodes"] * 50, args.concurrency))  # warm up
            baseline = None
            print(
                f"  {'route':<30} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'p50 / baseline':>15}"
            )
            for label, paths in cases.items():
                t0 = time.perf_counter()
                lat = asyncio.run(load(base, key, paths, args.concurrency))
                rate = len(lat) / (time.perf_counter() - t0)
                p50, p99 = pct(lat, 50), pct(lat, 99)
                baseline = baseline or p50
                print(f"  {label:<30} {p50:8.1f} {p99:8.1f} {rate:8.0f} {p50 / baseline:14.1f}x")
        finally:
            proc.terminate()
            proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--server-workers", type=int, default=1, help="podmill serve --workers")
    args = parser.parse_args()
    if args.only != "postgres":
        with tempfile.TemporaryDirectory() as tmp:
            bench("SQLite", f"sqlite:///{tmp}/bench.db", args)
    if args.only != "sqlite":
        schema = f"bench_api_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            bench("Postgres", f"{PG_ADMIN}?options=-csearch_path%3D{schema}", args)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.dispose()


if __name__ == "__main__":
    main()
