"""The run folder, the top-level report.md, Prometheus range requests and the Jaeger
client (request building; nothing listening), on hand-built data. A real Prometheus is
tests/stress/test_capture_prometheus.py; a real Jaeger cannot be installed here."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from podmill.errors import PodmillError
from podmill.stress import capture

from support.api import free_port

START = datetime(2026, 12, 4, 19, 0, 0, tzinfo=UTC)
END = START + timedelta(seconds=23.5)


def test_each_run_gets_its_own_timestamped_folder_and_latest_follows(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    first = capture.new_run_folder(out, START)
    (first / "soak").mkdir()
    (first / "soak" / "keep.txt").write_text("first")
    second = capture.new_run_folder(out, START)  # the same second: a suffix, not a reuse
    third = capture.new_run_folder(out, START + timedelta(hours=1))
    assert [first.name, second.name, third.name] == [
        "20261204T190000Z",
        "20261204T190000Z-2",
        "20261204T200000Z",
    ]
    assert (first / "soak" / "keep.txt").read_text() == "first"
    assert (out / "latest").is_symlink() and Path((out / "latest").readlink()) == Path(third.name)
    assert (third / ".git-sha").read_text().strip()


def test_a_real_folder_named_latest_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "latest").mkdir()
    capture.new_run_folder(tmp_path, START)
    assert (tmp_path / "latest").is_dir() and not (tmp_path / "latest").is_symlink()


def test_the_run_report_links_every_scenario(tmp_path: Path) -> None:
    folder = capture.new_run_folder(tmp_path, START)
    for name, passed in (("soak", True), ("ramp", False)):
        (folder / name).mkdir()
        (folder / name / "report.md").write_text("# x")
        manifest = {
            "passed": passed,
            "reason": "every job done" if passed else "failed at concurrency 8: c8 | x",
            "capture": {
                "prometheus": {"status": "ok: 11 of 11 queries saved"},
                "jaeger": {"status": "not captured: --jaeger was not given"},
            },
        }
        (folder / name / "manifest.json").write_text(json.dumps(manifest))
    (folder / "soak" / "prometheus").mkdir()
    (folder / "stray").mkdir()  # no manifest: not a scenario
    text = capture.write_index(folder).read_text()
    assert text.startswith(f"# podmill stress run {folder.name}")
    assert (
        "| soak | PASS | every job done | prometheus: ok: 11 of 11 queries saved; jaeger: not "
        "captured: --jaeger was not given | [report](soak/report.md) · "
        "[manifest](soak/manifest.json) · [prometheus](soak/prometheus/) |"
    ) in text
    assert "| ramp | FAIL | failed at concurrency 8: c8 \\| x |" in text
    assert "stray" not in text


def test_range_requests_cover_the_window_in_whole_steps() -> None:
    url, params = capture.range_request("http://prom:9090/", "podmill_queue_depth", START, END)
    assert url == "http://prom:9090/api/v1/query_range"
    start = START.timestamp()
    assert params == {
        "query": "podmill_queue_depth",
        "start": str(round(start, 3)),
        "end": str(round(start + 25, 3)),  # 23.5 s → five 5 s steps
        "step": "5s",
    }
    _, exact = capture.range_request("http://p", "up", START, START + timedelta(seconds=10))
    assert float(exact["end"]) == start + 10


def test_the_jaeger_requests_ask_for_the_window_and_each_job() -> None:
    jobs = [
        {"id": 7, "correlation_id": "c-7"},
        {"id": 8, "correlation_id": None},  # never submitted: nothing to look up
    ]
    queries = capture.jaeger_queries(["podmill-api", "podmill worker"], START, END, jobs)
    assert [name for name, _ in queries] == [
        "jaeger/window-podmill-api.json",
        "jaeger/window-podmill_worker.json",
        "jaeger/jobs/7.json",
    ]
    url, params = queries[0][1].request("http://jaeger:16686/")
    assert url == "http://jaeger:16686/api/traces"
    assert params == {
        "service": "podmill-api",
        "start": str(int(START.timestamp() * 1_000_000)),  # microseconds
        "end": str(int(END.timestamp() * 1_000_000)),
        "limit": "100",
    }
    _, by_job = queries[2][1].request("http://jaeger:16686")
    assert by_job["service"] == "podmill-api"
    assert json.loads(by_job["tags"]) == {"correlation_id": "c-7"}


def test_missing_sources_are_recorded_and_nothing_is_written(tmp_path: Path) -> None:
    entry = capture.capture_window(tmp_path, START, END, prometheus=None, jaeger=None)
    assert entry["prometheus"]["status"] == "not captured: --prometheus was not given"
    assert entry["jaeger"]["status"] == "not captured: --jaeger was not given"
    dead = f"http://127.0.0.1:{free_port()}"  # bound once, then closed: nothing listens
    entry = capture.capture_window(tmp_path, START, END, prometheus=dead, jaeger=dead)
    assert entry["prometheus"]["status"].startswith(f"unavailable: cannot reach {dead}")
    assert entry["jaeger"]["status"].startswith(f"unavailable: cannot reach {dead}")
    assert entry["jaeger"]["files"] == [] and entry["prometheus"]["queries"] == []
    assert list(tmp_path.iterdir()) == []


def test_capture_times_parse_as_iso_or_unix_seconds() -> None:
    assert capture.parse_moment("2026-12-04T19:00:00Z") == START
    assert capture.parse_moment("2026-12-04T19:00:00") == START  # no zone: UTC
    assert capture.parse_moment(str(START.timestamp())) == START
    with pytest.raises(PodmillError, match="is not a time"):
        capture.parse_moment("yesterday")


def test_the_jaeger_capture_saves_what_a_jaeger_shaped_server_answers(tmp_path: Path) -> None:
    """A tiny stand-in for Jaeger's query API (no Jaeger can be installed here): the
    window's and each job's answers are saved as sent; their traces are counted."""
    from urllib.parse import parse_qs, urlsplit

    from support.httpserver import TestHTTPServer

    def traces(req: Any) -> None:
        query = parse_qs(urlsplit(req.path).query)
        count = 1 if "tags" in query else 3
        body = {"data": [{"traceID": f"t{i}", "spans": []} for i in range(count)]}
        req.send_body(json.dumps(body).encode(), "application/json")

    with TestHTTPServer() as server:
        server.add_route("/api/traces", traces)
        entry = capture.capture_jaeger(
            server.url, START, END, tmp_path, jobs=[{"id": 7, "correlation_id": "c-7"}]
        )
        sent = [r.path for r in server.requests]
    assert entry["files"] == ["jaeger/window-podmill-api.json", "jaeger/jobs/7.json"]
    assert entry["traces"] == 3 and entry["problems"] == []
    assert entry["status"] == "ok: 2 files, 3 traces in the window"
    assert len(json.loads((tmp_path / "jaeger" / "jobs" / "7.json").read_text())["data"]) == 1
    assert "service=podmill-api" in sent[0] and "tags=" in sent[1]
