"""Health rules, and the fleet's state read from a real database (SQLite)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from podmill.domain import Episode
from podmill.engine.clock import ManualClock
from podmill.engine.health import api_health, worker_health
from podmill.engine.store import Store
from podmill.engine.worker import Worker
from podmill.ml.preflight import check_gpu, check_models
from podmill.obs import health
from podmill.obs.health import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    Check,
    check_backlog,
    check_disk,
    check_workers,
    http_status,
    overall,
)
from podmill.pipeline.dag import STAGE_NAMES
from podmill.settings import Settings
from podmill.storage.db import make_engine, upgrade
from podmill.storage.fleet import FleetCache, read_fleet

from support.api import free_port


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[Settings, Store, ManualClock]]:
    url = f"sqlite:///{tmp_path / 'podmill.db'}"
    upgrade(url)
    clock = ManualClock(datetime.now(UTC))
    store = Store(url, clock=clock)
    settings = Settings(data_dir=tmp_path, db=url)
    try:
        yield settings, store, clock
    finally:
        store.close()


def submit(store: Store, key: str) -> int:
    episode = Episode(episode_key=key, title=key, audio_url=None)
    job_id, _ = store.submit(key, "fp", {"episode": episode.to_dict(), "settings": {}})
    return job_id


def test_overall_is_the_worst_check() -> None:
    assert overall({}) == HEALTHY
    assert overall({"a": Check(HEALTHY), "b": Check("unknown")}) == HEALTHY
    assert overall({"a": Check(DEGRADED), "b": Check(HEALTHY)}) == DEGRADED
    assert overall({"a": Check(DEGRADED), "b": Check(UNHEALTHY)}) == UNHEALTHY
    assert http_status({"status": DEGRADED}) == 200
    assert http_status({"status": UNHEALTHY}) == 503


def test_backlog_workers_and_disk_rules(tmp_path: Path) -> None:
    assert check_backlog(100, 100).status == HEALTHY
    assert check_backlog(101, 100).status == DEGRADED
    assert check_workers(alive=0, ready=0).status == HEALTHY  # a quiet install
    assert check_workers(alive=0, ready=3).status == DEGRADED
    assert check_workers(alive=2, ready=500).status == HEALTHY  # busy is the backlog's call
    free = shutil.disk_usage(tmp_path).free
    margin = 10 * 1024**3  # other processes write meanwhile
    assert check_disk(tmp_path, free - margin, 0).status == HEALTHY
    low = check_disk(tmp_path, free + margin, 0)
    assert low.status == DEGRADED and low.data["free_bytes"] > 0
    assert check_disk(tmp_path, free + margin, free + margin).status == UNHEALTHY
    # a data dir that does not exist yet: the filesystem it will be created on
    assert check_disk(tmp_path / "not" / "yet", 0, 0).status == HEALTHY


def test_the_fleet_counts_ready_running_dead_and_live_workers(
    db: tuple[Settings, Store, ManualClock],
) -> None:
    _, store, clock = db
    engine = store.engine
    empty = read_fleet(engine, stages=STAGE_NAMES, stale_seconds=60, now=clock.now())
    assert empty.ready_total == 0 and empty.workers_alive == 0
    assert empty.oldest_unfinished_job_seconds == 0
    first, second, third = (submit(store, f"ep-{i}") for i in range(3))
    clock.advance(30)
    store.register_worker("w1", "host", 1, {"io": 1})
    [retried] = store.claim("w1", ["fetch"])
    assert store.fail(retried.step_id, retried.lease_token, "flaky") == "retry"  # backs off
    [dead] = store.claim("w1", ["fetch"])
    store.fail(dead.step_id, dead.lease_token, "bad input", retryable=False)
    [running] = store.claim("w1", ["fetch"])
    assert {retried.job_id, dead.job_id, running.job_id} == {first, second, third}
    state = read_fleet(engine, stages=STAGE_NAMES, stale_seconds=60, now=clock.now())
    assert state.queue_depth["fetch"] == 0  # the retried step waits out its back-off
    assert state.running["fetch"] == 1 and state.dead["fetch"] == 1
    assert state.jobs["failed"] == 1 and state.jobs["running"] + state.jobs["pending"] == 2
    assert state.workers_alive == 1
    assert state.oldest_unfinished_job_seconds == pytest.approx(30, abs=1)
    later = read_fleet(
        engine, stages=STAGE_NAMES, stale_seconds=60, now=clock.now() + timedelta(hours=1)
    )
    assert later.queue_depth["fetch"] == 1  # back-off passed: ready again
    assert later.workers_alive == 0  # heartbeat an hour old


def test_api_health_follows_the_queue_and_the_workers(
    db: tuple[Settings, Store, ManualClock],
) -> None:
    settings, store, clock = db
    engine = make_engine(settings.database_url)
    document = api_health(settings, engine)
    assert document["status"] == HEALTHY, document
    assert set(document["checks"]) == {"database", "backlog", "workers", "disk", "models"}
    assert document["checks"]["database"]["latency_ms"] >= 0
    submit(store, "queued")
    document = api_health(settings, engine)
    assert document["status"] == DEGRADED
    assert document["checks"]["workers"] == {
        "status": DEGRADED,
        "alive": 0,
        "ready": 1,
        "detail": "no live worker while 1 steps are ready to run",
    }
    store.register_worker("w1", "host", 1, {"io": 1})  # heartbeat: the clock's now
    assert api_health(settings, engine)["status"] == HEALTHY
    clock.advance(settings.health.worker_stale_seconds + 1)
    store.heartbeat("w1")  # fresh again
    assert api_health(settings, engine)["status"] == HEALTHY
    store.set_worker_status("w1", "stopped")
    assert api_health(settings, engine)["checks"]["workers"]["status"] == DEGRADED
    busy = settings.model_copy(
        update={"health": settings.health.model_copy(update={"backlog_threshold": 0})}
    )
    assert api_health(busy, engine)["checks"]["backlog"]["status"] == DEGRADED
    engine.dispose()


def test_an_unreachable_database_is_unhealthy(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none?connect_timeout=2"
    settings = Settings(data_dir=tmp_path, db=url)
    engine = make_engine(url)
    document = api_health(settings, engine)
    assert document["status"] == UNHEALTHY and http_status(document) == 503
    assert document["checks"]["database"]["status"] == UNHEALTHY
    assert "unreachable" in document["checks"]["database"]["detail"]
    assert document["checks"]["backlog"]["status"] == "unknown"
    engine.dispose()


def test_fleet_cache_reads_at_most_once_per_ttl(
    db: tuple[Settings, Store, ManualClock],
) -> None:
    _, store, _ = db
    cached = FleetCache(store.engine, stages=STAGE_NAMES, stale_seconds=60, ttl=3600)
    assert cached.get().ready_total == 0
    submit(store, "later")
    assert cached.get().ready_total == 0  # the cached reading
    fresh = FleetCache(store.engine, stages=STAGE_NAMES, stale_seconds=60, ttl=0)
    assert fresh.get().ready_total == 1


def test_models_and_gpu_checks(tmp_path: Path) -> None:
    pytest.importorskip("faster_whisper")
    settings = Settings(data_dir=tmp_path)
    assert check_models(settings).status == HEALTHY
    assert check_gpu(settings) is None  # not configured: no gpu entry
    missing = tmp_path / "absent.gguf"
    local = Settings(
        data_dir=tmp_path,
        topics={"backend": "llm"},
        llm={"backend": "local", "gguf_path": str(missing)},
    )
    check = check_models(local)
    assert check.status == DEGRADED and str(missing) in check.detail
    cuda = Settings(data_dir=tmp_path, asr={"device": "cuda"})
    gpu = check_gpu(cuda)
    assert gpu is not None
    assert gpu.status == (HEALTHY if gpu.data["devices"] > 0 else DEGRADED)


def test_git_sha_from_the_environment_then_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    health.git_sha.cache_clear()
    monkeypatch.setenv("PODMILL_GIT_SHA", "abc1234")
    try:
        assert health.git_sha() == "abc1234"
        health.git_sha.cache_clear()
        monkeypatch.delenv("PODMILL_GIT_SHA")
        here = Path(health.__file__).parent
        expected = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True
        ).stdout.strip()
        assert health.git_sha() == (expected or "unknown")
    finally:
        health.git_sha.cache_clear()


def test_worker_health_follows_its_own_heartbeat(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'podmill.db'}"
    upgrade(url)
    store = Store(url, lease_seconds=30)
    settings = Settings(data_dir=tmp_path, db=url)
    worker = Worker(store, {"io": 1}, worker_id="w-health")
    try:
        first = worker_health(worker, settings)
        assert first["checks"]["heartbeat"]["status"] == DEGRADED  # none written yet
        assert first["worker_id"] == "w-health"
        assert first["checks"]["in_flight"] == {
            "status": HEALTHY,
            "count": 0,
            "steps": [],
            "stopping": False,
            "detail": "0 step(s) running",
        }
        for age, status in ((1, HEALTHY), (25, DEGRADED), (31, UNHEALTHY)):
            worker.last_heartbeat = time.time() - age
            document = worker_health(worker, settings)
            assert document["checks"]["heartbeat"]["status"] == status, (age, document)
        assert document["status"] == UNHEALTHY and http_status(document) == 503
        worker.stop()
        assert worker_health(worker, settings)["checks"]["in_flight"]["stopping"] is True
    finally:
        store.close()


def test_the_fleet_reads_the_search_index_size_by_kind(
    db: tuple[Settings, Store, ManualClock],
) -> None:
    from sqlalchemy import insert

    from podmill.storage.fleet import SEARCH_DOCS

    _, store, clock = db
    assert read_fleet(store.engine, stages=STAGE_NAMES, stale_seconds=60).search_docs == {}
    submit(store, "ep-1")  # the episode row the documents belong to
    row = {
        "episode_key": "ep-1",
        "fingerprint": "fp",
        "node_id": "n",
        "level": 0,
        "start_seconds": 0.0,
        "end_seconds": 1.0,
        "title": "t",
        "body": "b",
        "created_at": clock.now(),
    }
    kinds = ("node", "passage", "passage")
    with store.engine.begin() as conn:
        conn.execute(
            insert(SEARCH_DOCS),
            [{**row, "doc_key": f"d{i}", "kind": kind} for i, kind in enumerate(kinds)],
        )
    state = read_fleet(store.engine, stages=STAGE_NAMES, stale_seconds=60)
    assert state.search_docs == {"node": 1, "passage": 2}


def test_the_api_exports_the_index_size() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from podmill.obs.metrics import FleetCollector
    from podmill.storage.fleet import FleetState

    class Cache:
        def get(self) -> FleetState:
            return FleetState(search_docs={"node": 4, "passage": 37})

    registry = CollectorRegistry()
    registry.register(FleetCollector(Cache()))
    text = generate_latest(registry).decode()
    assert 'podmill_search_index_documents{kind="node"} 4.0' in text
    assert 'podmill_search_index_documents{kind="passage"} 37.0' in text
