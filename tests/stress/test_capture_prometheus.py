"""``podmill stress soak --prometheus`` against a real Prometheus (Debian ``prometheus``,
started here on a free port, scraping the real ``podmill serve`` and a real ``podmill
worker --metrics-port`` every second): the run folder keeps the window's range series,
a second run keeps the first, and ``podmill stress capture`` snapshots a window."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from stress_stack import Stack, read_json

from podmill.stress.capture import QUERIES

from support.api import free_port
from support.cli import run_cli
from support.workers import wait_for

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (Debian package)"),
    pytest.mark.timeout(180),
]
JOBS = 8
# what a no-model run produces: every series but the model swaps, the device tenants
# and the LLM tokens (no model is loaded, no LLM asked); the queue-wait histogram is
# another change's: required to be non-empty only when the worker exports it
PRODUCED = {"stage_duration_count", "stage_duration_sum", "jobs_completed", "queue_depth"}
NOT_PRODUCED = {"model_swaps", "device_tenant", "llm_tokens"}


class Prometheus:
    def __init__(self, tmp_path: Path, targets: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp_path / "prometheus.yml"
        jobs = "".join(
            f"  - job_name: {name}\n    static_configs:\n      - targets: ['{target}']\n"
            for name, target in targets.items()
        )
        config.write_text(
            f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}"
        )
        self.log_path = tmp_path / "prometheus.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    str(PROMETHEUS),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self.ready, 60, f"prometheus to be ready:\n{self.log()}")
        wait_for(
            lambda: len([v for v in self.instant("up") if v == 1.0]) == len(targets),
            60,
            f"prometheus to scrape {targets}:\n{self.log()}",
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def instant(self, query: str) -> list[float]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=10)
        return [float(r["value"][1]) for r in answer.json()["data"]["result"]]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[tuple[Prometheus, int]]:
    port = free_port()
    # one ASR slot (the default pools), 1.5 s per transcribe: 8 jobs take ~12 s
    stack.worker("--metrics-port", str(port), PODMILL_TEST_STAGE_DELAY="transcribe:1.5")
    api = stack.server.url.removeprefix("http://")
    server = Prometheus(tmp_path, {"api": api, "worker": f"127.0.0.1:{port}"})
    try:
        yield server, port
    finally:
        server.stop()


def values(envelope: dict[str, Any], **labels: str) -> list[float]:
    """Every value of every series whose labels include ``labels``."""
    return [
        float(v)
        for series in envelope["data"]["result"]
        if labels.items() <= series["metric"].items()
        for _, v in series["values"]
    ]


def test_a_soak_keeps_its_range_series_and_a_second_run_keeps_the_first(
    stack: Stack, prometheus: tuple[Prometheus, int], tmp_path: Path
) -> None:
    server, worker_port = prometheus
    # the queue-wait histogram (another change's): required once the worker exports it
    exported = httpx.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=10).text
    produced = set(PRODUCED)
    if "podmill_step_queue_wait_seconds_count" in exported:
        produced |= {"queue_wait_count", "queue_wait_sum"}
    out = tmp_path / "runs"
    first = stack.stress(
        "soak",
        "--out",
        out,
        "--jobs",
        str(JOBS),
        "--concurrency",
        "2",
        "--no-plots",
        "--prometheus",
        server.url,
    )
    assert first.code == 0, (first.stdout, first.stderr, stack.workers.logs())
    runs = sorted(p for p in out.iterdir() if p.name != "latest")
    assert len(runs) == 1 and (out / "latest").resolve() == runs[0].resolve()
    run = runs[0]
    manifest = read_json(run / "soak" / "manifest.json")
    assert manifest["passed"] is True
    entry = manifest["capture"]["prometheus"]
    assert entry["url"] == server.url and entry["step_seconds"] == 5
    assert entry["status"] == f"ok: {len(QUERIES)} of {len(QUERIES)} queries saved"
    assert entry["start"] == manifest["started_at"]
    saved = {q["name"]: q for q in entry["queries"]}
    assert set(saved) == {name for name, _ in QUERIES}
    envelopes = {
        name: json.loads((run / "soak" / q["file"]).read_text()) for name, q in saved.items()
    }
    for name, envelope in envelopes.items():
        assert envelope["status"] == "success" and envelope["data"]["resultType"] == "matrix"
        assert saved[name]["series"] == len(envelope["data"]["result"]), name
    for name in produced:
        assert envelopes[name]["data"]["result"], f"{name}: no series in the run's window"
        assert all(s["values"] for s in envelopes[name]["data"]["result"]), name
    for name in NOT_PRODUCED:  # no model loaded, no LLM called: nothing to show, said so
        assert envelopes[name]["data"]["result"] == [], name
    # the window's points are 5 s apart and span the run (the soak took > 10 s)
    [transcribe] = [
        s
        for s in envelopes["stage_duration_count"]["data"]["result"]
        if s["metric"]["stage"] == "transcribe"
    ]
    stamps = [t for t, _ in transcribe["values"]]
    assert len(stamps) >= 3 and {round(b - a, 3) for a, b in zip(stamps, stamps[1:])} == {5.0}
    assert manifest["duration_seconds"] >= 10
    # steps were counted while the run went on: the worker's transcribe count rose
    counts = [float(v) for _, v in transcribe["values"]]
    assert counts[-1] > counts[0] and counts == sorted(counts)
    assert max(values(envelopes["queue_depth"], job="api")) >= 0
    assert (run / ".git-sha").read_text().strip() == manifest["git_sha"]
    index = (run / "report.md").read_text()
    assert "[report](soak/report.md)" in index and "[prometheus](soak/prometheus/)" in index
    assert "| soak | PASS |" in index
    assert "## Capture" in (run / "soak" / "report.md").read_text()

    # every job's last steps are in Prometheus once it scraped past the end: a capture of
    # the same window, taken later, holds them all (the run's own may miss the last scrape)
    wait_for(
        lambda: sum(server.instant('podmill_jobs_completed_total{status="done"}')) >= JOBS,
        30,
        "prometheus to scrape the last completed job",
    )
    now = datetime.now(UTC)
    snap = run_cli(
        "stress",
        "capture",
        "--start",
        manifest["started_at"],
        "--end",
        now.isoformat(),
        "--out",
        tmp_path / "snapshots",
        "--prometheus",
        server.url,
    )
    assert snap.code == 0, (snap.stdout, snap.stderr)
    assert f"prometheus: ok: {len(QUERIES)} of {len(QUERIES)} queries saved" in snap.stdout
    assert "jaeger: not captured: --jaeger was not given" in snap.stdout
    folder = tmp_path / "snapshots" / "latest" / "capture"
    done = json.loads((folder / "prometheus" / "jobs_completed.json").read_text())
    assert max(values(done, status="done")) >= JOBS
    steps = json.loads((folder / "prometheus" / "stage_duration_count.json").read_text())
    assert max(values(steps, stage="transcribe")) >= JOBS

    # a second run, with nothing listening where Prometheus and Jaeger are said to be:
    # recorded in its manifest, and it still passes; the first run is untouched
    dead_prometheus = f"http://127.0.0.1:{free_port()}"
    dead_jaeger = f"http://127.0.0.1:{free_port()}"
    second = stack.stress(
        "soak",
        "--out",
        out,
        "--jobs",
        "1",
        "--no-plots",
        "--prometheus",
        dead_prometheus,
        "--jaeger",
        dead_jaeger,
    )
    assert second.code == 0, (second.stdout, second.stderr)
    runs = sorted(p for p in out.iterdir() if p.name != "latest")
    assert len(runs) == 2 and runs[0] == run
    assert (out / "latest").resolve() == runs[1].resolve()
    assert read_json(run / "soak" / "manifest.json") == manifest  # the first is kept as is
    assert (run / "soak" / "prometheus" / "jobs_completed.json").exists()
    later = read_json(out / "latest" / "soak" / "manifest.json")
    assert later["passed"] is True
    assert later["capture"]["prometheus"]["status"].startswith(
        f"unavailable: cannot reach {dead_prometheus}"
    )
    assert later["capture"]["jaeger"]["status"].startswith(
        f"unavailable: cannot reach {dead_jaeger}"
    )
    assert not (out / "latest" / "soak" / "prometheus").exists()
