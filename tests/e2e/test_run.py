"""`podmill run` end to end: a real HTTP server, real downloads, real models."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from podmill.pipeline.dag import STAGE_NAMES

from support.cli import CliResult, run_cli
from support.feeds import item, rss
from support.paths import DEMO, FIXTURES
from support.tree import assert_tree_contract
from support.wer import wer

pytestmark = pytest.mark.slow


def test_feed_over_http_gives_transcripts_and_trees(http_server, tmp_path: Path) -> None:
    http_server.add_file("/audio/jfk.flac", DEMO / "jfk.flac", "audio/flac")
    http_server.add_file("/audio/sonnet.mp3", DEMO / "sonnet001.mp3", "audio/mpeg")
    feed = rss(
        [
            item("jfk", "Inaugural", "audio/jfk.flac", "audio/flac"),  # relative URL
            item(
                "sonnet",
                "Sonnet 1",
                f"{http_server.url}/audio/sonnet.mp3",
                "audio/mp3",
                date="Tue, 03 Nov 2026 10:00:00 GMT",
            ),
        ]
    )
    url = http_server.add_bytes("/feed.xml", feed, "application/rss+xml")
    data = tmp_path / "data"

    result = run_cli("run", url, "--data-dir", data, "--json", "--allow-private-networks")

    assert result.code == 0, result.stderr
    lines = {line["title"]: line for line in result.json_lines()}
    assert set(lines) == {"Inaugural", "Sonnet 1"}
    references = {"Inaugural": "jfk.txt", "Sonnet 1": "sonnet001.txt"}
    limits = {"Inaugural": 0.15, "Sonnet 1": 0.25}
    for title, line in lines.items():
        assert line["status"] == "done" and line["error"] is None
        assert set(line["timings"]) >= {"fetch", "transcribe", "segment", "synthesize", "publish"}
        transcript = json.loads(Path(line["artifacts"]["transcript_json"]).read_text())
        text = " ".join(s["text"] for s in transcript["segments"])
        reference = (FIXTURES / "audio" / references[title]).read_text()
        assert wer(reference, text) <= limits[title], text
        words = [w for s in transcript["segments"] for w in s["words"]]
        assert all(w["start"] <= w["end"] for w in words)
        assert all(a["start"] <= b["start"] for a, b in zip(words, words[1:]))
        for kind in ("srt", "vtt", "txt", "topics", "summary_md"):
            assert Path(line["artifacts"][kind]).is_file()
        tree = json.loads(Path(line["artifacts"]["topics"]).read_text())
        root = tree["root"]
        assert root["title"] == title  # a feed's own title names the episode
        assert root["end"] == pytest.approx(transcript["duration"], abs=0.5)
        assert_tree_contract(root, 0.0, root["end"])

    shown = run_cli(
        "show", lines["Inaugural"]["episode_key"], "--data-dir", data, "--format", "srt"
    )
    assert shown.code == 0 and "-->" in shown.stdout and "country" in shown.stdout.lower()
    outline = run_cli("show", lines["Inaugural"]["episode_key"][:6], "--data-dir", data)
    assert outline.code == 0 and "Inaugural" in outline.stdout


def test_rerun_reuses_artifacts(http_server, tmp_path: Path) -> None:
    http_server.add_file("/jfk.flac", DEMO / "jfk.flac", "audio/flac")
    url = http_server.add_bytes(
        "/feed.xml", rss([item("jfk", "JFK", "jfk.flac", "audio/flac")]), "application/rss+xml"
    )
    args = ("run", url, "--data-dir", tmp_path / "d", "--json", "--allow-private-networks")
    first = run_cli(*args)
    assert first.code == 0, first.stderr
    second = run_cli(*args)
    assert second.code == 0, second.stderr
    # The same (episode, fingerprint) attaches to the finished job: nothing runs again,
    # and the second run says so instead of repeating the first run's timings.
    assert second.json_lines()[0]["job_id"] == first.json_lines()[0]["job_id"]
    assert set(first.json_lines()[0]["timings"]) == set(STAGE_NAMES)
    assert second.json_lines()[0]["timings"] == {}
    assert second.json_lines()[0]["cached"] == list(STAGE_NAMES)
    assert http_server.count("/jfk.flac", "GET") == 1  # the audio was not downloaded again
    # The catalog row carries what fetch learned about the audio.
    with sqlite3.connect(tmp_path / "d" / "podmill.db") as conn:
        duration, sha = conn.execute(
            "SELECT duration_seconds, audio_sha256 FROM episodes"
        ).fetchone()
    assert duration == pytest.approx(11.0, abs=0.1)
    assert sha == hashlib.sha256((DEMO / "jfk.flac").read_bytes()).hexdigest()


def _summary(result: CliResult) -> tuple[str, str]:
    """The summary table's row of the one episode (its status and "this run" cells) and
    the run's closing ``this run:`` line, from ``podmill run``'s stderr."""
    [line] = [line for line in result.stderr.splitlines() if line.startswith("this run:")]
    [row] = [line for line in result.stderr.splitlines() if line.startswith("│ jfk ")]
    cells = [cell.strip() for cell in row.strip("│").split("│")]
    return " ".join(cells[2:4]), line


def test_cached_rerun_reports_what_this_run_did(tmp_path: Path) -> None:
    data = tmp_path / "d"
    args = ("run", DEMO / "jfk.flac", "--data-dir", data, "--json")

    first = run_cli(*args)
    assert first.code == 0, first.stderr
    [cold] = first.json_lines()
    assert set(cold["timings"]) == set(STAGE_NAMES) and cold["cached"] == []
    assert cold["computed_audio_seconds"] == pytest.approx(11.0, abs=0.2)
    status, line = _summary(first)
    assert status.startswith("done ") and "cached" not in status
    assert "1 episode computed, 0 cached; 11.0 s of audio transcribed (" in line
    assert "audio-s/s)" in line

    def assert_all_cached(result: CliResult) -> None:
        assert result.code == 0, result.stderr
        [warm] = result.json_lines()
        assert warm["status"] == "done" and warm["timings"] == {}
        assert warm["cached"] == list(STAGE_NAMES)
        assert warm["audio_seconds"] == cold["audio_seconds"]  # the episode's length
        assert warm["computed_audio_seconds"] == 0.0  # none of it transcribed again
        assert warm["wall_seconds"] > 0  # this run's own time
        assert _summary(result)[0] == "done cached"
        assert "0 episodes computed, 1 cached; no audio transcribed" in _summary(result)[1]
        assert "audio-s/s" not in result.stderr  # no throughput over work not done
        progress = [line for line in result.stderr.splitlines() if line.startswith("jfk ")]
        assert progress and " cached " in progress[-1]

    # Again: the finished job is reused, no step runs.
    assert_all_cached(run_cli(*args))
    # Without its database the run queues a new job, whose steps find every artifact
    # already there: they run, compute nothing, and are reported cached too.
    for name in ("podmill.db", "podmill.db-wal", "podmill.db-shm"):
        (data / name).unlink(missing_ok=True)
    assert_all_cached(run_cli(*args))


@pytest.mark.parametrize("fmt", ["mp3", "m4a", "opus", "ogg", "wav", "flac"])
def test_local_audio_formats_decode(fmt: str, converted: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli("run", converted[fmt], "--data-dir", tmp_path / "d", "--json")
    assert result.code == 0, result.stderr
    (line,) = result.json_lines()
    text = Path(line["artifacts"]["txt"]).read_text()
    assert wer((FIXTURES / "audio" / "jfk.txt").read_text(), text) <= 0.15, text


def test_feed_transcript_is_used_instead_of_asr(http_server, tmp_path: Path) -> None:
    srt = FIXTURES / "transcripts" / "podcast-namespace__buzzsprout-10-things.srt"
    http_server.add_file("/t.srt", srt, "application/srt")
    # The enclosure would fail if fetched: proof the transcript replaced ASR.
    http_server.add_status("/missing.mp3", 404)
    extra = '<podcast:transcript url="t.srt" type="application/srt"/>'
    # A stated duration lets the coverage check run without the audio (docs/feeds.md).
    extra += "<itunes:duration>12:40</itunes:duration>"
    url = http_server.add_bytes(
        "/feed.xml",
        rss([item("q", "Ten things", "missing.mp3", extra=extra)]),
        "application/rss+xml",
    )
    result = run_cli("run", url, "--data-dir", tmp_path / "d", "--json", "--allow-private-networks")
    assert result.code == 0, result.stderr
    (line,) = result.json_lines()
    transcript = json.loads(Path(line["artifacts"]["transcript_json"]).read_text())
    assert transcript["source"].startswith("feed:")
    assert transcript["duration"] > 700  # 12.5 minutes of cues
    assert http_server.count("/missing.mp3") == 0
    tree = json.loads(Path(line["artifacts"]["topics"]).read_text())
    assert len(tree["root"]["children"]) >= 3  # a real 12-minute talk has several topics
    assert_tree_contract(tree["root"], 0.0, tree["root"]["end"])


def test_three_topic_boundaries(tmp_path: Path) -> None:
    truth = json.loads((DEMO / "three-topics.json").read_text())
    result = run_cli("run", DEMO / "three-topics.ogg", "--data-dir", tmp_path / "d", "--json")
    assert result.code == 0, result.stderr
    (line,) = result.json_lines()
    tree = json.loads(Path(line["artifacts"]["topics"]).read_text())
    l1 = tree["root"]["children"]
    found = [node["start"] for node in l1[1:]]
    assert len(found) == len(truth["boundaries"]), [n["title"] for n in l1]
    for got, expected in zip(found, truth["boundaries"]):
        assert abs(got - expected) <= 10.0, (found, truth["boundaries"])
    summary = Path(line["artifacts"]["summary_md"]).read_text()
    assert summary.count("\n## [") == 3
