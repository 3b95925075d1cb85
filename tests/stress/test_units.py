"""The harness's arithmetic and decisions on hand-built data: percentiles, throughput,
histogram quantiles, the pass criteria, log scanning, ramp's early stop, A/B ratios,
and distinct audio copies (real ffmpeg)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from podmill.errors import PodmillError
from podmill.pipeline.dag import STAGE_NAMES
from podmill.stress.logscan import LogWatch, line_error
from podmill.stress.metrics import histogram_quantile, parse_exposition, stage_aggregates
from podmill.stress.records import (
    JobRecord,
    StageRecord,
    job_problems,
    percentile,
    ratio,
    summarize,
)
from podmill.stress.report import comparison
from podmill.stress.scenarios import GroupResult, ramp_levels
from podmill.stress.spawn import Arm
from podmill.stress.staging import stage_copies

from support.paths import DEMO

T0 = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def job(
    index: int,
    created: float,
    finished: float,
    *,
    status: str = "done",
    stages: dict[str, StageRecord] | None = None,
    group: str = "c2",
) -> JobRecord:
    all_done = {
        name: StageRecord("done", 1, "w", at(created), at(finished), 1.0) for name in STAGE_NAMES
    }
    return JobRecord(
        index=index,
        group=group,
        audio_sha256=f"sha{index}",
        status=status,
        id=index + 1,
        created=True,
        created_at=at(created),
        finished_at=at(finished),
        latency_seconds=finished - created,
        stages=all_done if stages is None else stages,
    )


# ------------------------------------------------------------------ arithmetic


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 50) == pytest.approx(5.5)
    assert percentile(values, 95) == pytest.approx(9.55)
    assert percentile(values, 100) == 10 and percentile(values, 0) == 1
    assert percentile([3.0], 95) == 3.0
    assert percentile([], 95) is None
    assert percentile([10.0, 1.0, 5.0], 50) == 5.0  # order does not matter
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_throughput_and_latency_of_a_group() -> None:
    """Four done jobs over a 60 s server window are 4 jobs/min; a failed job counts
    in the window's start but not in throughput or latency."""
    jobs = [
        job(0, 0, 10),
        job(1, 0, 20),
        job(2, 30, 50),
        job(3, 40, 60),
        job(4, 0, 5, status="failed"),
    ]
    summary = summarize("c2", 2, jobs)
    assert summary.jobs == 5 and summary.done == 4 and summary.failed == 1
    assert summary.window_seconds == 60
    assert summary.throughput_per_minute == 4.0
    assert summary.latency_p50 == 20.0  # latencies 10, 20, 20, 20
    assert summary.latency_p95 == 20.0 and summary.latency_max == 20.0
    assert summary.stages["transcribe"] == {
        "count": 5,
        "mean": 1.0,
        "p50": 1.0,
        "p95": 1.0,
        "max": 1.0,
    }


def test_a_group_with_nothing_done_has_no_throughput() -> None:
    summary = summarize("c4", 4, [job(0, 0, 5, status="failed")])
    assert summary.throughput_per_minute is None and summary.latency_p95 is None


def test_naive_timestamps_are_utc() -> None:
    """SQLite hands back naive UTC times: they must line up with aware ones."""
    a = job(0, 0, 10)
    b = job(1, 0, 30)
    b.created_at = b.created_at.replace("+00:00", "") if b.created_at else None
    assert summarize("c2", 2, [a, b]).window_seconds == 30


def test_histogram_quantile_like_promql() -> None:
    buckets = [(0.1, 0.0), (1.0, 50.0), (10.0, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(1.0)
    assert histogram_quantile(0.95, buckets) == pytest.approx(1.0 + 9.0 * 45 / 50)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.1 + 0.9 * 25 / 50)
    # beyond the last finite bucket: the highest finite bound
    assert histogram_quantile(0.99, [(1.0, 1.0), (float("inf"), 10.0)]) == 1.0
    assert histogram_quantile(0.95, [(1.0, 0.0), (float("inf"), 0.0)]) is None


def test_stage_aggregates_are_deltas_summed_over_sources() -> None:
    """Two exporters (two workers) and a start scrape: the aggregates are what happened
    between the scrapes, over both."""
    start = parse_exposition(
        """# HELP podmill_stage_duration_seconds step run time
# TYPE podmill_stage_duration_seconds histogram
podmill_stage_duration_seconds_bucket{stage="transcribe",le="1.0"} 2.0
podmill_stage_duration_seconds_bucket{stage="transcribe",le="10.0"} 2.0
podmill_stage_duration_seconds_bucket{stage="transcribe",le="+Inf"} 2.0
podmill_stage_duration_seconds_count{stage="transcribe"} 2.0
podmill_stage_duration_seconds_sum{stage="transcribe"} 1.0
podmill_step_outcomes_total{stage="transcribe",outcome="done"} 2.0
podmill_queue_depth{stage="transcribe"} 5.0
"""
    )
    worker_a = """podmill_stage_duration_seconds_bucket{stage="transcribe",le="1.0"} 2.0
podmill_stage_duration_seconds_bucket{stage="transcribe",le="10.0"} 6.0
podmill_stage_duration_seconds_bucket{stage="transcribe",le="+Inf"} 6.0
podmill_stage_duration_seconds_count{stage="transcribe"} 6.0
podmill_stage_duration_seconds_sum{stage="transcribe"} 21.0
podmill_step_outcomes_total{stage="transcribe",outcome="done"} 5.0
podmill_step_outcomes_total{stage="transcribe",outcome="failed"} 1.0
"""
    worker_b = """podmill_stage_duration_seconds_bucket{stage="transcribe",le="1.0"} 0.0
podmill_stage_duration_seconds_bucket{stage="transcribe",le="10.0"} 4.0
podmill_stage_duration_seconds_bucket{stage="transcribe",le="+Inf"} 4.0
podmill_stage_duration_seconds_count{stage="transcribe"} 4.0
podmill_stage_duration_seconds_sum{stage="transcribe"} 20.0
podmill_step_outcomes_total{stage="transcribe",outcome="done"} 4.0
podmill_queue_depth{stage="transcribe"} 0.0
"""
    end = parse_exposition(worker_a) + parse_exposition(worker_b)
    aggregates = stage_aggregates(start, end)
    transcribe = aggregates["transcribe"]
    assert transcribe["steps"] == 8  # 6 + 4 − 2
    assert transcribe["mean_seconds"] == 5.0  # (21 + 20 − 1) / 8
    # all 8 new observations fell in (1, 10]: p95 interpolates to 1 + 9 × 7.6/8
    assert transcribe["p95_seconds_estimate"] == pytest.approx(1 + 9 * 0.95, abs=1e-3)
    assert transcribe["outcomes"] == {"done": 7, "failed": 1}
    assert transcribe["queue_depth_start"] == 5 and transcribe["queue_depth_end"] == 0


def test_a_counter_that_went_down_was_reset() -> None:
    start = parse_exposition('podmill_step_outcomes_total{stage="fetch",outcome="done"} 9\n')
    end = parse_exposition('podmill_step_outcomes_total{stage="fetch",outcome="done"} 3\n')
    assert stage_aggregates(start, end)["fetch"]["outcomes"] == {"done": 3}


def test_exposition_parsing_keeps_escaped_labels() -> None:
    [sample] = parse_exposition('x_total{a="say \\"hi\\"",b="2"} 1.5e3 1700000000\n# c\nbad line\n')
    assert sample.name == "x_total" and sample.value == 1500.0
    assert sample.label("a") == 'say "hi"' and sample.label("b") == "2"


# -------------------------------------------------------------- pass criteria


def test_all_done_with_every_stage_passes() -> None:
    assert job_problems([job(0, 0, 10), job(1, 0, 12)], STAGE_NAMES) == []


def test_each_way_to_fail_the_criteria_is_named() -> None:
    not_done = job(0, 0, 10, status="failed")
    not_done.error = "publish is dead"
    missing = job(1, 0, 10)
    del missing.stages["index"]
    dead = job(2, 0, 10, status="failed")
    dead.stages["publish"] = StageRecord("dead", 3, "w", error="RuntimeError: boom")
    retried = job(3, 0, 10)
    retried.stages["fetch"] = StageRecord("done", 2, "w", at(0), at(1), 1.0, "timeout")
    collapsed = job(4, 0, 10)
    collapsed.created = False
    problems = job_problems([not_done, missing, dead, retried, collapsed], STAGE_NAMES)
    assert problems == [
        "job 1 is failed: publish is dead",
        "job 2 shows no step for index",
        "job 3 is failed",
        "job 3 stage publish is dead: RuntimeError: boom",
        "job 4 stage fetch took 2 attempts (error: timeout)",
        "job 5 was not new (the API attached it to an existing job)",
    ]


def test_a_job_never_submitted_is_named_by_its_index() -> None:
    unsent = JobRecord(index=7, group="c4", audio_sha256="x", status="submit_error", error="413")
    assert job_problems([unsent], STAGE_NAMES) == ["job #7 is submit_error: 413"]


# ------------------------------------------------------------------ log scan


def test_error_lines_in_json_and_text_logs() -> None:
    since, until = T0, T0 + timedelta(minutes=1)

    def record(level: str, seconds: float | None = None) -> str:
        fields = {"level": level, "message": "x"}
        return json.dumps(fields if seconds is None else {"ts": at(seconds), **fields})

    assert line_error(record("ERROR", 5), since, until)
    assert line_error('{"level": "critical", "message": "x"}', since, until)
    assert not line_error(record("ERROR", -5), since, until)  # before the window
    assert not line_error(record("ERROR", 120), since, until)  # after it
    assert not line_error('{"level": "WARNING", "message": "ERROR in text"}', since, until)
    assert line_error("2026-11-24 04:00:01,000 ERROR podmill.engine.worker: boom", None, None)
    assert line_error("ERROR:podmill.engine.worker:boom", None, None)
    assert line_error("Traceback (most recent call last):", None, None)
    assert not line_error("2026-11-24 04:00:01,000 INFO podmill: 0 errors", None, None)
    assert not line_error("2026-11-24 04:00:01,000 WARNING x: step failed", None, None)


def test_the_watch_reads_only_what_was_written_after_it_began(tmp_path: Path) -> None:
    old = tmp_path / "a.log"
    old.write_text("ERROR: before the run\n")
    later = tmp_path / "b.log"  # does not exist yet when the watch begins
    watch = LogWatch([old, later])
    with old.open("a") as handle:
        handle.write("INFO fine\nERROR: during the run\n")
    later.write_text(json.dumps({"level": "ERROR", "message": "new file"}) + "\n")
    count, samples = watch.errors()
    assert count == 2
    assert [s.line for s in samples] == ["ERROR: during the run", samples[1].line]
    assert "new file" in samples[1].line and samples[1].path == str(later)


# -------------------------------------------------------------- control flow


def group(name: str, concurrency: int, ok: bool) -> GroupResult:
    jobs = [job(0, 0, 10, group=name, status="done" if ok else "failed")]
    return GroupResult(
        name,
        concurrency,
        jobs,
        summarize(name, concurrency, jobs),
        job_problems(jobs, STAGE_NAMES),
    )


def test_ramp_stops_after_the_first_failing_level() -> None:
    calls: list[tuple[int, int]] = []

    def run_level(level: int, first_index: int) -> GroupResult:
        calls.append((level, first_index))
        return group(f"c{level}", level, ok=level < 16)

    results = ramp_levels([4, 8, 16, 24], run_level)
    assert calls == [(4, 0), (8, 1), (16, 2)]  # 24 never ran; indexes continue
    assert [r.passed for r in results] == [True, True, False]
    assert results[-1].reason() == "c16: job 1 is failed"


def test_ramp_runs_all_levels_when_each_passes() -> None:
    results = ramp_levels([1, 2, 3], lambda level, _: group(f"c{level}", level, ok=True))
    assert [r.concurrency for r in results] == [1, 2, 3]


def test_ab_comparison_is_b_over_a() -> None:
    a = group("small", 4, ok=True)
    b = group("big", 4, ok=True)
    a.summary.throughput_per_minute, b.summary.throughput_per_minute = 2.0, 3.0
    a.summary.latency_p95, b.summary.latency_p95 = 40.0, 30.0
    rows = {row[0]: row[1:] for row in comparison(a, b)}
    assert rows["throughput (jobs/min)"] == ["2.000", "3.000", "1.500"]
    assert rows["job latency p95 (s)"] == ["40.000", "30.000", "0.750"]
    assert rows["transcribe p95 (s)"][2] == "1.000"
    assert ratio(0.0, 1.0) is None and ratio(None, 1.0) is None


def test_arm_specs() -> None:
    assert Arm.parse("big:--pool asr=2 --order 'fifo'") == Arm(
        "big", ("--pool", "asr=2", "--order", "fifo")
    )
    assert Arm.parse("plain:") == Arm("plain", ())
    for bad in ("--pool asr=2", ":--pool asr=1", "a b:--pool asr=1"):
        with pytest.raises(PodmillError, match="NAME:WORKER-ARGS"):
            Arm.parse(bad)


# -------------------------------------------------------------------- staging


def test_staged_copies_differ_in_bytes_not_in_audio(tmp_path: Path) -> None:
    """Every copy has its own hash (so its own episode) and decodes to the same
    samples as the original."""
    import subprocess

    copies = stage_copies(DEMO / "jfk.flac", 3, tmp_path, "run1")
    again = stage_copies(DEMO / "jfk.flac", 1, tmp_path / "other", "run2")
    hashes = {c.sha256 for c in [*copies, *again]}
    assert len(hashes) == 4

    def pcm_md5(path: Path) -> str:
        out = subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-i", str(path), "-f", "md5", "-"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    assert {pcm_md5(c.path) for c in copies} == {pcm_md5(DEMO / "jfk.flac")}


# ------------------------------------------------------------------- scrapes


def test_a_missing_exporter_is_recorded_not_fatal(http_server) -> None:  # type: ignore[no-untyped-def]
    from podmill.stress.client import scrape
    from podmill.stress.metrics import parse_exposition

    assert scrape(http_server.url + "/metrics") == (None, "metrics unavailable (404)")
    text, note = scrape("http://127.0.0.1:9/metrics", timeout=2)
    assert text is None and note.startswith("metrics unavailable (ConnectError")
    url = http_server.add_bytes(
        "/real/metrics", b'podmill_queue_depth{stage="fetch"} 3\n', "text/plain"
    )
    text, note = scrape(url)
    assert note == "ok" and parse_exposition(text or "")[0].value == 3.0
