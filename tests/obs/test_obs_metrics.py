"""Metrics: the worker's recorder, the API's exposition and request middleware, and
``serve --workers 2`` adding up its processes' counters."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from podmill.api.app import create_app
from podmill.obs.metrics import Recorder, WorkerMetrics, install, recorder
from podmill.pipeline.dag import STAGE_NAMES
from podmill.settings import Settings
from podmill.storage.db import upgrade

from support.api import free_port, podmill_env, start_server
from support.paths import DEMO
from support.workers import wait_for


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as ``(name, sorted labels) → value``."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def get(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def test_worker_metrics_record_what_the_engine_reports(tmp_path: Path) -> None:
    metrics = WorkerMetrics(tmp_path, pools=["asr", "cpu"], stages=STAGE_NAMES)
    found = samples(metrics.exposition()[0].decode())
    # every known label value is there from the start, at 0
    for stage in STAGE_NAMES:
        for outcome in ("done", "failed", "dead", "released", "lease_lost"):
            assert get(found, "podmill_step_outcomes_total", stage=stage, outcome=outcome) == 0
        assert get(found, "podmill_steps_in_flight", stage=stage) == 0
    assert get(found, "podmill_claim_latency_seconds_count", pool="asr") == 0
    assert get(found, "podmill_jobs_completed_total", status="failed") == 0

    metrics.claim("asr", 0.004)
    metrics.step_started("transcribe")
    metrics.step_started("transcribe")
    metrics.step_finished("transcribe", 3.0, "done")
    metrics.step_finished("transcribe", 1.0, "retry")  # the engine's names → the contract's
    for outcome in ("dead", "lost"):
        metrics.step_started("fetch")
        metrics.step_finished("fetch", 0.5, outcome)
    metrics.step_released("index")
    metrics.job_completed("done")
    metrics.model_loaded("whisper:tiny.en", 1.5)
    metrics.model_loaded("minilm", 0.2)
    metrics.model_unloaded("minilm")
    metrics.audio_processed(11.0)
    metrics.audio_processed(4.5)
    metrics.heartbeat(1_700_000_000.0)
    found = samples(metrics.exposition()[0].decode())
    assert get(found, "podmill_claim_latency_seconds_count", pool="asr") == 1
    assert get(found, "podmill_claim_latency_seconds_bucket", pool="asr", le="0.005") == 1
    assert get(found, "podmill_claim_latency_seconds_bucket", pool="asr", le="0.0025") == 0
    assert get(found, "podmill_steps_in_flight", stage="transcribe") == 0
    assert get(found, "podmill_stage_duration_seconds_sum", stage="transcribe") == 4.0
    assert get(found, "podmill_step_outcomes_total", stage="transcribe", outcome="done") == 1
    assert get(found, "podmill_step_outcomes_total", stage="transcribe", outcome="failed") == 1
    assert get(found, "podmill_step_outcomes_total", stage="fetch", outcome="dead") == 1
    assert get(found, "podmill_step_outcomes_total", stage="fetch", outcome="lease_lost") == 1
    assert get(found, "podmill_step_outcomes_total", stage="index", outcome="released") == 1
    assert get(found, "podmill_jobs_completed_total", status="done") == 1
    assert get(found, "podmill_model_load_seconds_sum", model="whisper:tiny.en") == 1.5
    assert get(found, "podmill_model_resident", model="whisper:tiny.en") == 1
    assert get(found, "podmill_model_resident", model="minilm") == 0
    assert get(found, "podmill_audio_seconds_processed_total") == 15.5
    assert get(found, "podmill_worker_heartbeat_timestamp_seconds") == 1_700_000_000.0
    [build] = [key for key in found if key[0] == "podmill_build_info"]
    assert dict(build[1])["version"] and dict(build[1])["git_sha"]
    assert get(found, "podmill_disk_free_bytes", path="data_dir") > 0
    assert str(tmp_path) not in metrics.exposition()[0].decode()  # no path for scrapers


def test_the_process_recorder_is_a_no_op_until_installed(tmp_path: Path) -> None:
    assert type(recorder()) is Recorder
    recorder().step_finished("fetch", 1.0, "done")  # nobody listens: nothing happens
    metrics = WorkerMetrics(tmp_path)
    previous = install(metrics)
    try:
        recorder().audio_processed(2.0)
    finally:
        install(previous)
    assert recorder() is previous
    assert (
        get(samples(metrics.exposition()[0].decode()), "podmill_audio_seconds_processed_total") == 2
    )


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", db=f"sqlite:///{tmp_path / 'podmill.db'}")
    upgrade(settings.database_url)
    with TestClient(create_app(settings, auth=False)) as client:
        yield client


def test_api_correlation_ids_and_request_metrics(api: TestClient) -> None:
    with (DEMO / "jfk.flac").open("rb") as fh:
        response = api.post(
            "/jobs",
            files={"file": ("jfk.flac", fh, "audio/flac")},
            headers={"X-Correlation-ID": "req-42"},
        )
    assert response.status_code == 202, response.text
    assert response.headers["x-correlation-id"] == "req-42"
    job = response.json()["job"]
    assert job["correlation_id"] == "req-42"
    assert api.get(f"/jobs/{job['id']}").json()["correlation_id"] == "req-42"
    made_up = api.get("/jobs", headers={"X-Correlation-ID": "no spaces allowed here"})
    replaced = made_up.headers["x-correlation-id"]
    assert replaced != "no spaces allowed here" and len(replaced) == 32  # a new uuid4 hex
    assert api.get("/nowhere/at/all").status_code == 404

    found = samples(api.get("/metrics").text)
    assert get(found, "podmill_jobs_submitted_total", via="api") == 1
    count = "podmill_http_request_duration_seconds_count"
    assert get(found, count, method="POST", route="/jobs", status="202") == 1
    assert get(found, count, method="GET", route="/jobs/{job_id}", status="200") == 1
    assert get(found, count, method="GET", route="<unmatched>", status="404") == 1
    assert get(found, "podmill_queue_depth", stage="fetch") == 1
    assert get(found, "podmill_jobs", status="pending") == 1
    assert get(found, "podmill_workers_alive") == 0
    assert get(found, "podmill_oldest_running_job_seconds") >= 0
    assert all("/jobs/1" not in str(key) for key in found)


def test_serve_with_two_processes_adds_up_their_counters(tmp_path: Path) -> None:
    """Each request may reach either process; every scrape reports the sum."""
    url = f"sqlite:///{tmp_path / 'podmill.db'}"
    server = start_server(
        url,
        tmp_path / "data",
        tmp_path / "serve.log",
        args=("--workers", "2", "--no-auth", "--no-background"),
    )
    try:
        requests = 6
        for _ in range(requests):
            with httpx.Client(base_url=server.url) as fresh:  # a new connection each
                assert fresh.get("/openapi.json").status_code == 200
        for _ in range(3):
            with httpx.Client(base_url=server.url) as fresh:
                found = samples(fresh.get("/metrics").text)
            count = get(
                found,
                "podmill_http_request_duration_seconds_count",
                method="GET",
                route="/openapi.json",
                status="200",
            )
            assert count == requests, server.log()
    finally:
        server.stop()


# Makes prometheus_client unimportable, as on a worker installed without the extra, and
# prints which web or metrics libraries the worker's modules import on their own.
NO_PROMETHEUS = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "prometheus_client":
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, _Block())
import podmill.engine.worker, podmill.obs.health, podmill.obs.server, podmill.obs.logging
from podmill.cli import main
print(sorted(m for m in ("fastapi", "starlette", "uvicorn") if m in sys.modules))
sys.argv = ["podmill", *sys.argv[1:]]
main()
"""


def test_a_worker_without_the_extra_says_which_to_install(tmp_path: Path) -> None:
    """A worker needs neither FastAPI nor prometheus_client unless --metrics-port asks."""
    db = f"sqlite:///{tmp_path / 'podmill.db'}"
    done = subprocess.run(
        [sys.executable, "-c", NO_PROMETHEUS, "worker", "--db", db, "--metrics-port", "9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip() == "[]"
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: worker metrics (podmill worker --metrics-port) needs the 'metrics' extra "
        "(missing module 'prometheus_client'): pip install 'podmill[metrics]'"
    ]
    assert not (tmp_path / "podmill.db").exists()  # said before touching the database


def test_the_scheduler_serves_health_and_build_info(tmp_path: Path) -> None:
    port = free_port()
    db = f"sqlite:///{tmp_path / 'podmill.db'}"
    with (tmp_path / "scheduler.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "podmill",
                "scheduler",
                "--db",
                db,
                "--data-dir",
                str(tmp_path / "data"),
                "--metrics-port",
                str(port),
                "--metrics-host",
                "127.0.0.1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=podmill_env(),
        )
    try:
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            assert proc.poll() is None, (tmp_path / "scheduler.log").read_text()
            return httpx.get(base + "/health", timeout=2).status_code == 200

        wait_for(answers, 60, "the scheduler's /health")
        health = httpx.get(base + "/health").json()
        assert health["status"] == "healthy" and set(health["checks"]) == {"database", "disk"}
        found = samples(httpx.get(base + "/metrics").text)
        assert any(name == "podmill_build_info" for name, _ in found)
        assert httpx.get(base + "/nothing").status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
