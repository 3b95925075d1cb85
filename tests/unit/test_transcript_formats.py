"""SRT / WebVTT / text / JSON writers, and round trips through the transcript parser."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from podmill.domain import Segment, Transcript, Word
from podmill.feeds.transcripts import parse_transcript
from podmill.transcript_formats import (
    MAX_CUE_CHARS,
    MAX_CUE_SECONDS,
    cues,
    to_json,
    to_srt,
    to_txt,
    to_vtt,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "transcripts"
MS = 0.0011  # a millisecond, plus float slack


def feed_transcript(name: str) -> Transcript:
    return parse_transcript((FIXTURES / name).read_bytes(), None)


def asr_like(
    seed: int = 7, segments: int = 12, speakers: tuple[str | None, ...] = (None,)
) -> Transcript:
    """Irregular word times with pauses, like a recogniser's output."""
    rng = random.Random(seed)
    vocabulary = ["so", "the", "podcast", "transcript", "AT&T", "x<y", "well,", "okay.", "hmm"]
    result: list[Segment] = []
    clock = 0.25
    for index in range(segments):
        speaker = speakers[index % len(speakers)]
        words = []
        start = clock
        for _ in range(rng.randint(2, 45)):
            word_start = round(clock + rng.random() * 0.3, 3)
            word_end = round(word_start + 0.08 + rng.random() * 0.5, 3)
            words.append(Word(rng.choice(vocabulary), word_start, word_end, 0.9, speaker))
            clock = word_end
        clock += 0.2
        result.append(
            Segment(start, round(clock, 3), " ".join(w.text for w in words), words, speaker)
        )
        clock += rng.random()
    return Transcript("en", round(clock, 3), result, "asr:test")


def assert_same_words(expected: Transcript, actual: Transcript, *, times: bool = True) -> None:
    assert [w.text for w in actual.words] == [w.text for w in expected.words]
    assert [w.speaker for w in actual.words] == [w.speaker for w in expected.words]
    if times:
        for want, got in zip(expected.words, actual.words, strict=True):
            assert got.start == pytest.approx(want.start, abs=MS)
            assert got.end == pytest.approx(want.end, abs=MS)


# --- round trips --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "podcast-namespace__buzzsprout-10-things.srt",
        "podcast-namespace__buzzsprout-10-things.vtt",
        "podcast-namespace__buzzsprout-10-things.html",
        "podcast-namespace__podcasting-qa-trailer.vtt",
    ],
)
@pytest.mark.parametrize("writer", [to_srt, to_vtt])
def test_feed_transcripts_round_trip_with_words_times_and_speakers(
    name: str, writer: Callable[[Transcript], str]
) -> None:
    original = feed_transcript(name)
    again = parse_transcript(writer(original).encode(), None)
    assert_same_words(original, again)


def test_vtt_with_word_timestamps_round_trips_recogniser_word_times() -> None:
    # Speakers carry forward in captions, so a speakerless segment after a named one would
    # read back as that speaker: the named and the speakerless cases are tested apart.
    for speakers in (("Ann", "Bob Lee"), (None,)):
        original = asr_like(speakers=speakers)
        again = parse_transcript(to_vtt(original, word_timestamps=True).encode(), "text/vtt")
        assert_same_words(original, again)
        starts = {round(s.start, 3) for s in again.segments}
        assert {round(s.start, 3) for s in original.segments} <= starts


@pytest.mark.parametrize("writer", [to_srt, to_vtt])
def test_recogniser_output_keeps_words_and_segment_bounds(
    writer: Callable[[Transcript], str],
) -> None:
    original = asr_like(speakers=("Ann", "Ann", "Bob Lee"))
    again = parse_transcript(writer(original).encode(), None)
    assert_same_words(original, again, times=False)
    bounds = [(round(s.start, 3), round(s.end, 3)) for s in again.segments]
    for segment in original.segments:
        assert any(abs(start - segment.start) < MS for start, _ in bounds)
        assert any(abs(end - segment.end) < MS for _, end in bounds)
    # Word times without word timestamps are estimates, but stay inside their cue.
    for segment in again.segments:
        assert all(segment.start <= w.start <= w.end <= segment.end for w in segment.words)


def test_json_round_trips_exactly() -> None:
    original = asr_like(speakers=("Ann", None))
    assert Transcript.from_dict(json.loads(to_json(original))) == original
    assert "AT&T" in to_json(original)


# --- cue layout ---------------------------------------------------------------------


def test_long_segments_split_into_cues_at_word_boundaries() -> None:
    original = asr_like(seed=3, segments=30)
    all_cues = cues(original)
    assert len(all_cues) > len(original.segments)
    for cue in all_cues:
        assert len(cue.words) == 1 or cue.end - cue.start <= MAX_CUE_SECONDS + 0.6
        assert len(cue.words) == 1 or len(cue.text) <= MAX_CUE_CHARS
        assert cue.text == " ".join(w.text for w in cue.words)
    assert [w for c in all_cues for w in c.words] == original.words


def test_srt_layout_and_speaker_prefix_only_on_change() -> None:
    words_a = [Word("Hello", 1.0, 1.5), Word("there.", 1.5, 2.0)]
    words_b = [Word("Still", 2.0, 2.5), Word("me.", 2.5, 3.0)]
    words_c = [Word("Hi!", 3.5, 3.9)]
    t = Transcript(
        "en",
        4.0,
        [
            Segment(1.0, 2.0, "Hello there.", words_a, "Ann"),
            Segment(2.0, 3.0, "Still me.", words_b, "Ann"),
            Segment(3.5, 3.9, "Hi!", words_c, "Bob"),
        ],
        "asr:test",
    )
    assert to_srt(t) == (
        "1\n00:00:01,000 --> 00:00:02,000\nAnn: Hello there.\n\n"
        "2\n00:00:02,000 --> 00:00:03,000\nStill me.\n\n"
        "3\n00:00:03,500 --> 00:00:03,900\nBob: Hi!\n"
    )
    assert to_vtt(t) == (
        "WEBVTT\n\n"
        "00:00:01.000 --> 00:00:02.000\n<v Ann>Hello there.\n\n"
        "00:00:02.000 --> 00:00:03.000\n<v Ann>Still me.\n\n"
        "00:00:03.500 --> 00:00:03.900\n<v Bob>Hi!\n"
    )
    assert to_txt(t) == "Ann: Hello there. Still me.\n\nBob: Hi!\n"


def test_long_lines_wrap_to_two_lines() -> None:
    text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    words = [Word(w, i * 0.3, i * 0.3 + 0.3) for i, w in enumerate(text.split())]
    t = Transcript("en", 5.0, [Segment(0.0, words[-1].end, text, words)], "asr:test")
    body = to_srt(t).split("\n")[2:4]
    assert " ".join(body) == text
    assert all(len(line) <= 42 for line in body)


def test_vtt_escapes_markup_and_hours_are_written() -> None:
    words = [Word("a<b", 3600.0, 3600.5), Word("&", 3600.5, 3601.0)]
    t = Transcript("en", 3601.0, [Segment(3600.0, 3601.0, "a<b &", words, "R&D <team>")], "x")
    vtt = to_vtt(t)
    assert "01:00:00.000 --> 01:00:01.000" in vtt
    assert "<v R&amp;D &lt;team&gt;>a&lt;b &amp;" in vtt
    (segment,) = parse_transcript(vtt.encode(), None).segments
    assert (segment.text, segment.speaker) == ("a<b &", "R&D <team>")


def test_text_without_speakers_is_one_paragraph_per_segment() -> None:
    t = Transcript(
        "en",
        3.0,
        [
            Segment(
                0.0, 1.0, " First  segment. ", [Word("First", 0, 0.5), Word("segment.", 0.5, 1)]
            ),
            Segment(1.0, 3.0, "Second.", [Word("Second.", 1, 3)]),
        ],
        "x",
    )
    assert to_txt(t) == "First segment.\n\nSecond.\n"
    assert to_txt(Transcript("en", 0.0, [], "x")) == ""
    assert to_srt(Transcript("en", 0.0, [], "x")) == ""


def test_segment_without_words_still_becomes_a_cue() -> None:
    t = Transcript("en", 2.0, [Segment(0.5, 2.0, "Music", [])], "x")
    assert to_srt(t) == "1\n00:00:00,500 --> 00:00:02,000\nMusic\n"
