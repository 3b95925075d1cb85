"""One job, one trace: a real ``podmill serve`` and two real ``podmill worker`` processes
with tracing on export OTLP/HTTP to a receiver of the test's own (support.otlp decodes
the protobuf with ``opentelemetry-proto``), and the spans form one tree from the API
request through submit to every stage's queue wait, claim, run and fenced completion,
across the three processes, each carrying the job's correlation id
(docs/observability.md, "Traces").

The workers split the pools (io and asr on one, cpu and llm on the other), so the job's
steps run in both; no-op stages (no models) keep it cheap. On SQLite and on Postgres
(the claim reads ``enqueued_at`` in each dialect's own statement).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from podmill.pipeline.dag import STAGE_NAMES
from podmill.platform import Platform
from podmill.settings import Settings

from support.api import start_server
from support.otlp import OtlpReceiver, Span
from support.workers import EngineDB, Workers

CID = "trace-job-42"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    try:
        yield server
    finally:
        server.close()


def _tracing_env(receiver: OtlpReceiver, service: str) -> dict[str, str]:
    return {
        "PODMILL_TRACING__ENABLED": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": service,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: export soon after each span ends
        "PODMILL_LOG_FORMAT": "json",
    }


def _key(engine_db: EngineDB) -> str:
    platform = Platform(Settings(db=engine_db.url, data_dir=engine_db.data_dir))
    try:
        platform.create_tenant("alice")
        return platform.create_key("alice")[1]
    finally:
        platform.close()


def _complete(spans: list[Span]) -> bool:
    """Every stage's four children have arrived (the step span ends after them)."""
    names = {s.name for s in spans}
    return "POST /jobs" in names and all(f"step {stage}" in names for stage in STAGE_NAMES)


def test_one_job_is_one_trace_across_serve_and_two_workers(
    engine_db: EngineDB, workers: Workers, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    server = start_server(
        engine_db.url,
        engine_db.data_dir,
        tmp_path / "serve.log",
        env=_tracing_env(receiver, "podmill-api"),
        args=("--no-background",),
    )
    try:
        key = _key(engine_db)
        a = workers.start(
            "--pool", "io=2", "--pool", "asr=1", env=_tracing_env(receiver, "worker-a")
        )
        b = workers.start(
            "--pool", "cpu=1", "--pool", "llm=1", env=_tracing_env(receiver, "worker-b")
        )
        response = server.client(key).post(
            "/jobs",
            json={"url": "http://127.0.0.1:9/a.mp3"},
            headers={"X-Correlation-ID": CID},
        )
        assert response.status_code == 202, f"{response.text}\n{server.log()}"
        job_id = response.json()["job"]["id"]
        engine_db.wait_jobs([job_id], "done", timeout=120)
        spans = receiver.wait_for(_complete, timeout=30)
    finally:
        server.stop()
    logs = {"worker-a": a.log(), "worker-b": b.log(), "podmill-api": server.log()}

    [request] = [s for s in spans if s.name == "POST /jobs"]
    assert request.service == "podmill-api"
    assert request.attributes["correlation_id"] == CID
    assert request.attributes["http.response.status_code"] == 202
    # the request's access line carries its trace id: from a log search to the trace
    access = [json.loads(x) for x in logs["podmill-api"].splitlines() if x.startswith("{")]
    [posted] = [r for r in access if r.get("route") == "/jobs" and r.get("method") == "POST"]
    assert (posted["trace_id"], posted["correlation_id"]) == (request.trace_id, CID)
    trace = [s for s in spans if s.trace_id == request.trace_id]
    by_id = {s.span_id: s for s in trace}
    [submit] = [s for s in trace if s.name == "submit"]
    assert submit.parent_id == request.span_id
    assert submit.service == "podmill-api"
    assert (submit.attributes["job_id"], submit.attributes["correlation_id"]) == (job_id, CID)

    services = set()
    for stage in STAGE_NAMES:
        [step] = [s for s in trace if s.name == f"step {stage}"]
        # a child of the submit span although another process made it
        assert step.parent_id == submit.span_id, stage
        assert step.service in ("worker-a", "worker-b")
        services.add(step.service)
        assert step.attributes["correlation_id"] == CID
        assert (step.attributes["job_id"], step.attributes["stage"]) == (job_id, stage)
        assert step.attributes["outcome"] == "done"
        children = {s.name: s for s in trace if s.parent_id == step.span_id}
        assert set(children) == {f"queue wait {stage}", "claim", f"run {stage}", "complete"}
        assert all(c.service == step.service for c in children.values())
        wait, run, done = (
            children[f"queue wait {stage}"],
            children[f"run {stage}"],
            children["complete"],
        )
        # the step span opens when the step was enqueued; run, then the fenced completion
        assert step.start_ns == wait.start_ns <= wait.end_ns <= run.start_ns
        assert run.end_ns <= done.start_ns and done.end_ns <= step.end_ns
        assert done.attributes == {"fenced": True, "recorded": True}
        assert step.attributes["queue_wait_s"] == pytest.approx(
            (wait.end_ns - wait.start_ns) / 1e9, abs=1e-5
        )
        # worker's JSON log lines of the step carry the trace id
        lines = [json.loads(x) for x in logs[step.service].splitlines() if x.startswith("{")]
        mine = [r for r in lines if r.get("stage") == stage and "step_id" in r]
        assert mine and {r.get("trace_id") for r in mine} == {request.trace_id}, mine
    assert services == {"worker-a", "worker-b"}  # the trace crosses three processes
    assert all(s.parent_id in by_id or s is request for s in trace)  # one tree
    [root] = [s for s in trace if not s.parent_id]
    assert root is request
