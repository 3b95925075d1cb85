"""``podmill stress`` against a real API and real workers: the artifact layout, the
pass criteria, and the failures it must report (a dead step, an error in a worker log,
a wrong key, an unreachable API, a missing audio file; ramp's early stop; ab's arms)."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
from stress_stack import Stack, is_png, read_json

from podmill.pipeline.dag import STAGE_NAMES

from support import bare
from support.api import free_port
from support.cli import run_cli
from support.paths import DEMO, ROOT
from support.workers import wait_for

ARTIFACTS = {"jobs.json", "manifest.json", "report.md", "waterfall.png", "levels.png"}
JOB_KEYS = {
    "index",
    "group",
    "audio_sha256",
    "status",
    "id",
    "correlation_id",
    "episode_key",
    "created",
    "submitted_at",
    "observed_at",
    "created_at",
    "started_at",
    "finished_at",
    "latency_seconds",
    "error",
    "stages",
}
STAGE_KEYS = {
    "status",
    "attempts",
    "worker_id",
    "started_at",
    "finished_at",
    "duration_seconds",
    "error",
}


def check_layout(directory: Path, scenario: str, key: str) -> tuple[dict, dict]:
    """Every artifact is there and well formed; the key appears in none of them."""
    assert {p.name for p in directory.iterdir()} >= ARTIFACTS, list(directory.iterdir())
    assert is_png(directory / "waterfall.png") and is_png(directory / "levels.png")
    jobs = read_json(directory / "jobs.json")
    manifest = read_json(directory / "manifest.json")
    snapshot = read_json(directory / "metrics" / "snapshot.json")
    assert jobs["scenario"] == manifest["scenario"] == scenario
    assert jobs["stages"] == list(STAGE_NAMES)
    for job in jobs["jobs"]:
        assert set(job) == JOB_KEYS, job
        for stage in job["stages"].values():
            assert set(stage) == STAGE_KEYS, stage
    for field in ("git_sha", "started_at", "finished_at", "settings", "api", "host"):
        assert manifest[field], field
    assert manifest["started_at"] < manifest["finished_at"]
    # the API's /metrics is scraped at the start and end of every group, available or not
    api_scrapes = [
        s
        for s in snapshot["sources"]
        if s["url"].endswith(":" + manifest["api"].rsplit(":", 1)[1] + "/metrics")
    ]
    assert {s["when"] for s in api_scrapes} == {"start", "end"}
    for source in snapshot["sources"]:
        assert source["status"] == "ok" or source["status"].startswith("metrics unavailable")
        if source["file"]:
            assert (directory / source["file"]).read_text().strip()
    assert set(snapshot["from_jobs"]) == {g["group"] for g in manifest["groups"]}
    for path in directory.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".prom", ".log"):
            assert key not in path.read_text(errors="replace"), f"the API key leaked into {path}"
    return jobs, manifest


@pytest.mark.slow
def test_soak_with_the_tiny_model(stack: Stack) -> None:
    """Four real jobs (Whisper tiny.en on the first 5 s of the JFK clip) at concurrency
    2, the worker logging JSON and exporting metrics: all done, all stages, one job per
    staged copy, every artifact written, per-stage aggregates from /metrics."""
    clip = stack.tmp_path / "jfk-5s.flac"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(DEMO / "jfk.flac"), "-t", "5", str(clip)],
        check=True,
    )
    port = free_port()
    worker = stack.worker(
        "--log-format", "json", "--metrics-port", str(port), PODMILL_TEST_NOOP_STAGES="0"
    )
    out = stack.tmp_path / "out"
    result = stack.stress(
        "soak",
        "--out",
        out,
        "--jobs",
        "4",
        "--concurrency",
        "2",
        "--audio",
        clip,
        "--worker-log",
        worker.log_path,
        "--metrics-url",
        f"http://127.0.0.1:{port}/metrics",
    )
    assert result.code == 0, (result.stdout, result.stderr, stack.workers.logs())
    assert result.stdout.startswith("stress soak PASSED"), result.stdout
    jobs, manifest = check_layout(out / "latest" / "soak", "soak", stack.key)
    records = jobs["jobs"]
    assert len(records) == 4
    # dedup did not collapse the workload: four copies, four episodes, four new jobs
    assert len({j["audio_sha256"] for j in records}) == 4
    assert len({j["episode_key"] for j in records}) == 4
    assert len({j["id"] for j in records}) == 4
    assert all(j["created"] is True and j["status"] == "done" for j in records)
    for job in records:
        assert list(job["stages"]) == list(STAGE_NAMES)
        assert all(s["status"] == "done" for s in job["stages"].values()), job
        assert job["latency_seconds"] > job["stages"]["transcribe"]["duration_seconds"] > 0
        assert job["correlation_id"]
    assert manifest["passed"] is True
    assert manifest["settings"]["jobs"] == 4 and manifest["settings"]["concurrency"] == 2
    assert manifest["audio"]["path"] == str(clip)
    # the JSON log was read (and had lines to read), and held no error
    assert '"level"' in worker.log_path.read_text()
    assert manifest["evidence"]["worker_logs"] == [str(worker.log_path)]
    assert manifest["evidence"]["log_error_lines"] == 0
    [group] = manifest["groups"]
    assert group["done"] == 4 and group["throughput_per_minute"] > 0
    assert group["latency_p50"] <= group["latency_p95"] <= group["latency_max"]
    # both exporters answered at start and end; the worker's histogram saw every step
    snapshot = read_json(out / "latest" / "soak" / "metrics" / "snapshot.json")
    assert {s["status"] for s in snapshot["sources"]} == {"ok"}, snapshot["sources"]
    per_stage = snapshot["per_stage"]["c2"]
    assert set(STAGE_NAMES) <= set(per_stage)
    assert per_stage["transcribe"]["steps"] == 4
    assert per_stage["transcribe"]["outcomes"]["done"] == 4
    assert per_stage["transcribe"]["p95_seconds_estimate"] > 0
    assert per_stage["transcribe"]["queue_depth_end"] == 0
    report = (out / "latest" / "soak" / "report.md").read_text()
    assert "PASS" in report and "| c2 | 2 | 4/4 |" in report
    assert "![per-job stage waterfall](waterfall.png)" in report
    # the staged copies were uploads: nothing of them is left beside the artifacts
    assert not (out / "latest" / "soak" / ".staged-audio").exists()


def test_a_dead_step_fails_the_soak_and_stops_the_ramp(stack: Stack) -> None:
    stack.worker(PODMILL_TEST_FAIL_STAGES="publish")
    out = stack.tmp_path / "out"
    result = stack.stress("soak", "--out", out, "--jobs", "2", "--concurrency", "2")
    assert result.code == 1, (result.stdout, result.stderr)
    [verdict] = [line for line in result.stdout.splitlines() if line.startswith("stress soak")]
    assert verdict.startswith("stress soak FAILED: c2: job ") and "is failed" in verdict
    jobs, manifest = check_layout(out / "latest" / "soak", "soak", stack.key)
    assert manifest["passed"] is False and manifest["reason"] in verdict
    assert all(j["stages"]["publish"]["status"] == "dead" for j in jobs["jobs"])
    report = (out / "latest" / "soak" / "report.md").read_text()
    assert report.startswith("# podmill stress soak: FAIL")
    assert "stage publish is dead" in report
    # no worker log given: the report says the verdict rests on step states only
    assert manifest["evidence"]["worker_logs_note"].startswith("no worker logs given")

    # the same broken worker: ramp stops at its first level and runs none above it
    out = stack.tmp_path / "failing"
    failed = stack.stress("ramp", "--out", out, "--levels", "1,2,4", "--jobs-per-level", "1")
    assert failed.code == 1, (failed.stdout, failed.stderr)
    assert failed.stdout.startswith("stress ramp FAILED: failed at concurrency 1: c1: job ")
    assert "; levels [2, 4] not run" in failed.stdout
    jobs, manifest = check_layout(out / "latest" / "ramp", "ramp", stack.key)
    assert [g["group"] for g in manifest["groups"]] == ["c1"]
    assert len(jobs["jobs"]) == 1


def test_an_error_line_in_a_worker_log_fails_the_soak(stack: Stack) -> None:
    """Jobs that all finish still fail the soak when a worker logged an ERROR during it;
    lines written before the run started do not count."""
    worker = stack.worker(PODMILL_TEST_STAGE_DELAY="fetch:2")
    log = stack.tmp_path / "other-worker.log"
    log.write_text("2026-01-01 00:00:00,000 ERROR podmill.engine.worker: an old error\n")
    client = stack.server.client(stack.key)
    seen = {j["id"] for j in client.get("/jobs", params={"limit": 1000}).json()}

    def write_error_while_a_job_runs() -> None:
        wait_for(
            lambda: any(
                j["status"] == "running" and j["id"] not in seen for j in client.get("/jobs").json()
            ),
            60,
            "a stress job to be running",
        )
        with log.open("a") as handle:
            handle.write(
                '{"ts": "2999-01-01T00:00:00Z", "level": "ERROR", "message": "out of window"}\n'
                "2026-11-24 04:00:00,000 ERROR podmill.engine.worker: step 7 blew up\n"
            )

    writer = threading.Thread(target=write_error_while_a_job_runs, daemon=True)
    writer.start()
    out = stack.tmp_path / "out"
    result = stack.stress(
        "soak",
        "--out",
        out,
        "--jobs",
        "1",
        "--concurrency",
        "1",
        "--worker-log",
        log,
        "--worker-log",
        worker.log_path,
    )
    writer.join(timeout=5)
    assert result.code == 1, (result.stdout, result.stderr)
    assert "1 error line(s) in worker logs, first: " in result.stdout
    assert "step 7 blew up" in result.stdout and "an old error" not in result.stdout
    jobs, manifest = check_layout(out / "latest" / "soak", "soak", stack.key)
    assert [j["status"] for j in jobs["jobs"]] == ["done"]
    assert manifest["evidence"]["log_error_lines"] == 1
    [sample] = manifest["evidence"]["log_error_samples"]
    assert sample["path"] == str(log) and "step 7 blew up" in sample["line"]


def test_clear_errors_before_any_work(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = stack.job_count()
    wrong = stack.stress("soak", "--out", out, key="pm_" + "x" * 43)
    assert wrong.code == 1
    assert wrong.error_line.startswith("error: the API at http://127.0.0.1:")
    assert "401 unauthorized" in wrong.error_line and "the key was refused" in wrong.error_line
    missing = stack.stress("soak", "--out", out, "--audio", tmp_path / "nope.flac")
    assert missing.code == 1
    assert missing.error_line == (
        f"error: audio file {tmp_path / 'nope.flac'} does not exist: pass --audio FILE "
        "(a short speech clip, e.g. the bundled podmill/demo/jfk.flac)"
    )
    dead = f"http://127.0.0.1:{free_port()}"  # bound once, then closed: nothing listens
    unreachable = run_cli(
        "stress", "soak", "--api", dead, "--out", out, env={"PODMILL_API_KEY": stack.key}
    )
    assert unreachable.code == 1
    assert unreachable.error_line.startswith(f"error: cannot reach the API at {dead}")
    assert "is `podmill serve` running there?" in unreachable.error_line
    # nothing was submitted and no scenario directory was made
    assert stack.job_count() == before
    assert not out.exists()


def _first_on_path(site: Path) -> dict[str, str]:
    """The environment that puts ``site``'s sitecustomize.py before the source tree."""
    return {"PYTHONPATH": f"{site}{os.pathsep}{ROOT / 'src'}"}


def test_without_the_stress_extra_it_stops_before_any_job(stack: Stack, tmp_path: Path) -> None:
    """matplotlib not installed: one line naming the extra and --no-plots, before the
    API is asked anything; with --no-plots the soak runs, passes, and says it drew none."""
    hidden = _first_on_path(bare.write_sitecustomize(tmp_path / "site", ("stress",)))
    out = tmp_path / "out"
    before = stack.job_count()
    refused = stack.stress("soak", "--out", out, "--jobs", "1", **hidden)
    assert refused.code == 1, (refused.stdout, refused.stderr)
    assert (
        refused.stderr.strip()
        == refused.error_line
        == (
            "error: drawing the stress plots needs the 'stress' extra (missing module "
            "'matplotlib'): pip install 'podmill[stress]', or pass --no-plots to run without them"
        )
    )
    assert stack.job_count() == before
    assert not out.exists()
    # before the API too: an unreachable one is not what it reports
    dead = run_cli(
        "stress", "ramp", "--api", f"http://127.0.0.1:{free_port()}", "--out", out, env=hidden
    )
    assert "pip install 'podmill[stress]'" in dead.error_line, dead.stderr

    worker = stack.worker()
    result = stack.stress(
        "soak", "--out", out, "--jobs", "1", "--worker-log", worker.log_path, "--no-plots", **hidden
    )
    assert result.code == 0, (result.stdout, result.stderr)
    assert result.stdout.startswith("stress soak PASSED: every job done"), result.stdout
    directory = out / "latest" / "soak"
    assert not list(directory.glob("*.png"))
    manifest = read_json(directory / "manifest.json")
    assert manifest["passed"] is True and manifest["complete"] is True
    assert manifest["plots"] == {"files": [], "note": "--no-plots was given"}
    assert manifest["settings"]["plots"] is False
    report = (directory / "report.md").read_text()
    assert report.startswith("# podmill stress soak: PASS")
    assert "Not drawn: --no-plots was given." in report and "](waterfall.png)" not in report


# matplotlib imports, but cannot draw: its Agg backend is gone (a broken install), which
# no check before the run can tell from a working one short of drawing.
_BROKEN_BACKEND = """
import sys
class _NoAgg:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib.backends.backend_agg":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NoAgg())
"""


def test_a_failure_after_the_workload_fails_the_run(stack: Stack, tmp_path: Path) -> None:
    """Every job passes, then the plots cannot be drawn: exit 1, the manifest says the
    workload passed but the run did not, and every other artifact is still written."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_BROKEN_BACKEND)
    worker = stack.worker()
    out = tmp_path / "out"
    result = stack.stress(
        "soak", "--out", out, "--jobs", "2", "--worker-log", worker.log_path, **_first_on_path(site)
    )
    assert result.code == 1, (result.stdout, result.stderr)
    assert result.stdout.startswith(
        "stress soak FAILED: the workload passed (every job done, all stages, no errors), "
        "but waterfall.png was not written: ModuleNotFoundError: No module named "
        "'matplotlib.backends.backend_agg' (+1 more)"
    ), result.stdout
    assert "Traceback" not in result.stderr
    directory = (out / "latest").resolve() / "soak"
    manifest = read_json(directory / "manifest.json")
    assert manifest["passed"] is False and manifest["complete"] is False
    assert manifest["workload_passed"] is True
    assert manifest["reason"] in result.stdout
    assert [e.split(" ", 1)[0] for e in manifest["artifact_errors"]] == [
        "waterfall.png",
        "levels.png",
    ]
    assert manifest["plots"]["files"] == [] and not list(directory.glob("*.png"))
    jobs = read_json(directory / "jobs.json")["jobs"]
    assert [j["status"] for j in jobs] == ["done", "done"]
    assert (directory / "metrics" / "snapshot.json").exists()
    report = (directory / "report.md").read_text()
    assert report.startswith("# podmill stress soak: FAIL")
    assert "- levels.png was not written: ModuleNotFoundError" in report
    assert "](waterfall.png)" not in report
    assert f"report: {directory / 'report.md'}" in result.stdout


def test_ramp_runs_every_level_in_order(stack: Stack) -> None:
    worker = stack.worker()
    out = stack.tmp_path / "ok"
    passed = stack.stress(
        "ramp",
        "--out",
        out,
        "--levels",
        "1,2",
        "--jobs-per-level",
        "2",
        "--worker-log",
        worker.log_path,
    )
    assert passed.code == 0, (passed.stdout, passed.stderr)
    jobs, manifest = check_layout(out / "latest" / "ramp", "ramp", stack.key)
    assert [g["group"] for g in manifest["groups"]] == ["c1", "c2"]
    assert [j["group"] for j in jobs["jobs"]] == ["c1", "c1", "c2", "c2"]
    assert [j["index"] for j in jobs["jobs"]] == [0, 1, 2, 3]
    report = (out / "latest" / "ramp" / "report.md").read_text()
    assert "| c1 | 1 | 2/2 |" in report and "| c2 | 2 | 2/2 |" in report


def test_ab_compares_two_worker_settings_side_by_side(stack: Stack) -> None:
    out = stack.tmp_path / "out"
    args = (
        "ab",
        "--out",
        out,
        "--db",
        stack.url,
        "--a",
        "narrow:--pool io=1 --pool asr=1 --pool cpu=1 --poll 0.05",
        "--b",
        "wide:--pool io=2 --pool asr=2 --pool cpu=2 --poll 0.05",
        "--jobs",
        "2",
        "--concurrency",
        "2",
    )
    result = stack.stress(*args, PODMILL_TEST_NOOP_STAGES="1")
    assert result.code == 0, (result.stdout, result.stderr)
    jobs, manifest = check_layout(out / "latest" / "ab", "ab", stack.key)
    assert [g["group"] for g in manifest["groups"]] == ["narrow", "wide"]
    assert manifest["groups"][1]["worker_args"] == [
        "--pool",
        "io=2",
        "--pool",
        "asr=2",
        "--pool",
        "cpu=2",
        "--poll",
        "0.05",
    ]
    assert [j["group"] for j in jobs["jobs"]] == ["narrow"] * 2 + ["wide"] * 2
    # each arm ran on its own workers: the steps of an arm name only that arm's workers
    by_arm = {
        arm: {
            s["worker_id"] for j in jobs["jobs"] if j["group"] == arm for s in j["stages"].values()
        }
        for arm in ("narrow", "wide")
    }
    assert len(by_arm["narrow"]) == len(by_arm["wide"]) == 1
    assert by_arm["narrow"] != by_arm["wide"]
    # and the arms' copies differ too: B did not attach to A's finished jobs
    assert len({j["episode_key"] for j in jobs["jobs"]}) == 4
    # the spawned workers' logs were kept and scanned, and their metrics scraped
    snapshot = read_json(out / "latest" / "ab" / "metrics" / "snapshot.json")
    for arm in ("narrow", "wide"):
        log = (out / "latest").resolve() / "ab" / "workers" / arm / "worker-0.log"
        assert "pools io=" in log.read_text()
        assert str(log) in manifest["evidence"]["worker_logs"]
        assert snapshot["per_stage"][arm]["publish"]["outcomes"]["done"] == 2
    assert manifest["settings"]["other_workers_check"].startswith("GET /admin/workers")
    report = (out / "latest" / "ab" / "report.md").read_text()
    assert "## A/B: narrow vs wide" in report
    assert "| metric | narrow | wide | wide/narrow |" in report
    assert "| throughput (jobs/min) |" in report and "| transcribe p95 (s) |" in report

    # a worker the harness did not start would take the arms' steps: refused
    stack.worker()
    refused = stack.stress(*args, PODMILL_TEST_NOOP_STAGES="1")
    assert refused.code == 1
    assert refused.error_line.startswith("error: ab needs the queue to itself, but 1 other live")


def test_sigterm_stops_the_run_and_the_workers_it_started(stack: Stack) -> None:
    """An arm whose workers cannot finish a job (no asr pool): SIGTERM to the harness
    returns at once (not at --job-timeout), and the workers it started are stopped."""
    import os
    import signal
    import sys

    out = stack.tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODMILL_")}
    env.update({"PODMILL_API_KEY": stack.key, "PODMILL_TEST_NOOP_STAGES": "1"})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "podmill",
            "stress",
            "ab",
            "--api",
            stack.server.url,
            "--out",
            str(out),
            "--db",
            stack.url,
            "--a",
            "stuck:--pool io=1 --poll 0.05",
            "--b",
            "never:--pool io=1",
            "--jobs",
            "1",
            "--concurrency",
            "1",
            "--poll",
            "0.1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    admin = stack.server.client(stack.key)

    def live_workers() -> list[dict]:
        return [w for w in admin.get("/admin/workers").json() if w["status"] == "running"]

    try:
        # the arm's worker is up and the job waits at transcribe, which no pool runs
        wait_for(
            lambda: any(
                j["steps"].get("fetch", {}).get("status") == "done"
                and j["steps"]["transcribe"]["status"] == "pending"
                for j in admin.get("/jobs").json()
                if j["status"] in ("pending", "running")
            ),
            90,
            "the stuck arm's job to wait at transcribe",
        )
        assert len(live_workers()) == 1
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, output
    assert live_workers() == []
    assert not (out / "latest" / "ab" / ".staged-audio").exists()


def test_suite_runs_soak_then_ramp_into_one_run_folder(stack: Stack) -> None:
    stack.worker()
    out = stack.tmp_path / "suite"
    result = stack.stress(
        "suite",
        "--out",
        out,
        "--jobs",
        "2",
        "--concurrency",
        "2",
        "--levels",
        "1,2",
        "--jobs-per-level",
        "1",
        "--no-plots",
    )
    assert result.code == 0, (result.stdout, result.stderr)
    verdicts = [line.split(":")[0] for line in result.stdout.splitlines()]
    assert verdicts[:3] == ["stress soak PASSED", "stress ramp PASSED", "stress suite PASSED"]
    [run] = [p for p in out.iterdir() if p.name != "latest"]
    assert (out / "latest").resolve() == run.resolve()
    assert {p.name for p in run.iterdir()} == {".git-sha", "report.md", "soak", "ramp"}
    soak = read_json(run / "soak" / "manifest.json")
    ramp = read_json(run / "ramp" / "manifest.json")
    assert soak["passed"] and ramp["passed"]
    assert soak["finished_at"] <= ramp["started_at"]  # one after the other
    assert [g["group"] for g in ramp["groups"]] == ["c1", "c2"]
    assert soak["capture"]["prometheus"]["status"] == "not captured: --prometheus was not given"
    index = (run / "report.md").read_text()
    assert "| soak | PASS |" in index and "| ramp | PASS |" in index
    assert "[report](ramp/report.md)" in index
    assert f"run: {run / 'report.md'}" in result.stdout
    # ab needs both arms
    half = stack.stress("suite", "--out", out, "--a", "one:--pool asr=1")
    assert half.code == 1
    assert half.error_line == (
        "error: suite runs ab only with both arms: --a NAME:ARGS --b NAME:ARGS"
    )
