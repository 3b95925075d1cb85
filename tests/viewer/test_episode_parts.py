"""The episode page's parts on their own: byte ranges, the Content-Type of each audio
container (real files ffmpeg made), and the sentence view of a transcript."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from podmill.api.web.episode import RangeNotSatisfiable, audio_type, byte_range, transcript_view
from podmill.domain import Segment, Transcript, Word
from podmill.sentences import join_words, join_words_at, split_sentences


@pytest.mark.parametrize(
    "header,expected",
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=0-", (0, 999)),
        ("bytes=990-", (990, 999)),
        ("bytes=-10", (990, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=500-5000", (500, 999)),
        ("BYTES = 5 - 9", (5, 9)),
        ("bytes=0-1,5-9", None),  # several ranges: the whole file
    ],
)
def test_byte_range(header: str, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 1000) == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=1000-",
        "bytes=2000-3000",
        "bytes=9-5",
        "bytes=-0",
        "bytes=",
        "bytes=-",
        "bits=0-1",
        "bytes=a-b",
        "0-10",
    ],
)
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, 1000)


def test_an_empty_file_has_no_range() -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range("bytes=0-0", 0)


FORMATS = {
    "mp3": ("audio/mpeg", ["-c:a", "libmp3lame"]),
    "m4a": ("audio/mp4", ["-c:a", "aac"]),
    "ogg": ("audio/ogg", ["-c:a", "libvorbis"]),
    "opus": ("audio/ogg; codecs=opus", ["-c:a", "libopus"]),
    "wav": ("audio/wav", []),
    "flac": ("audio/flac", []),
}


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (apt install ffmpeg)")
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_each_container_gets_its_type_from_its_bytes(tmp_path: Path, fmt: str) -> None:
    content_type, codec = FORMATS[fmt]
    made = tmp_path / f"tone.{fmt}"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=1",
            *codec,
            str(made),
        ],
        check=True,
    )
    assert audio_type(made) == content_type
    # the stored name may say nothing (audio.audio): the bytes decide
    renamed = made.rename(tmp_path / "audio.audio")
    assert audio_type(renamed) == content_type


def test_a_file_that_is_not_audio_has_no_type(tmp_path: Path) -> None:
    page = tmp_path / "audio.html"
    page.write_text("<html><script>alert(1)</script></html>")
    assert audio_type(page) is None


def test_word_offsets_match_the_joined_text() -> None:
    words = ["Hello,", "self", "-made", "", "world", "(yes", ")", "ok."]
    text, offsets = join_words_at(words)
    assert text == join_words(words) == "Hello, self-made world (yes) ok."
    for word, at in zip(words, offsets):
        assert text[at : at + len(word.strip())] == word.strip()


def _words(spec: list[tuple[str, float, str | None]]) -> list[Word]:
    return [Word(text, start, start + 0.4, 1.0, speaker) for text, start, speaker in spec]


def test_sentences_make_paragraphs_that_break_at_a_new_speaker() -> None:
    words = _words(
        [
            ("Hi", 0.0, "A"),
            ("there.", 0.5, "A"),
            ("Yes", 1.0, "B"),
            ("indeed.", 1.5, "B"),
            ("And", 2.0, "B"),
            ("more.", 2.5, "B"),
            ("Back", 3.0, "A"),
            ("again.", 3.5, "A"),
        ]
    )
    transcript = Transcript("en", 4.0, [Segment(0.0, 4.0, "", words)], "test")
    view = transcript_view(transcript, split_sentences(transcript))
    assert view.speakers
    assert [p.speaker for p in view.paragraphs] == ["A", "B", "A"]
    assert [[s.text for s in p.sentences] for p in view.paragraphs] == [
        ["Hi there."],
        ["Yes indeed.", "And more."],
        ["Back again."],
    ]
    assert view.words["d"] == [0, 50, 50, 50, 50, 50, 50, 50]  # steps between word starts
    assert view.words["o"] == [0, 3, 0, 4, 0, 4, 0, 5]


def test_without_diarization_no_speakers_are_shown() -> None:
    words = _words([(f"w{i}.", i * 0.5, None) for i in range(20)])
    transcript = Transcript("en", 10.0, [Segment(0.0, 10.0, "", words)], "test")
    view = transcript_view(transcript, split_sentences(transcript))
    assert not view.speakers
    assert view.sentence_count == 20
    assert all(len(p.sentences) <= 6 for p in view.paragraphs)
