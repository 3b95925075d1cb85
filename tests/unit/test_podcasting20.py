"""Podcasting 2.0 outputs (feeds/podcasting.py, transcript_formats.podcast_transcript):
the JSON transcript and chapters against the specs' shapes (tests/support/podcasting.py),
WebVTT and SRT read back by third-party parsers (webvtt-py, srt), and the written-back
feed read by feedparser and ElementTree."""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import feedparser
import pytest
import srt
import webvtt

from podmill.domain import Episode, Person, Segment, TopicNode, Transcript, TranscriptLink, Word
from podmill.feeds.podcasting import (
    CHAPTERS_MIME,
    FeedFacts,
    FeedItem,
    chapters,
    enriched_feed,
    published_links,
)
from podmill.feeds.transcripts import parse_transcript
from podmill.transcript_formats import podcast_transcript, to_podcast_json, to_srt, to_vtt

from support.podcasting import PODCAST_NS, check_chapters, check_json_transcript

BASE = "https://cdn.example.com/show"


def _words(text: str, start: float, step: float, speaker: str | None) -> list[Word]:
    return [
        Word(w, start + i * step, start + i * step + step * 0.8, speaker=speaker)
        for i, w in enumerate(text.split())
    ]


def _segment(words: list[Word], speaker: str | None) -> Segment:
    return Segment(words[0].start, words[-1].end, " ".join(w.text for w in words), words, speaker)


@pytest.fixture
def two_voices() -> Transcript:
    """Ada's short line with characters markup must escape, then Bo's long turn (three
    cues), then an unattributed line."""
    ada = _words("Hello and welcome to the show & all <friends>", 0.5, 0.4, "Ada")
    bo = _words("Thanks Ada. " + " ".join(f"word{i}" for i in range(30)), 5.0, 0.5, "Bo")
    anon = _words("Goodbye everyone.", 21.0, 0.5, None)
    segments = [_segment(ada, "Ada"), _segment(bo, "Bo"), _segment(anon, None)]
    return Transcript("en", 30.0, segments, "asr:test")


def test_json_transcript_has_the_specs_shape_with_speakers_where_known(
    two_voices: Transcript,
) -> None:
    document = json.loads(to_podcast_json(two_voices))
    assert check_json_transcript(document) == []
    assert document["version"] == "1.0.0"
    segments = document["segments"]
    assert [s.get("speaker") for s in segments] == ["Ada", "Bo", "Bo", "Bo", None]
    assert "speaker" not in segments[-1]  # unknown: left out, not null
    assert segments[0] == {
        "speaker": "Ada",
        "startTime": 0.5,
        "endTime": 4.02,
        "body": "Hello and welcome to the show & all <friends>",  # JSON: no escaping
    }
    assert " ".join(s["body"] for s in segments).split() == two_voices.text.split()


def test_json_vtt_and_srt_agree_cue_for_cue_read_by_third_party_parsers(
    two_voices: Transcript,
) -> None:
    segments = podcast_transcript(two_voices)["segments"]
    captions = webvtt.from_string(to_vtt(two_voices))
    subtitles = list(srt.parse(to_srt(two_voices)))
    assert len(captions) == len(subtitles) == len(segments) == 5
    for segment, caption, subtitle in zip(segments, captions, subtitles, strict=True):
        start, end = segment["startTime"], segment["endTime"]
        vtt_times = (caption.start_time.in_milliseconds(), caption.end_time.in_milliseconds())
        assert tuple(ms / 1000 for ms in vtt_times) == (
            pytest.approx(start, abs=5e-4),
            pytest.approx(end, abs=5e-4),
        )
        assert (subtitle.start.total_seconds(), subtitle.end.total_seconds()) == (
            pytest.approx(start, abs=5e-4),
            pytest.approx(end, abs=5e-4),
        )
        assert caption.voice == segment.get("speaker")
        assert html.unescape(caption.text).split() == segment["body"].split()
        # SRT names a speaker where the voice changes
        content = subtitle.content.replace("\n", " ")
        assert content.endswith(segment["body"].split()[-1])


def test_podmill_reads_its_own_json_transcript_back(two_voices: Transcript) -> None:
    """The feed-transcript reader (what podmill does with a publisher's JSON) takes
    podmill's file: same speakers, same words, same times."""
    again = parse_transcript(to_podcast_json(two_voices).encode(), "application/json")
    assert again.text.split() == two_voices.text.split()
    assert [s.speaker for s in again.segments][:1] == ["Ada"]
    assert again.segments[0].start == pytest.approx(0.5)


def _tree() -> TopicNode:
    l2 = [
        TopicNode("t2.1", 2, 300.0, 420.0, 50, 70, title="Budgets"),
        TopicNode("t2.2", 2, 420.0, 600.0, 70, 100, title="Hiring"),
    ]
    topics = [
        TopicNode("t1", 1, 0.0, 300.0, 0, 50, title="Intro & news"),
        TopicNode("t2", 1, 300.0, 600.0, 50, 100, title="The company", children=l2),
        TopicNode("t3", 1, 600.0, 900.5, 100, 150, title="  "),
    ]
    return TopicNode("root", 0, 0.0, 900.5, 0, 150, title="Episode", children=topics)


def test_chapters_from_l1_topics_have_the_specs_shape() -> None:
    document = chapters(_tree(), title="Ep 1", podcast="The Show")
    assert check_chapters(document) == []
    assert document["version"] == "1.2.0"
    assert (document["title"], document["podcastName"]) == ("Ep 1", "The Show")
    assert document["chapters"] == [
        {"startTime": 0.0, "endTime": 300.0, "title": "Intro & news"},
        {"startTime": 300.0, "endTime": 600.0, "title": "The company"},
        {"startTime": 600.0, "endTime": 900.5, "title": "Part 3"},  # an untitled topic
    ]


def test_depth_two_puts_sub_topics_in_place_of_their_topic() -> None:
    document = chapters(_tree(), 2)
    assert check_chapters(document) == []
    assert "title" not in document
    assert [(c["startTime"], c["title"]) for c in document["chapters"]] == [
        (0.0, "Intro & news"),
        (300.0, "Budgets"),
        (420.0, "Hiring"),
        (600.0, "Part 4"),
    ]
    with pytest.raises(ValueError, match="depth 3"):
        chapters(_tree(), 3)


def test_the_spec_checkers_catch_what_they_are_for() -> None:
    """The test-side checkers can fail: each required field and type."""
    assert check_chapters({"chapters": [{"title": "x"}]}) == [
        "version: a string is required",
        "chapters[0].startTime: a number is required",
    ]
    assert check_chapters({"version": "1.2.0", "chapters": [{"startTime": 5}, {"startTime": 1}]})
    assert check_json_transcript({"version": "1.0.0", "segments": [{"startTime": "0"}]}) == [
        "segments[0].startTime: a number is required",
        "segments[0].body: a string is required",
    ]


def _feed() -> bytes:
    published = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    processed = Episode(
        "k1",
        "Ep 1: Q&A <live>",
        "https://host.example/ep1.mp3",
        guid="guid-1",
        published=published,
        mime_type="audio/mpeg",
        enclosure_length=1234,
        description="First & best",
        transcripts=[TranscriptLink("https://host.example/ep1.html", "text/html")],
        persons=[Person("Ada", role="host", href="https://ada.example")],
    )
    own_chapters = Episode(
        "k2",
        "Ep 2",
        "https://host.example/ep2.mp3",
        guid="guid-2",
        chapters_url="https://host.example/ep2-chapters.json",
    )
    new = Episode("k3", "Ep 3", "https://host.example/ep3.mp3", guid="guid-3")
    items = []
    for episode in (processed, own_chapters):
        links, chapters_url = published_links(BASE + "/", episode.episode_key)
        items.append(FeedItem(episode, 61.6, links, chapters_url))
    items.append(FeedItem(new))
    facts = FeedFacts("The Show", "https://host.example/feed.xml", "guid-of-show")
    return enriched_feed(facts, items)


def test_the_written_back_feed_parses_with_feedparser_and_carries_the_tags() -> None:
    document = _feed()
    parsed = feedparser.parse(document)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title == "The Show"
    assert [e.title for e in parsed.entries] == ["Ep 1: Q&A <live>", "Ep 2", "Ep 3"]
    first = parsed.entries[0]
    assert first.id == "guid-1"
    assert first.enclosures[0].href == "https://host.example/ep1.mp3"
    assert first.enclosures[0].length == "1234"
    assert first.published_parsed[:4] == (2026, 11, 3, 10)
    assert first.itunes_duration == "62"
    # the namespace is declared once, on <rss>
    assert document.count(b'xmlns:podcast="https://podcastindex.org/namespace/1.0"') == 1
    assert document.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<rss")


def _podcast_tags(item: ET.Element, name: str) -> list[dict[str, str]]:
    return [dict(tag.attrib) for tag in item.findall(f"{{{PODCAST_NS}}}{name}")]


def test_each_processed_item_links_podmills_transcripts_and_chapters() -> None:
    items = ET.fromstring(_feed()).find("channel").findall("item")
    first, second, third = items
    url = f"{BASE}/episodes/k1"
    assert _podcast_tags(first, "transcript") == [
        {"url": "https://host.example/ep1.html", "type": "text/html"},  # the publisher's
        {"url": f"{url}/transcript.json", "type": "application/json"},
        {"url": f"{url}/transcript.vtt", "type": "text/vtt", "rel": "captions"},
        {"url": f"{url}/transcript.srt", "type": "application/x-subrip", "rel": "captions"},
    ]
    assert _podcast_tags(first, "chapters") == [
        {"url": f"{url}/chapters.json", "type": CHAPTERS_MIME}
    ]
    assert first.find(f"{{{PODCAST_NS}}}person").attrib == {
        "role": "host",
        "href": "https://ada.example",
    }
    # one podcast:chapters per item: the publisher's own is kept
    assert _podcast_tags(second, "chapters") == [
        {"url": "https://host.example/ep2-chapters.json", "type": CHAPTERS_MIME}
    ]
    assert len(_podcast_tags(second, "transcript")) == 3
    # not processed: nothing of podmill's
    assert _podcast_tags(third, "transcript") == _podcast_tags(third, "chapters") == []
    assert third.find("guid").attrib == {"isPermaLink": "false"}
