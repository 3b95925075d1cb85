"""Observability with real processes: ``podmill serve`` and ``podmill worker`` on Postgres.

One short job (11 s of audio, Whisper tiny.en) goes through the API; then

- both ``/metrics`` endpoints expose every series of the contract with its labels
  (parsed with prometheus_client's parser), with values the job must have produced;
- every stage's lines in the worker's JSON log carry the job's correlation id (the one
  sent as ``X-Correlation-ID``), its job id and worker id;
- ``/health`` is healthy, turns ``degraded`` once the worker is gone and work is
  queued, and ``unhealthy`` (503) when the API's database connection is cut (through a
  TCP proxy: the shared Postgres server itself keeps running).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import make_url
from tcpproxy import TcpProxy

from podmill.pipeline.dag import STAGE_NAMES
from podmill.platform import Platform
from podmill.settings import Settings
from podmill.storage.db import upgrade

from support.api import free_port, podmill_env, start_server
from support.paths import DEMO
from support.workers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

# The contract (docs/observability.md): family name → label names.
API_SERIES = {
    "podmill_queue_depth": {"stage"},
    "podmill_steps_running": {"stage"},
    "podmill_steps_dead": {"stage"},
    "podmill_workers_alive": set(),
    "podmill_jobs": {"status"},
    "podmill_oldest_running_job_seconds": set(),
    "podmill_http_request_duration_seconds": {"method", "route", "status"},
    "podmill_jobs_submitted": {"via"},
    "podmill_disk_free_bytes": {"path"},
    "podmill_build_info": {"version", "git_sha"},
}
WORKER_SERIES = {
    "podmill_claim_latency_seconds": {"pool"},
    "podmill_stage_duration_seconds": {"stage"},
    "podmill_step_queue_wait_seconds": {"stage"},
    "podmill_step_outcomes": {"stage", "outcome"},
    "podmill_steps_in_flight": {"stage"},
    "podmill_model_load_seconds": {"model"},
    "podmill_model_resident": {"model"},
    "podmill_audio_seconds_processed": set(),
    "podmill_jobs_completed": {"status"},
    "podmill_worker_heartbeat_timestamp_seconds": set(),
    "podmill_disk_free_bytes": {"path"},
    "podmill_build_info": {"version", "git_sha"},
}


def scrape(url: str) -> dict[str, list[Any]]:
    """``/metrics`` at ``url`` → family name → its samples."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(response.text)}


def value(families: dict[str, list[Any]], sample: str, **labels: str) -> float:
    """The value of the one sample named ``sample`` whose labels include ``labels``."""
    family = sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    found = [
        s.value
        for s in families[family]
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (sample, labels, families[family])
    return found[0]


def assert_series(families: dict[str, list[Any]], expected: dict[str, set[str]]) -> None:
    for name, label_names in expected.items():
        assert families.get(name), f"{name} missing from /metrics"
        for sample in families[name]:
            assert set(sample.labels) - {"le"} == label_names, (name, sample)


class Live:
    """The processes of one test: an API through a proxy, a worker, a tenant's key."""

    def __init__(self, tmp_path: Path, pg_url: str) -> None:
        self.tmp_path = tmp_path
        self.data_dir = tmp_path / "data"
        url = make_url(pg_url)
        self.proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        self.api_db = url.set(host="127.0.0.1", port=self.proxy.port).render_as_string(
            hide_password=False
        )
        self.pg_url = pg_url
        upgrade(pg_url)
        platform = Platform(Settings(data_dir=self.data_dir, db=pg_url))
        platform.create_tenant("ops")
        _, self.key = platform.create_key("ops")
        platform.close()
        self.server = start_server(
            self.api_db,
            self.data_dir,
            tmp_path / "api.log",
            env={"PODMILL_LOG_FORMAT": "json"},
            args=("--no-background",),
        )
        self.api = self.server.client(self.key)
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_log = tmp_path / "worker.log"
        self.metrics_port = free_port()

    def start_worker(self) -> None:
        with self.worker_log.open("wb") as log:
            self.worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "podmill",
                    "worker",
                    "--db",
                    self.pg_url,
                    "--log-format",
                    "json",
                    "--metrics-port",
                    str(self.metrics_port),
                    "--metrics-host",
                    "127.0.0.1",
                    "--pool",
                    "io=2",
                    "--pool",
                    "asr=1",
                    "--pool",
                    "cpu=2",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=podmill_env(),
            )
        wait_for(self.worker_answers, 60, "the worker's /health", detail=self.worker_text)

    def worker_answers(self) -> bool:
        assert self.worker is not None and self.worker.poll() is None, self.worker_text()
        return httpx.get(self.worker_url("/health"), timeout=2).status_code == 200

    def worker_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.metrics_port}{path}"

    def worker_text(self) -> str:
        return self.worker_log.read_text(errors="replace")

    def submit(self, audio: Path, headers: dict[str, str] | None = None) -> httpx.Response:
        with audio.open("rb") as fh:
            response = self.api.post(
                "/jobs", files={"file": (audio.name, fh, "audio/mpeg")}, headers=headers or {}
            )
        assert response.status_code == 202, response.text
        return response

    def health(self) -> tuple[int, dict[str, Any]]:
        response = httpx.get(self.server.url + "/health", timeout=30)
        return response.status_code, response.json()

    def close(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.kill()
            self.worker.wait(timeout=10)
        self.api.close()
        self.server.stop()
        self.proxy.close()


@pytest.fixture
def live(tmp_path: Path, postgres_url: str) -> Iterator[Live]:
    running = Live(tmp_path, postgres_url)
    try:
        yield running
    finally:
        running.close()


def test_metrics_logs_and_health_of_a_real_job(live: Live) -> None:
    live.start_worker()
    cid = f"obs-test-{uuid.uuid4().hex[:12]}"
    response = live.submit(DEMO / "jfk.flac", headers={"X-Correlation-ID": cid})
    job = response.json()["job"]
    assert response.headers["x-correlation-id"] == cid
    assert job["correlation_id"] == cid

    def done() -> bool:
        status = live.api.get(f"/jobs/{job['id']}").json()["status"]
        assert status in ("pending", "running", "done"), live.worker_text()
        return status == "done"

    wait_for(done, 120, f"job {job['id']} to finish", detail=live.worker_text)

    # ---- /metrics: the worker's own series, and the fleet's from the API
    worker = scrape(live.worker_url("/metrics"))
    assert_series(worker, WORKER_SERIES)
    for stage in STAGE_NAMES:
        assert value(worker, "podmill_stage_duration_seconds_count", stage=stage) == 1
        assert value(worker, "podmill_step_outcomes_total", stage=stage, outcome="done") == 1
        assert value(worker, "podmill_steps_in_flight", stage=stage) == 0
    assert value(worker, "podmill_jobs_completed_total", status="done") == 1
    assert 10 < value(worker, "podmill_audio_seconds_processed_total") < 13  # jfk: 11 s
    loads = [s for s in worker["podmill_model_load_seconds"] if s.name.endswith("_count")]
    assert any(s.labels["model"].startswith("whisper:tiny.en") for s in loads), loads
    assert value(worker, "podmill_worker_heartbeat_timestamp_seconds") > 0

    api = scrape(live.server.url + "/metrics")
    assert_series(api, API_SERIES)
    assert value(api, "podmill_jobs", status="done") == 1
    assert value(api, "podmill_workers_alive") == 1
    assert value(api, "podmill_database_up") == 1
    assert value(api, "podmill_jobs_submitted_total", via="api") == 1
    routes = {s.labels["route"] for s in api["podmill_http_request_duration_seconds"]}
    assert "/jobs/{job_id}" in routes  # the template, never /jobs/1
    assert not any(route.startswith("/jobs/") and "{" not in route for route in routes)

    # ---- logs: every stage's lines carry the job's correlation id
    lines = [json.loads(line) for line in live.worker_text().splitlines() if line.startswith("{")]
    assert lines, live.worker_text()
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    step_lines = [line for line in lines if "stage" in line]
    assert {line["stage"] for line in step_lines} == set(STAGE_NAMES)
    for line in step_lines:
        assert line["correlation_id"] == cid, line
        assert line["job_id"] == job["id"], line
        assert line["worker_id"], line
    # library loggers too (faster-whisper reports the audio it processes)
    assert any(not line["logger"].startswith("podmill") for line in step_lines), step_lines

    # ---- health: healthy, then degraded without workers, then unhealthy without a DB
    status, health = live.health()
    assert (status, health["status"]) == (200, "healthy"), health
    assert health["checks"]["workers"]["alive"] == 1
    assert health["git_sha"] and health["version"]
    worker_status = httpx.get(live.worker_url("/health"), timeout=10).json()
    assert worker_status["status"] == "healthy", worker_status
    assert worker_status["checks"]["in_flight"]["count"] == 0

    assert live.worker is not None
    live.worker.send_signal(signal.SIGTERM)
    assert live.worker.wait(timeout=30) == 0, live.worker_text()
    queued = live.submit(DEMO / "sonnet001.mp3").json()["job"]  # no worker to take it
    assert queued["status"] == "pending"
    status, health = live.health()
    assert (status, health["status"]) == (200, "degraded"), health
    assert health["checks"]["workers"]["status"] == "degraded"
    assert health["checks"]["workers"]["alive"] == 0

    def queued_on_metrics() -> bool:
        found = scrape(live.server.url + "/metrics")  # cached up to 2 s
        return (
            value(found, "podmill_queue_depth", stage="fetch") == 1
            and value(found, "podmill_oldest_running_job_seconds") > 0
        )

    wait_for(queued_on_metrics, 10, "the queued job on the API's /metrics")

    live.proxy.close()  # the API's database is gone
    status, health = live.health()
    assert (status, health["status"]) == (503, "unhealthy"), health
    assert health["checks"]["database"]["status"] == "unhealthy"
    assert health["checks"]["workers"]["status"] == "unknown"
    # /metrics still answers; the fleet gauges go absent rather than stale
    wait_for(
        lambda: value(scrape(live.server.url + "/metrics"), "podmill_database_up") == 0,
        15,
        "podmill_database_up 0",
    )
    assert "podmill_queue_depth" not in scrape(live.server.url + "/metrics")
