"""Logs a person can follow: a real ``podmill worker`` says when each step starts and
finishes, a real ``podmill serve`` says what each request got, and ``--quiet`` takes
those lines away (docs/observability.md, "Logs").

No log level is set here (no ``PODMILL_LOG_LEVEL``): these are the lines a user sees
by default.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from podmill.pipeline.dag import STAGE_NAMES

from support.api import start_server
from support.cli import run_cli
from support.paths import DEMO
from support.workers import EngineDB

NOOP = {"PODMILL_TEST_NOOP_STAGES": "1"}  # the engine runs every step; no model loads


def _submit(engine_db: EngineDB, tmp_path: Path) -> dict:
    result = run_cli(
        "submit", DEMO / "jfk.flac", "--db", engine_db.url, "--data-dir", tmp_path / "data",
        "--json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    [job] = result.json_lines()
    return job


def _worker(engine_db: EngineDB, *args: str, env: dict[str, str] | None = None) -> str:
    """Run a worker until it has been idle for a second; its stderr."""
    result = run_cli(
        "worker", "--db", engine_db.url, "--max-idle", "1", *args, env={**NOOP, **(env or {})},
        timeout=120,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    return result.stderr


def test_worker_logs_each_step_start_and_finish_in_text(
    engine_db: EngineDB, tmp_path: Path
) -> None:
    job = _submit(engine_db, tmp_path)
    log = _worker(engine_db)
    assert engine_db.job_status(job["job_id"]) == "done"

    key, job_id = job["episode_key"], job["job_id"]
    for stage in STAGE_NAMES:
        started = re.search(
            rf" INFO podmill\.engine\.execute: {stage} started: job {job_id}, "
            rf"episode {re.escape(key)}, step \d+, attempt 1 \[(?P<tags>[^\]]*)\]$",
            log,
            re.M,
        )
        assert started, f"no start line for {stage}:\n{log}"
        finished = re.search(
            rf" INFO podmill\.engine\.execute: {stage} done in (?P<s>\d+\.\d\d)s: "
            rf"job {job_id}, episode {re.escape(key)}, step \d+, attempt 1 \[(?P<tags>[^\]]*)\]$",
            log,
            re.M,
        )
        assert finished, f"no finish line for {stage}:\n{log}"
        assert float(finished["s"]) < 60
        # the submit's correlation id, the job and the stage on both lines
        for line in (started, finished):
            assert f"cid={job['correlation_id']}" in line["tags"]
            assert f"job={job_id} stage={stage} worker=" in line["tags"]


def test_worker_logs_steps_as_json_fields_and_says_retry(
    engine_db: EngineDB, tmp_path: Path
) -> None:
    job = _submit(engine_db, tmp_path)
    # segment fails on every attempt: its line says so, with outcome "retry"
    log = _worker(engine_db, "--log-format", "json", env={"PODMILL_TEST_FAIL_STAGES": "segment"})
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    steps = [r for r in records if r["logger"] == "podmill.engine.execute" and "step_id" in r]

    fetch = [r for r in steps if r["stage"] == "fetch"]
    assert [r.get("outcome") for r in fetch] == [None, "done"]
    for record in fetch:
        assert record["level"] == "INFO"
        assert record["job_id"] == job["job_id"]
        assert record["episode_key"] == job["episode_key"]
        assert record["correlation_id"] == job["correlation_id"]
        assert record["attempt"] == 1
        assert record["worker_id"]
    assert fetch[0]["message"].startswith(f"fetch started: job {job['job_id']}, episode ")
    assert 0 <= fetch[1]["duration_s"] < 60
    assert "duration_s" not in fetch[0]

    ends = [r for r in steps if r["stage"] == "segment" and "outcome" in r]
    assert ends, log
    first = ends[0]
    assert first["outcome"] == "retry"
    assert first["message"].startswith("segment failed in ")
    assert ", will retry: job " in first["message"]
    assert not [r for r in steps if r["stage"] == "decide"]  # nothing ran past the failure


def test_worker_quiet_leaves_warnings_only(engine_db: EngineDB, tmp_path: Path) -> None:
    job = _submit(engine_db, tmp_path)
    log = _worker(engine_db, "--quiet")
    assert engine_db.job_status(job["job_id"]) == "done"  # the work is done, silently
    assert " INFO " not in log
    assert "started: job" not in log and "done in" not in log
    assert "stopped: done=10" in log  # the command's own summary line stays


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_worker_log_level_and_quiet_are_checked(engine_db: EngineDB) -> None:
    result = run_cli("worker", "--db", engine_db.url, "--log-level", "loud", env=NOOP)
    assert result.code != 0
    assert result.error_line == (
        "error: log level 'loud': use --log-level debug, info, warning or error "
        "(or PODMILL_LOG_LEVEL)"
    )
    result = run_cli("worker", "--db", engine_db.url, "-q", "--log-level", "debug", env=NOOP)
    assert result.code != 0
    assert "--quiet and --log-level debug" in result.error_line


def _serve_and_call(tmp_path: Path, *args: str) -> str:
    """Start ``podmill serve`` (no log level set), make a few requests, stop it; its log."""
    server = start_server(
        f"sqlite:///{tmp_path / 'api.db'}",
        tmp_path / "data",
        tmp_path / "serve.log",
        env={"PODMILL_LOG_LEVEL": None},
        args=("--no-auth", "--no-background", *args),
    )
    try:
        with server.client() as client:
            assert (
                client.get("/jobs/4242", headers={"X-Correlation-ID": "req-42"}).status_code == 404
            )
            assert client.get("/health").status_code == 200
            assert client.get("/metrics").status_code == 200
            assert client.get("/no/such/page").status_code == 404
    finally:
        server.stop()
    return server.log()


def test_serve_logs_each_request_once_in_text(tmp_path: Path) -> None:
    log = _serve_and_call(tmp_path)
    lines = [line for line in log.splitlines() if "podmill.access" in line]
    assert re.fullmatch(
        r"\S+ \S+ INFO podmill\.access: GET /jobs/\{job_id\} 404 \d+\.\dms \[cid=req-42\]",
        lines[0],
    ), log
    assert re.fullmatch(
        r"\S+ \S+ INFO podmill\.access: GET /no/such/page \(no route\) 404 \d+\.\dms \[cid=\w+\]",
        lines[1],
    ), log
    # scrapes and probes (start_server polled /health too) are DEBUG: not shown
    assert len(lines) == 2, log
    assert "HTTP/1.1" not in log  # uvicorn's own access line is off: one line a request


def test_serve_logs_requests_as_json_and_probes_at_debug(tmp_path: Path) -> None:
    log = _serve_and_call(tmp_path, "--log-format", "json", "--log-level", "debug")
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "podmill.access"]
    [job] = [r for r in access if r["route"] == "/jobs/{job_id}"]
    assert job["level"] == "INFO"
    assert (job["method"], job["status"], job["correlation_id"]) == ("GET", 404, "req-42")
    assert 0 <= job["duration_ms"] < 60_000
    assert job["message"] == f"GET /jobs/{{job_id}} 404 {job['duration_ms']:.1f}ms"
    probes = [r for r in access if r["route"] in ("/health", "/metrics")]
    assert {r["route"] for r in probes} == {"/health", "/metrics"}
    assert {r["level"] for r in probes} == {"DEBUG"}
    [unmatched] = [r for r in access if r["route"] == "<unmatched>"]
    assert unmatched["path"] == "/no/such/page"


def test_serve_quiet_logs_no_requests(tmp_path: Path) -> None:
    log = _serve_and_call(tmp_path, "--quiet")
    assert "podmill.access" not in log
    assert "podmill API on http://127.0.0.1:" in log  # the command's own line stays
