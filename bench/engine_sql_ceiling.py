"""The SQL ceiling of the engine on Postgres: how fast claim/complete could go.

A prototype, not the engine: one thread claims up to ``--batch`` fetchable steps of the
real stage graph with ONE statement (a CTE: select ``FOR UPDATE SKIP LOCKED``, stamp,
mark jobs running), completes them with ONE fenced statement (``unnest`` of ids,
tokens and durations) and unblocks successors with one statement per finished stage,
through psycopg directly, no SQLAlchemy, no step execution. It leaves out what the
engine also does (resource locks, finishing jobs, NOTIFY, threads), so it is an upper
bound to compare ``bench/engine.py`` against, and the plan for the engine's next step.

    python bench/engine_sql_ceiling.py [--jobs 200] [--batch 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psycopg

from podmill.engine.store import Store, libpq_dsn
from podmill.pipeline.dag import STAGE_NAMES, successors
from podmill.storage import db

sys.path.insert(0, str(Path(__file__).parent))
from engine import _drop_schema, _postgres_url

CLAIM = """
WITH picked AS (
    SELECT s.id FROM steps s JOIN jobs j ON j.id = s.job_id
    WHERE s.status = 'pending' AND s.enqueued_at IS NOT NULL
      AND (s.not_before IS NULL OR s.not_before <= now())
      AND s.stage = ANY(%(stages)s) AND s.resource_key IS NULL
      AND s.stage NOT IN (SELECT stage FROM paused_stages) AND j.status <> 'cancelled'
    ORDER BY s.enqueued_at, s.id LIMIT %(limit)s
    FOR UPDATE OF s SKIP LOCKED
), stamped AS (
    UPDATE steps SET status = 'running', worker_id = %(w)s,
        lease_token = replace(gen_random_uuid()::text, '-', ''),
        lease_expires_at = now() + interval '30 seconds', attempts = attempts + 1,
        started_at = now(), finished_at = NULL
    FROM picked WHERE steps.id = picked.id
    RETURNING steps.id, steps.job_id, steps.stage, steps.attempts, steps.lease_token
), jobs_running AS (
    UPDATE jobs SET status = 'running', started_at = coalesce(started_at, now())
    WHERE id IN (SELECT job_id FROM stamped) AND status = 'pending'
)
SELECT st.id, st.job_id, st.stage, st.attempts, st.lease_token, j.payload
FROM stamped st JOIN jobs j ON j.id = st.job_id
"""
COMPLETE = """
UPDATE steps SET status = 'done', finished_at = now(), lease_token = NULL,
    lease_expires_at = NULL, duration_seconds = d.dur
FROM unnest(%(ids)s::int[], %(tokens)s::text[], %(durs)s::float8[]) AS d(id, token, dur)
WHERE steps.id = d.id AND steps.lease_token = d.token AND steps.status = 'running'
RETURNING steps.id, steps.job_id, steps.stage
"""
UNBLOCK = """
UPDATE steps SET deps_remaining = deps_remaining - 1,
    status = CASE WHEN deps_remaining = 1 THEN 'pending' ELSE status END,
    enqueued_at = CASE WHEN deps_remaining = 1 THEN now() ELSE enqueued_at END
WHERE job_id = ANY(%(jobs)s) AND stage = ANY(%(following)s)
  AND status = 'waiting' AND deps_remaining > 0
RETURNING stage, status
"""


def run(jobs: int, batch: int) -> float:
    url, schema = _postgres_url()
    try:
        db.upgrade(url)
        store = Store(url)
        payload = {"episode": {"episode_key": "x", "title": "x"}, "settings": {}}
        for i in range(jobs):
            store.submit(f"ceiling-{i}", "fp", payload)
        store.close()
        with psycopg.connect(libpq_dsn(url)) as conn:
            steps = 0
            started = time.perf_counter()
            while True:
                rows = conn.execute(
                    CLAIM, {"stages": list(STAGE_NAMES), "limit": batch, "w": "ceiling"}
                ).fetchall()
                conn.commit()
                if not rows:
                    break
                done = conn.execute(
                    COMPLETE,
                    {
                        "ids": [r[0] for r in rows],
                        "tokens": [r[4] for r in rows],
                        "durs": [0.0] * len(rows),
                    },
                ).fetchall()
                by_stage: dict[str, list[int]] = {}
                for _, job, stage in done:
                    by_stage.setdefault(stage, []).append(job)
                for stage in sorted(by_stage, key=STAGE_NAMES.index):
                    if successors(stage):
                        conn.execute(
                            UNBLOCK, {"jobs": by_stage[stage], "following": list(successors(stage))}
                        ).fetchall()
                conn.commit()
                steps += len(rows)
            seconds = time.perf_counter() - started
        if steps != jobs * len(STAGE_NAMES):
            raise SystemExit(f"ran {steps} steps, expected {jobs * len(STAGE_NAMES)}")
        return steps / seconds
    finally:
        _drop_schema(schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    rate = run(args.jobs, args.batch)
    print(f"sql ceiling, one thread, batch {args.batch}: {rate:.0f} steps/s")


if __name__ == "__main__":
    main()
