"""At least once, no duplicates after dedupe: real processes killed with SIGKILL on both
sides of a stream delivery, a real Redis consumer group in between.

1. The notifier process dies after its XADD and before it records the delivery: its
   claim lapses and the result is XADDed again (two entries, one job id).
2. A consumer dies after processing an entry and before XACK: another consumer of the
   group claims the pending entry (XAUTOCLAIM) and processes it again.

The consumer keeps one result per ``job_id`` (``HSETNX``, docs/delivery.md): three
processings of two entries leave exactly one result.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from podmill.api.webhooks import CLAIM_SECONDS, Notifier
from podmill.engine.clock import ManualClock
from podmill.platform import Platform
from podmill.platform.tables import REQUESTS
from podmill.settings import Settings

from support.api import Caller, make_settings, podmill_env
from support.streams import (
    REDIS_HOSTPORT,
    REDIS_URL,
    entries,
    publish_set,
    redis_client,
    stream_url,
    unique_stream,
)
from support.workers import finish_job

GROUP = "consumers"

# The notifier, as `podmill scheduler` runs it, killed between XADD and recording it.
NOTIFIER = """
import json, os, signal, sys
from podmill.api.webhooks import Notifier
from podmill.platform import Platform
from podmill.platform.streams import StreamSender
from podmill.settings import Settings

class KilledAfterXadd(StreamSender):
    def send(self, url, result):
        entry = super().send(url, result)
        os.kill(os.getpid(), signal.SIGKILL)  # XADDed; the delivery is not recorded
        return entry

settings = Settings.model_validate(json.loads(sys.argv[1]))
Notifier(Platform(settings), streams=KilledAfterXadd(5.0)).deliver_due()
"""

# A consumer of the group that records a result (once per job id) and dies before XACK.
CONSUMER = """
import os, signal, sys
import redis
client = redis.Redis.from_url(sys.argv[1])
stream, group, results = sys.argv[2:5]
[(_stream, [(entry_id, fields)])] = client.xreadgroup(group, "doomed", {stream: ">"}, count=1)
client.hsetnx(results, fields[b"job_id"], fields[b"result"])
client.rpush(results + ":processed", entry_id)
os.kill(os.getpid(), signal.SIGKILL)  # processed, never acknowledged
"""


def consume(client: Any, stream: str, results: str) -> None:
    """The documented consumer: claim what a dead consumer left pending, then read new
    entries; keep one result per job id; acknowledge after recording."""
    _next, claimed, _deleted = client.xautoclaim(stream, GROUP, "survivor", 0, "0-0")
    fresh = client.xreadgroup(GROUP, "survivor", {stream: ">"}, count=100) or [(stream, [])]
    for entry_id, fields in claimed + fresh[0][1]:
        client.hsetnx(results, fields[b"job_id"], fields[b"result"])  # dedupe by job id
        client.rpush(results + ":processed", entry_id)
        client.xack(stream, GROUP, entry_id)


@pytest.fixture
def redis() -> Any:
    return redis_client()


@pytest.fixture
def stream(redis: Any) -> Iterator[str]:
    name = unique_stream("redelivery")
    redis.xgroup_create(name, GROUP, id="0", mkstream=True)
    try:
        yield name
    finally:
        redis.delete(name, f"{name}:results", f"{name}:results:processed")


@pytest.fixture
def api_settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url, stream_hosts=[REDIS_HOSTPORT])


def run_killed(script: str, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=podmill_env(),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode(errors="replace")


def test_redelivery_after_kills_on_both_sides_leaves_one_result(
    alice: Caller, platform: Platform, api_settings: Settings, redis: Any, stream: str
) -> None:
    job = alice.post(
        "/jobs", json={"url": "http://127.0.0.1:9/a.mp3", "reply_to": stream_url(stream)}
    ).json()["job"]
    finish_job(platform.store, job["id"])
    publish_set(platform.artifacts, job["episode_key"], job["fingerprint"])

    run_killed(NOTIFIER, api_settings.model_dump_json())
    assert [e["job_id"] for e in entries(redis, stream)] == [str(job["id"])]
    with platform.reader.connect() as conn:
        row = conn.execute(select(REQUESTS).where(REQUESTS.c.job_id == job["id"])).one()
    assert row.replied_at is None and row.reply_attempts == 0  # the XADD was not recorded

    # the dead notifier's claim lapses; the next pass delivers again
    clock = ManualClock(datetime.now(UTC) + timedelta(seconds=CLAIM_SECONDS + 1))
    [again] = Notifier(platform, clock=clock).deliver_due()
    assert again.delivered
    assert [e["job_id"] for e in entries(redis, stream)] == [str(job["id"])] * 2
    assert alice.get(f"/jobs/{job['id']}").json()["reply"]["delivered_at"] is not None

    results = f"{stream}:results"
    run_killed(CONSUMER, REDIS_URL, stream, GROUP, results)
    assert redis.xpending(stream, GROUP)["pending"] == 1  # the doomed consumer's entry
    consume(redis, stream, results)

    assert redis.llen(results + ":processed") == 3  # entry 1 twice, entry 2 once
    assert redis.xpending(stream, GROUP)["pending"] == 0
    kept = redis.hgetall(results)
    assert list(kept) == [str(job["id"]).encode()]  # one result for the one job
    result = json.loads(kept[str(job["id"]).encode()])
    assert result["job_id"] == job["id"] and result["job"]["status"] == "done"
    assert [t["title"] for t in result["tree"]["topics"]] == ["Rivers", "Bridges"]
