"""The timing invariant on every transcript podmill writes, over every transcript fixture.

Each fixture is parsed and written through ``stages.write_transcript`` into a real
artifact store; the files are then read back with a reader of their own (not podmill's
parser) and checked: word starts never go backwards, nothing ends before it starts, and
SRT/WebVTT cues are in order and never overlap.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from podmill.domain import Episode, Segment, Transcript, Word
from podmill.errors import TranscriptFormatError
from podmill.feeds.transcripts import parse_transcript
from podmill.pipeline.context import StageContext
from podmill.pipeline.stages import write_transcript
from podmill.settings import Settings
from podmill.storage.artifacts import ArtifactStore
from podmill.transcript_formats import TranscriptTimingError, check_timing, prepare, to_srt

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# Feeds in tests/fixtures/feeds link their transcripts by http(s) URL only; none is local.
TRANSCRIPTS = sorted(
    [*(FIXTURES / "transcripts").iterdir(), *(FIXTURES / "corpus" / "transcripts").iterdir()]
)
# Real word-level export whose entries carry times but no body: nothing to write.
UNREADABLE = {"podcast-namespace__buzzsprout-word-times.json"}
_STAMP = r"(\d+):(\d\d):(\d\d)[.,](\d{3})"
_TIMING = re.compile(rf"^{_STAMP} --> {_STAMP}$", re.MULTILINE)


def cue_spans(text: str) -> list[tuple[float, float]]:
    spans = []
    for m in _TIMING.finditer(text):
        h1, m1, s1, f1, h2, m2, s2, f2 = (int(g) for g in m.groups())
        spans.append((h1 * 3600 + m1 * 60 + s1 + f1 / 1000, h2 * 3600 + m2 * 60 + s2 + f2 / 1000))
    return spans


def assert_cues_in_order(spans: list[tuple[float, float]], name: str) -> None:
    assert spans, name
    for start, end in spans:
        assert start <= end, (name, start, end)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, (name, end, start)


def write(tmp_path: Path, transcript: Transcript) -> StageContext:
    settings = Settings(data_dir=tmp_path / "data")
    ctx = StageContext(
        settings=settings,
        episode=Episode(episode_key="k", title="t", audio_url=None),
        fingerprint="f",
        store=ArtifactStore(settings.data_dir),
    )
    write_transcript(ctx, transcript)
    return ctx


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.name)
def test_every_written_transcript_keeps_time_in_order(tmp_path: Path, path: Path) -> None:
    data = path.read_bytes()
    if path.name in UNREADABLE:
        with pytest.raises(TranscriptFormatError, match="no segment with a body"):
            parse_transcript(data, None, url=path.name)
        return
    ctx = write(tmp_path, parse_transcript(data, None, url=path.name))

    assert_cues_in_order(cue_spans(ctx.path("transcript.srt").read_text()), "srt")
    assert_cues_in_order(cue_spans(ctx.path("transcript.vtt").read_text()), "vtt")
    written = json.loads(ctx.path("transcript.json").read_text())
    words = [w for s in written["segments"] for w in s["words"]]
    assert words
    for word in words:
        assert word["start"] <= word["end"], word
    for before, after in itertools.pairwise(words):
        assert before["start"] <= after["start"], (before, after)
    for before, after in itertools.pairwise(written["segments"]):
        assert before["end"] <= after["start"], (before["text"], after["text"])


def test_a_recogniser_transcript_with_overlaps_is_written_in_order(tmp_path: Path) -> None:
    """ASR output (word times overlapping by a few ms, one segment starting before the
    last one ended) goes through the same gate."""
    transcript = Transcript(
        "en",
        4.0,
        [
            Segment(0.0, 2.1, "Hello there.", [Word("Hello", 0.0, 1.05), Word("there.", 1.0, 2.1)]),
            Segment(
                2.0, 4.0, "General Kenobi.", [Word("General", 2.0, 3.0), Word("Kenobi.", 3.0, 4.0)]
            ),
        ],
        "asr:tiny.en",
    )
    with pytest.raises(TranscriptTimingError, match="overlaps"):
        check_timing(transcript)
    ctx = write(tmp_path, transcript)
    assert_cues_in_order(cue_spans(ctx.path("transcript.srt").read_text()), "srt")
    # Times that were already in order are not touched.
    written = Transcript.from_dict(json.loads(ctx.path("transcript.json").read_text()))
    assert [(w.start, w.end) for w in written.words] == [
        (0.0, 1.0),
        (1.0, 2.0),
        (2.0, 3.0),
        (3.0, 4.0),
    ]


def test_the_check_names_a_word_that_runs_backwards() -> None:
    transcript = Transcript(
        "en", 3.0, [Segment(0.0, 3.0, "a b", [Word("a", 2.0, 3.0), Word("b", 1.0, 1.5)])], "x"
    )
    with pytest.raises(TranscriptTimingError, match=r"'b' at 1.0 s starts before 'a' at 2.0 s"):
        check_timing(transcript)
    assert [(w.start, w.end) for w in prepare(transcript).words] == [(2.0, 2.0), (2.0, 2.0)]


def test_simultaneous_cues_of_a_real_file_are_written_one_after_another() -> None:
    """WPT's timings-omitted-hours.vtt has three cues on 0–1 s; before, the SRT written
    from it repeated 00:00:00,000 --> 00:00:01,000 three times."""
    path = FIXTURES / "transcripts" / "wpt__timings-omitted-hours.vtt"
    srt = to_srt(prepare(parse_transcript(path.read_bytes(), "text/vtt")))
    spans = cue_spans(srt)
    assert len(spans) == 3
    assert_cues_in_order(spans, "srt")
