"""Tracing (podmill.obs.tracing): off, nothing of OpenTelemetry is imported and no exporter
thread runs; on, model loads, downloads and LLM calls (with token counts) are spans; the
queue wait is a histogram; enabling it without the extra is one line naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from podmill.engine.clock import ManualClock
from podmill.engine.execute import run_claimed
from podmill.engine.store import Store
from podmill.feeds.download import download
from podmill.ml.arbiter import Arbiter, ModelSpec
from podmill.ml.llm import OpenAIChat
from podmill.obs import tracing
from podmill.obs.metrics import WorkerMetrics, install
from podmill.pipeline.dag import STAGE_NAMES
from podmill.settings import LlmSettings, Settings
from podmill.storage.db import upgrade

from support import bare
from support.httpserver import TestHTTPServer
from support.llmserver import ScriptedChatServer, completion
from support.otlp import OtlpReceiver
from support.paths import DEMO

# Runs a whole job in a fresh interpreter (claim, run, complete every stage; a span; a
# JSON log line), then prints which OpenTelemetry modules got imported and the threads.
_JOB = """
import json, sys, threading
from podmill.obs import tracing
if sys.argv[2] == "on":
    tracing.configure(True, endpoint="http://127.0.0.1:9", schedule_delay_ms=60000)
from podmill.engine.execute import run_claimed
from podmill.engine.store import Store
from podmill.obs.logging import configure_logging
from podmill.pipeline.dag import STAGE_NAMES
from podmill.storage.db import upgrade
import podmill.obs.asgi, podmill.engine.worker, podmill.ml.llm, podmill.feeds.download

configure_logging("INFO", "json")
url = "sqlite:///" + sys.argv[1]
upgrade(url)
store = Store(url)
store.submit("ep", "fp", {"episode": {"episode_key": "ep", "title": "t"}, "settings": {}})
ran = 0
while True:
    [claimed] = store.claim_pools("w", [(STAGE_NAMES, 4, ["io", "asr", "cpu", "llm"])])
    if not claimed:
        break
    for step in claimed:
        assert run_claimed(store, step, run_step=lambda s: []) == "done"
        ran += 1
with tracing.span("x") as span:
    span.set_attribute("k", 1)
print(json.dumps({
    "ran": ran,
    "otel": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
    "threads": [t.name for t in threading.enumerate()],
}))
"""


def _job_process(tmp_path: Path, mode: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _JOB, str(tmp_path / f"{mode}.db"), mode],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith(("PODMILL_", "OTEL_"))},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_tracing_off_imports_no_sdk_and_starts_no_exporter_thread(tmp_path: Path) -> None:
    off = _job_process(tmp_path, "off")
    assert off["ran"] == len(STAGE_NAMES)  # a whole job went through the traced code
    assert off["otel"] == []
    assert not [t for t in off["threads"] if t.startswith("OtelBatch")], off["threads"]
    # The same job with tracing on: the checks above see the SDK and its thread.
    on = _job_process(tmp_path, "on")
    assert on["ran"] == len(STAGE_NAMES)
    assert "opentelemetry.sdk.trace" in on["otel"]
    assert "OtelBatchSpanRecordProcessor" in on["threads"], on["threads"]


def test_queue_wait_is_a_histogram_of_enqueued_to_claimed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    upgrade(url)
    clock = ManualClock()
    store = Store(url, clock=clock)
    metrics = WorkerMetrics(tmp_path, stages=STAGE_NAMES)
    old = install(metrics)
    try:
        store.submit("ep", "fp", {"episode": {"episode_key": "ep", "title": "t"}, "settings": {}})
        clock.advance(5)
        [fetch] = store.claim("w", ["fetch"])
        assert run_claimed(store, fetch, run_step=lambda s: []) == "done"
        clock.advance(2.5)
        [transcribe] = store.claim("w", ["transcribe"])
        assert run_claimed(store, transcribe, run_step=lambda s: []) == "done"
    finally:
        install(old)
        store.engine.dispose()
    found = {
        (s.name, s.labels.get("stage"), s.labels.get("le")): s.value
        for family in text_string_to_metric_families(metrics.exposition()[0].decode())
        for s in family.samples
        if s.name.startswith("podmill_step_queue_wait_seconds")
    }
    assert found[("podmill_step_queue_wait_seconds_sum", "fetch", None)] == 5.0
    assert found[("podmill_step_queue_wait_seconds_count", "fetch", None)] == 1
    # transcribe became ready when fetch completed, and waited 2.5 s
    assert found[("podmill_step_queue_wait_seconds_sum", "transcribe", None)] == 2.5
    assert found[("podmill_step_queue_wait_seconds_bucket", "transcribe", "1.0")] == 0
    assert found[("podmill_step_queue_wait_seconds_bucket", "transcribe", "5.0")] == 1
    assert found[("podmill_step_queue_wait_seconds_count", "segment", None)] == 0


@pytest.fixture
def traced() -> Iterator[OtlpReceiver]:
    """Tracing on in this process, exporting to a receiver; off again afterwards."""
    receiver = OtlpReceiver()
    assert not tracing.enabled()
    tracing.configure(True, endpoint=receiver.endpoint, service_name="test", schedule_delay_ms=50)
    try:
        yield receiver
    finally:
        tracing.shutdown()
        receiver.close()


def test_model_loads_downloads_and_llm_calls_are_spans(
    traced: OtlpReceiver, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, allow_private_networks=True)
    llm_server = ScriptedChatServer(completion('{"title": "x"}', 13, 5))
    with TestHTTPServer() as server:
        url = server.add_file("/ep.mp3", DEMO / "sonnet001.mp3")
        with tracing.span("job") as root, llm_server.running():
            got = download(url, tmp_path / "ep.mp3", settings)
            arbiter = Arbiter({"cpu": 10**9})
            arbiter.register(ModelSpec("toy", load=lambda: object(), nbytes=10))
            with arbiter.acquire("toy"):
                pass
            llm = OpenAIChat(LlmSettings(base_url=llm_server.base_url, model="scripted-1"))
            llm.chat([{"role": "user", "content": "hi"}])
            root.set_attribute("correlation_id", "cid-1")
    tracing.shutdown()  # flushes
    spans = {s.name: s for s in traced.received()}
    job = spans["job"]
    for name in ("download", "model load", "llm chat"):
        assert spans[name].parent_id == job.span_id, name
        assert spans[name].trace_id == job.trace_id
    assert spans["download"].attributes == {
        "url.host": "127.0.0.1",
        "bytes": got.size,
        "format": got.format,
    }
    assert spans["model load"].attributes["model"] == "toy"
    assert spans["llm chat"].attributes == {
        "llm.backend": "openai",
        "llm.model": "scripted-1",
        "llm.prompt_tokens": 13,
        "llm.completion_tokens": 5,
    }
    assert job.attributes == {"correlation_id": "cid-1"}


def test_enabling_tracing_without_the_extra_is_one_line_naming_it(tmp_path: Path) -> None:
    site = bare.write_sitecustomize(tmp_path / "site", ("tracing",), ())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODMILL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["PODMILL_TRACING__ENABLED"] = "true"
    result = subprocess.run(
        [sys.executable, "-m", "podmill", "worker", "--db", f"sqlite:///{tmp_path}/w.db"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: tracing (tracing.enabled) needs the 'tracing' extra (missing module "
        "'opentelemetry.sdk.trace'): pip install 'podmill[tracing]'"
    ], result.stderr
