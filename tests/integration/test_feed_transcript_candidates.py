"""Every podcast:transcript link is a candidate, and one that covers too little of the
audio falls back to ASR: real `podmill run` against a real HTTP server serving real
publisher transcripts (podcast-namespace, CC0) and a real PDF (partytime, MIT)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from support.cli import run_cli
from support.feeds import item, rss
from support.paths import DEMO, FIXTURES

SRT = FIXTURES / "transcripts" / "podcast-namespace__buzzsprout-10-things.srt"  # 0-754 s
TRAILER = FIXTURES / "transcripts" / "podcast-namespace__podcasting-qa-trailer.vtt"  # 0-25 s
PDF = FIXTURES / "feeds" / "partytime__epic-web.pdf"


def _fetch_notes(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "podmill.db") as db:
        (notes,) = db.execute("SELECT notes FROM steps WHERE stage = 'fetch'").fetchone()
    return json.loads(notes) if notes else []


def _run(url: str, data_dir: Path, **env: str):
    return run_cli(
        "run", url, "--data-dir", data_dir, "--json", "--allow-private-networks", env=env
    )


def _links(*links: tuple[str, str]) -> str:
    return "".join(f'<podcast:transcript url="{u}" type="{t}"/>' for u, t in links)


def test_each_candidate_is_tried_in_order_until_one_is_usable(http_server, tmp_path) -> None:
    # JSON is preferred but 404s, the WebVTT link serves a PDF, the SRT is the real file.
    http_server.add_status("/t.json", 404)
    http_server.add_file("/t.vtt", PDF, "text/vtt")
    http_server.add_file("/t.srt", SRT, "application/srt")
    http_server.add_status("/missing.mp3", 404)  # fetched only if ASR ran
    extra = _links(("t.srt", "application/srt"), ("t.vtt", "text/vtt"))
    extra += _links(("t.json", "application/json"))
    extra += "<itunes:duration>12:40</itunes:duration>"
    url = http_server.add_bytes(
        "/feed.xml",
        rss([item("q", "Ten things", "missing.mp3", extra=extra)]),
        "application/rss+xml",
    )
    result = _run(url, tmp_path / "d")
    assert result.code == 0, result.stderr
    (line,) = result.json_lines()
    transcript = json.loads(Path(line["artifacts"]["transcript_json"]).read_text())
    assert transcript["source"] == "feed:application/srt"
    assert http_server.count("/missing.mp3") == 0
    assert [http_server.count(p) for p in ("/t.json", "/t.vtt", "/t.srt")] == [1, 1, 1]
    notes = _fetch_notes(tmp_path / "d")
    assert len(notes) == 3, notes
    assert notes[0].startswith("feed transcript 1/3 ") and "/t.json (json): unusable" in notes[0]
    assert "404" in notes[0]
    assert notes[1].startswith("feed transcript 2/3 ") and "/t.vtt (vtt): unusable" in notes[1]
    assert notes[2].startswith("feed transcript 3/3 ") and "/t.srt (srt): used" in notes[2]


def test_no_usable_candidate_and_no_audio_says_why(http_server, tmp_path) -> None:
    http_server.add_status("/a.srt", 404)
    http_server.add_file("/b.vtt", PDF, "text/vtt")
    extra = _links(("a.srt", "application/srt"), ("b.vtt", "text/vtt"))
    url = http_server.add_bytes(
        "/feed.xml", rss([item("q", "Text only", None, extra=extra)]), "application/rss+xml"
    )
    result = _run(url, tmp_path / "d")
    assert result.code != 0
    assert http_server.count("/a.srt") == 1 and http_server.count("/b.vtt") == 1
    (line,) = result.json_lines()
    assert "none of the episode's 2 podcast:transcript link(s) is usable" in line["error"]
    # WebVTT ranks before SRT; a failed step keeps no notes, so its error lists the tries.
    tried = line["error"].split("tried ", 1)[1]
    assert tried.startswith("1/2 ") and "/b.vtt (vtt): unusable" in tried and "is not text" in tried
    assert "2/2 " in tried and "/a.srt (srt): unusable: HTTP 404" in tried


def test_short_transcript_is_used_with_min_coverage_zero(http_server, tmp_path) -> None:
    # 25 s of cues for an episode the feed says lasts 53 s: used only when told to.
    http_server.add_file("/t.vtt", TRAILER, "text/vtt")
    http_server.add_status("/missing.mp3", 404)
    extra = _links(("t.vtt", "text/vtt")) + "<itunes:duration>0:53</itunes:duration>"
    url = http_server.add_bytes(
        "/feed.xml", rss([item("q", "Trailer", "missing.mp3", extra=extra)]), "application/rss+xml"
    )
    result = _run(url, tmp_path / "d", PODMILL_FEED_TRANSCRIPTS__MIN_COVERAGE="0")
    assert result.code == 0, result.stderr
    (line,) = result.json_lines()
    transcript = json.loads(Path(line["artifacts"]["transcript_json"]).read_text())
    assert transcript["source"] == "feed:text/vtt"
    assert http_server.count("/missing.mp3") == 0


def test_late_first_cue_falls_back_without_knowing_the_duration(http_server, tmp_path) -> None:
    # The real SRT's first cue is at 0.179 s; with a start gap tighter than that it is
    # refused before the duration is known, and the audio is fetched for ASR (a 404
    # here; used, the transcript alone would have succeeded).
    http_server.add_file("/t.srt", SRT, "application/srt")
    http_server.add_status("/missing.mp3", 404)
    url = http_server.add_bytes(
        "/feed.xml",
        rss([item("q", "Ten", "missing.mp3", extra=_links(("t.srt", "application/srt")))]),
        "application/rss+xml",
    )
    result = _run(url, tmp_path / "d", PODMILL_FEED_TRANSCRIPTS__MAX_START_GAP_SECONDS="0.1")
    assert result.code != 0  # the fallback's audio is missing
    (line,) = result.json_lines()
    assert "/missing.mp3" in line["error"] and "404" in line["error"]
    fetched = [r.path for r in http_server.requests]
    assert fetched.index("/t.srt") < fetched.index("/missing.mp3")


@pytest.mark.slow
def test_transcript_covering_too_little_falls_back_to_asr(http_server, tmp_path) -> None:
    # The real 25 s trailer transcript on a 53 s episode: 48 % of the audio, under the
    # default feed_transcripts.min_coverage = 0.8. The feed states no duration, so the
    # audio is downloaded once, probed, and then transcribed.
    http_server.add_file("/t.vtt", TRAILER, "text/vtt")
    http_server.add_file("/ep.mp3", DEMO / "sonnet001.mp3", "audio/mpeg")
    url = http_server.add_bytes(
        "/feed.xml",
        rss([item("q", "Sonnet", "ep.mp3", extra=_links(("t.vtt", "text/vtt")))]),
        "application/rss+xml",
    )
    result = _run(url, tmp_path / "d")
    assert result.code == 0, result.stderr
    (line,) = result.json_lines()
    transcript = json.loads(Path(line["artifacts"]["transcript_json"]).read_text())
    assert transcript["source"].startswith("asr:")
    assert http_server.count("/ep.mp3") == 1  # the coverage probe's download is reused
    notes = _fetch_notes(tmp_path / "d")
    assert any("covers 48% of the 53 s audio" in n and "min_coverage = 0.8" in n for n in notes)
    assert notes[-1] == "no usable feed transcript (1 tried); using ASR"
