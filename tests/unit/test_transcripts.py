"""Publisher transcripts: the spec's example files, format sniffing, speakers, errors."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from podmill.domain import Transcript, TranscriptLink
from podmill.errors import TranscriptFormatError
from podmill.feeds.transcripts import (
    choose_transcript,
    parse_transcript,
    split_speaker_prefix,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "transcripts"
BUZZSPROUT = "podcast-namespace__buzzsprout-10-things"
SPEAKER_TURNS = [
    "Travis",
    "Sarah",
    "Travis",
    "Gilon",
    "Travis",
    "Gilon",
    "Travis",
    "Sarah",
    "Gilon",
    "Travis",
]


@cache
def fixture(name: str, mime: str | None = None) -> Transcript:
    return parse_transcript((FIXTURES / name).read_bytes(), mime, url=f"https://x.example/{name}")


def turns(t: Transcript) -> list[str | None]:
    result: list[str | None] = []
    for segment in t.segments:
        if not result or result[-1] != segment.speaker:
            result.append(segment.speaker)
    return result


def assert_well_timed(t: Transcript) -> None:
    words = t.words
    assert words
    for segment in t.segments:
        assert segment.start <= segment.end
        for word in segment.words:
            assert segment.start <= word.start <= word.end <= segment.end
            assert word.speaker == segment.speaker
    for before, after in itertools.pairwise(words):
        assert before.start <= after.start
    assert t.duration >= t.segments[-1].end


def normalised(t: Transcript) -> list[str]:
    return [re.sub(r"[^\w']", "", w.text.lower()) for w in t.words]


# --- the spec's example files -------------------------------------------------------


def test_srt_cues_speakers_and_times() -> None:
    t = fixture(f"{BUZZSPROUT}.srt", "application/srt")
    assert t.source == "feed:application/srt"
    assert len(t.segments) == 222
    first = t.segments[0]
    assert (first.start, first.end, first.speaker) == (0.179, 2.399, "Travis")
    assert first.text == "When you first get started in podcasting, it's"
    assert [w.text for w in first.words][:3] == ["When", "you", "first"]
    assert first.words[0].start == 0.179 and first.words[-1].end == 2.399
    assert t.segments[-1].end == pytest.approx(754.769)
    assert turns(t) == SPEAKER_TURNS
    assert_well_timed(t)


def test_vtt_with_bom_crlf_voice_tags_and_name_prefixes() -> None:
    t = fixture(f"{BUZZSPROUT}.vtt", "text/vtt")
    assert t.source == "feed:text/vtt"
    assert len(t.segments) == 222
    assert not any("<v" in s.text or "\r" in s.text for s in t.segments)
    assert turns(t) == SPEAKER_TURNS  # <v Travis> tags and plain "Gilon:" prefixes
    assert_well_timed(t)


def test_html_turns_with_cite_time_and_entities() -> None:
    t = fixture(f"{BUZZSPROUT}.html", "text/html")
    assert t.source == "feed:text/html"
    assert len(t.segments) == 10
    assert [s.start for s in t.segments[:3]] == [0.0, 53.0, 102.0]
    assert t.segments[0].end == 53.0  # a turn lasts until the next one starts
    assert "it's" in t.segments[0].text  # &#39; decoded
    assert turns(t) == SPEAKER_TURNS
    assert_well_timed(t)


def test_html_last_turn_ends_at_the_given_duration() -> None:
    data = (FIXTURES / f"{BUZZSPROUT}.html").read_bytes()
    t = parse_transcript(data, "text/html", duration=760.0)
    assert t.segments[-1].end == 760.0
    assert t.duration == 760.0


def test_the_three_buzzsprout_formats_agree() -> None:
    srt, vtt, html = (fixture(f"{BUZZSPROUT}.{ext}") for ext in ("srt", "vtt", "html"))
    counts = [len(t.words) for t in (srt, vtt, html)]
    assert max(counts) <= min(counts) * 1.10
    for other in (vtt, html):
        shared = sum((Counter(normalised(srt)) & Counter(normalised(other))).values())
        assert shared >= 0.9 * len(srt.words)
        assert turns(other) == turns(srt)
    assert {s.speaker for s in srt.segments} == {"Travis", "Sarah", "Gilon"}
    # Same episode, same clock: the HTML turn times match the SRT's speaker changes.
    srt_changes = [
        s.start
        for i, s in enumerate(srt.segments)
        if i == 0 or s.speaker != srt.segments[i - 1].speaker
    ]
    assert [s.start for s in html.segments] == pytest.approx(srt_changes, abs=1.0)


def test_short_vtt_with_entity_and_voice_on_every_cue() -> None:
    t = fixture("podcast-namespace__podcasting-qa-trailer.vtt")
    assert len(t.segments) == 7
    assert turns(t) == ["Sarah", "Gillian"]
    assert "Podcasting Q&A," in t.text
    assert t.duration == 25.35


def test_json_word_segments_keep_their_times_and_group_into_sentences() -> None:
    t = fixture("podcast-namespace__example.json", "application/json")
    assert t.source == "feed:application/json"
    assert [(s.speaker, s.text) for s in t.segments] == [
        ("Darth Vader", "I am your father."),
        ("Luke", "Nooooo"),
    ]
    assert [(w.text, w.start, w.end) for w in t.words] == [
        ("I", 0.5, 0.75),
        ("am", 1.0, 1.25),
        ("your", 1.5, 2.0),
        ("father.", 2.25, 2.5),
        ("Nooooo", 2.75, 3.0),
    ]
    assert_well_timed(t)


# --- format detection ---------------------------------------------------------------


@pytest.mark.parametrize("mime", [None, "text/plain", "application/octet-stream", "text/html"])
def test_content_beats_a_missing_or_wrong_mime_type(mime: str | None) -> None:
    srt = fixture(f"{BUZZSPROUT}.srt")
    data = (FIXTURES / f"{BUZZSPROUT}.srt").read_bytes()
    t = parse_transcript(data, mime)
    assert t.source == "feed:application/srt"
    assert [w.text for w in t.words] == [w.text for w in srt.words]
    vtt = (FIXTURES / f"{BUZZSPROUT}.vtt").read_bytes()
    assert parse_transcript(vtt, mime).source == "feed:text/vtt"
    example = (FIXTURES / "podcast-namespace__example.json").read_bytes()
    assert parse_transcript(example, mime).source == "feed:application/json"


def test_declared_mime_alias_is_kept_in_the_source() -> None:
    data = (FIXTURES / f"{BUZZSPROUT}.srt").read_bytes()
    assert parse_transcript(data, "application/x-subrip").source == "feed:application/x-subrip"
    assert parse_transcript(data, "text/srt; charset=utf-8").source == "feed:text/srt"


def test_headerless_webvtt_labelled_as_such_stays_webvtt() -> None:
    data = b"00:01.000 --> 00:02.000\nHello\n"
    assert parse_transcript(data, "text/vtt").source == "feed:text/vtt"
    assert parse_transcript(data, None, url="https://x/a.vtt").source == "feed:text/vtt"
    assert parse_transcript(data, None).source == "feed:application/srt"


def test_url_extension_decides_html_without_mime() -> None:
    data = b"<cite>Ann:</cite><time>0:05</time><p>Hello there.</p>"
    t = parse_transcript(data, None, url="https://x/t.html")
    assert t.source == "feed:text/html"
    assert (t.segments[0].start, t.segments[0].speaker) == (5.0, "Ann")


def test_srt_details() -> None:
    data = (
        "1\r\n00:00:01,000 --> 00:00:02,500\r\n<i>Hello</i> &amp; welcome\r\n\r\n"
        "2\r\n00:00:02,500 --> 00:00:04,000\r\n{\\an8}Dr. Who: Second line\r\n"
        "3\n00:00:04,000 --> 00:00:05,000 X1:0\n42\n\n"
        "4\n00:00:05,000 --> 00:00:04,000\nbackwards\n"
    ).encode("cp1252")
    t = parse_transcript(data, "application/srt")
    assert [s.text for s in t.segments] == [
        "Hello & welcome",
        "Second line",
        "42",
        "backwards",
    ]
    assert [s.speaker for s in t.segments] == [None, "Dr. Who", "Dr. Who", "Dr. Who"]
    assert t.segments[-1].end == t.segments[-1].start == 5.0


def test_vtt_details() -> None:
    data = (
        b"WEBVTT - with a header\n\nNOTE a comment\nover two lines\n\n"
        b"STYLE\n::cue { color: red }\n\n"
        b"intro\n00:01.000 --> 00:03.000 align:start position:10%\n"
        b"<v.loud Mary Ann>Hi <c.yellow>there</c> &lt;3</v>\n\n"
        b"01:00:00.000 --> 01:00:02.000\n<lang en>Still Mary</lang>\n\n"
        b"01:00:02.000 --> 01:00:04.000\nOne <01:00:03.000>two <01:00:03.500>three\n"
    )
    t = parse_transcript(data, "text/vtt")
    assert [(s.start, s.text, s.speaker) for s in t.segments] == [
        (1.0, "Hi there <3", "Mary Ann"),
        (3600.0, "Still Mary", "Mary Ann"),
        (3602.0, "One two three", "Mary Ann"),
    ]
    # Inline timestamps give word times.
    assert [(w.text, w.start, w.end) for w in t.segments[2].words] == [
        ("One", 3602.0, 3603.0),
        ("two", 3603.0, 3603.5),
        ("three", 3603.5, 3604.0),
    ]


def test_words_share_a_cue_by_length_and_punctuation_joins_its_word() -> None:
    data = b"1\n00:00:10,000 --> 00:00:12,000\nab , abcd .\n"
    (segment,) = parse_transcript(data, None).segments
    assert [(w.text, w.start, w.end) for w in segment.words] == [
        ("ab,", 10.0, 10.75),  # 3 of the 8 characters
        ("abcd.", 10.75, 12.0),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sarah: Hello", ("Sarah", "Hello")),
        ("Mary Ann Smith: Hello", ("Mary Ann Smith", "Hello")),
        ("Speaker 2: Hello", ("Speaker 2", "Hello")),
        ("SPEAKER_00: Hello", ("SPEAKER_00", "Hello")),
        ("Dr. Who: Hello", ("Dr. Who", "Hello")),
        ("So here is the thing: it works", (None, "So here is the thing: it works")),
        ("Note: this is not a speaker", (None, "Note: this is not a speaker")),
        ("sarah: lowercase", (None, "sarah: lowercase")),
        ("At 10:30 we met", (None, "At 10:30 we met")),
        ("Sarah:", (None, "Sarah:")),
    ],
)
def test_speaker_prefixes(text: str, expected: tuple[str | None, str]) -> None:
    assert split_speaker_prefix(text) == expected


def test_podmill_json_is_read_back() -> None:
    original = fixture(f"{BUZZSPROUT}.srt")
    data = json.dumps(original.to_dict()).encode()
    t = parse_transcript(data, "application/json")
    assert t.words == original.words
    assert t.source == "feed:application/json"


# --- untimed text -------------------------------------------------------------------


def test_plain_text_is_spread_over_the_duration() -> None:
    data = b"Host: Welcome to the show. Today we talk about bees!\n\nGuest: Thanks. Bees are great."
    t = parse_transcript(data, "text/plain", duration=60.0)
    assert t.source == "feed:text/plain (times estimated)"
    assert [(s.speaker, s.text) for s in t.segments] == [
        ("Host", "Welcome to the show."),
        ("Host", "Today we talk about bees!"),
        ("Guest", "Thanks."),
        ("Guest", "Bees are great."),
    ]
    assert t.segments[0].start == 0.0 and t.segments[-1].end == 60.0
    # Time is shared by words: 4 + 5 + 1 + 3 words over 60 s.
    assert t.segments[1].start == pytest.approx(60 * 4 / 13, abs=0.001)
    assert_well_timed(t)


def test_plain_text_without_duration_assumes_150_words_per_minute() -> None:
    t = parse_transcript(b" ".join([b"word"] * 300), "text/plain")
    assert t.duration == pytest.approx(120.0)


def test_html_without_times_is_estimated_and_keeps_speakers() -> None:
    data = b"<html><body><cite>A:</cite><p>One two.</p><cite>B:</cite><p>Three.</p></body></html>"
    t = parse_transcript(data, "text/html", duration=9.0)
    assert t.source == "feed:text/html (times estimated)"
    assert [(s.speaker, s.start, s.end) for s in t.segments] == [("A", 0.0, 6.0), ("B", 6.0, 9.0)]


def test_html_page_without_transcript_markup_reads_as_text() -> None:
    data = b"<html><head><style>p{}</style></head><body><div>Just words here.</div></body></html>"
    t = parse_transcript(data, "text/html")
    assert t.text == "Just words here."
    assert t.source.endswith("(times estimated)")


# --- choosing a link ----------------------------------------------------------------


def link(
    mime: str, url: str = "https://x/t", language: str | None = None, rel: str | None = None
) -> TranscriptLink:
    return TranscriptLink(url=url, mime_type=mime, language=language, rel=rel)


def test_choose_transcript_prefers_richer_formats() -> None:
    plain, html = link("text/plain"), link("text/html")
    srt, vtt, js = (
        link("application/x-subrip", rel="captions"),
        link("text/vtt"),
        link("application/json"),
    )
    assert choose_transcript([plain, html, srt, vtt, js]) is js
    assert choose_transcript([plain, html, srt, vtt]) is vtt
    assert choose_transcript([plain, srt, html]) is srt
    assert choose_transcript([plain, html]) is html
    assert choose_transcript([link("", url="https://x/a.vtt"), plain]).url == "https://x/a.vtt"
    assert choose_transcript([link("application/pdf"), plain]) is plain
    assert choose_transcript([]) is None


def test_choose_transcript_by_language() -> None:
    spanish = link("application/json", language="es")
    english = link("application/srt", language="en-US")
    unknown = link("text/vtt")
    assert choose_transcript([spanish, english, unknown], language="en") is english
    assert choose_transcript([spanish, unknown], language="en") is unknown
    assert choose_transcript([spanish], language="en") is spanish
    assert choose_transcript([spanish, english]) is spanish


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "mime", "fragment"),
    [
        (b"", "text/vtt", "is empty (0 bytes)"),
        (b"  \r\n ", None, "is empty"),
        (bytes(range(256)) * 4, None, "is not text (binary data"),
        (b"\x00\x01\x02garbage", "application/srt", "is not text"),
        (b"WEBVTT\n\nno cues here\n", "text/vtt", "has no cues"),
        (b"just some words", "application/srt", "has no cues"),
        (b"{not json", "application/json", "is not valid JSON"),
        (b'{"version": "1.0.0"}', "application/json", "has no 'segments' list"),
        (b'{"segments": [{"body": "x"}]}', None, "has no segment with a body and a startTime"),
        (b"<html><body></body></html>", "text/html", "contains no text"),
        (b"1\n00:00:01,000 --> 00:00:02,000\n<i></i>\n", None, "contains no text"),
    ],
)
def test_unreadable_transcripts_raise_a_clear_error(
    data: bytes, mime: str | None, fragment: str
) -> None:
    with pytest.raises(TranscriptFormatError) as caught:
        parse_transcript(data, mime, url="https://x/t")
    assert fragment in str(caught.value)
    assert "https://x/t" in str(caught.value) or "no text" in str(caught.value)


# --- lenient timestamps, unreadable cues (issue 17) -----------------------------------


def test_lenient_timestamps_of_the_webvtt_test_suite_are_read() -> None:
    """WPT's timings-too-short.vtt: "0000.000" (seconds only), "00:00:0.000",
    "00:00:00.0", "00:00:00", "0:00.000"… were dropped before (11 of 32 cues read)."""
    t = fixture("wpt__timings-too-short.vtt")
    assert len(t.segments) == 23
    # "00:", "00", "0", "", ":00.", "00.", "0.", "." and "00:00:" stay unreadable, counted.
    assert t.unreadable_cues == 9
    assert t.segments[0].text == "text1" and t.segments[-1].text == "text2"
    assert Transcript.from_dict(t.to_dict()).unreadable_cues == 9


def test_hours_past_two_digits_and_short_fractions() -> None:
    assert fixture("mozilla-vttjs__max-spot-digits.vtt").text == "Text"  # 000:00:00.000
    (segment,) = fixture("mozilla-vttjs__fraction-digits.vtt").segments  # 00:00.00
    assert (segment.start, segment.end) == (0.0, 2.0)
    t = fixture("wpt__timings-too-long.vtt")
    assert t.unreadable_cues == 5  # "00::00:00.000", "00:00:00..000", …
    assert t.segments[-1].text == "text2"


@pytest.mark.parametrize(
    ("line", "start", "end"),
    [
        ("0.860 --> 7.380", 0.86, 7.38),
        ("1:02.5 --> 1:04", 62.5, 64.0),
        ("00:01,5 --> 00:02,25", 1.5, 2.25),
        ("100:00:00.000 --> 100:00:01.000", 360000.0, 360001.0),
        ("0:00:59,001 --> 0:01:00,000", 59.001, 60.0),
    ],
)
def test_lenient_timing_line_forms(line: str, start: float, end: float) -> None:
    (segment,) = parse_transcript(f"1\n{line}\nHello there\n".encode(), "application/srt").segments
    assert (segment.start, segment.end) == (start, end)


def test_a_file_whose_timing_lines_are_all_unreadable_says_so() -> None:
    with pytest.raises(TranscriptFormatError, match="none of its 2 timing lines could be read"):
        parse_transcript(b"WEBVTT\n\n00: --> 00:01\nA\n\n0:75 --> 0:80\nB\n", "text/vtt")


# --- punctuation and spacing (issue 17) ------------------------------------------------


@pytest.mark.parametrize("suffix", [".srt", ".vtt", ".html"])
def test_no_space_before_closing_punctuation_in_what_is_written(suffix: str) -> None:
    """The Buzzsprout files write "podcast ." and "um ,"; the text podmill writes does not."""
    from podmill.transcript_formats import to_srt, to_txt, to_vtt

    t = fixture(f"{BUZZSPROUT}{suffix}")
    assert "um, " in t.text
    for out in (to_srt(t), to_vtt(t), to_txt(t), t.text):
        assert not re.search(r"\S [,.?!;:](?=\s|$)", out)


def test_tags_leave_no_space_behind() -> None:
    data = b"WEBVTT\n\n00:00:01.000 --> 00:00:03.000\n<v Bob><i>Hello</i>, <c.loud>world</c> .\n"
    (segment,) = parse_transcript(data, "text/vtt").segments
    assert (segment.speaker, segment.text) == ("Bob", "Hello, world.")
    assert [w.text for w in segment.words] == ["Hello,", "world."]


def test_json_punctuation_entries_join_the_word_before_and_shared_spans_are_shared() -> None:
    """Word-level exports give punctuation its own entry and repeat one span on several
    words (podcast-namespace's first example, a Buzzsprout export, has 21.63–21.63 twice).
    No public export with bodies and shared spans was found; the entries are inline."""
    data = json.dumps(
        {
            "version": "1.0.0",
            "segments": [
                {"speaker": "Travis", "startTime": 21.0, "endTime": 22.0, "body": "ten"},
                {"speaker": "Travis", "startTime": 21.0, "endTime": 22.0, "body": "things"},
                {"speaker": "Travis", "startTime": 22.0, "endTime": 22.0, "body": ","},
                {"speaker": "Travis", "startTime": 22.1, "endTime": 22.5, "body": "ok"},
                {"speaker": "Travis", "startTime": 22.5, "endTime": 22.5, "body": "?"},
            ],
        }
    ).encode()
    t = parse_transcript(data, "application/json")
    assert t.text == "ten things, ok?"
    assert [(w.text, w.start, w.end) for w in t.words] == [
        ("ten", 21.0, 21.3),  # 3 of the 10 characters
        ("things,", 21.3, 22.0),
        ("ok?", 22.1, 22.5),
    ]
    assert_well_timed(t)


def test_spec_json_speakers_reach_every_written_format() -> None:
    from podmill.transcript_formats import to_json, to_txt, to_vtt

    t = fixture("podcast-namespace__example.json")
    assert "<v Darth Vader>I am your father." in to_vtt(t)
    assert "<v Luke>Nooooo" in to_vtt(t)
    assert to_txt(t) == "Darth Vader: I am your father.\n\nLuke: Nooooo\n"
    written = json.loads(to_json(t))
    assert [s["speaker"] for s in written["segments"]] == ["Darth Vader", "Luke"]
    assert {w["speaker"] for w in written["segments"][0]["words"]} == {"Darth Vader"}
