"""Every feed of the shared corpus has a verified outcome: N episodes, or a FeedError.

Licence-compatible feeds are committed under tests/fixtures/feeds/. The AntennaPod
feeds are GPL-3.0, so they are read from the shared corpus and skipped without it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest

from podmill.errors import FeedError
from podmill.feeds.parse import ParsedFeed, parse_feed

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "feeds"
# Relative URLs resolve against this, so tests can see where they went.
BASE = "https://feeds.example.com/shows/"
BIG = (
    "rss-parser__giantbomb-podcast.rss",
    "partytime__no-agenda.xml",
    "partytime__sentimental-garbage.xml",
    "partytime__1865.xml",
)


@dataclass(frozen=True)
class Yields:
    episodes: int
    skipped: int = 0


@dataclass(frozen=True)
class Fails:
    message: str


EXPECTED: dict[str, Yields | Fails] = {
    # AntennaPod (GPL-3.0: read from the shared corpus only)
    "antennapod__feed-atom-testAtomBasic.xml": Yields(10),
    "antennapod__feed-rss-testPodcastIndexTranscript.xml": Yields(1),
    "antennapod__feed-rss-testRss2Basic.xml": Yields(10),
    # Apple's iTunes sample: leading newline before <?xml?>, audio/x-m4a
    "feedjira__itunes.xml": Yields(3),
    # feedparser test files: Podlove chapters, and malformed / item-less documents
    "feedparser__atomsimplechapter.xml": Yields(1),
    "feedparser__rss2.0simplechapter.xml": Yields(1),
    "feedparser__bozo_invalid-bytes-with-bom.xml": Fails(
        "feed XML is malformed and no items could be recovered: unclosed token"
    ),
    "feedparser__http_high_bit_date.xml": Fails("feed has no items"),
    "feedparser__rss_incomplete_cdata.xml": Fails(
        "feed has 1 item but none with an audio enclosure or a transcript (1 with no enclosure)"
    ),
    "feedparser__undeclared_namespace.xml": Fails(
        "feed XML is malformed and no items could be recovered: unbound prefix"
    ),
    "feedparser__utf-16le-bom.xml": Fails("feed has no items"),
    "feedparser__windows1255.xml": Fails(
        "feed has 1 item but none with an audio enclosure or a transcript (1 with no enclosure)"
    ),
    # Real feeds (partytime snapshots)
    "partytime__1865.xml": Yields(61),
    # video enclosures, each with an audio/mp4 podcast:alternateEnclosure
    "partytime__animated-no-agenda.xml": Yields(20),
    "partytime__changing-the-tide.xml": Yields(15),
    "partytime__dk-podcast.xml": Yields(59),
    # a PDF in partytime's real-world fixtures: said in words, not "not XML"
    "partytime__epic-web.pdf": Fails("not a feed: the document is a PDF document"),
    "partytime__no-agenda.xml": Yields(29),
    "partytime__pc20rss.xml": Yields(56),
    # four podcast:liveItem before the items, <image title=...> before them
    "partytime__podverse-test-feed.xml": Yields(5),
    "partytime__sentimental-garbage.xml": Yields(138),
    "partytime__themnshow.xml": Yields(54),
    "podcast-namespace__example.xml": Yields(3),
    # gPodder podcastparser test files
    "podcastparser__html_in_description_rss_both_different.rss": Yields(1),
    "podcastparser__itunes_no_xmlns.rss": Fails(
        "feed has 1 item but none with an audio enclosure or a transcript (1 with no enclosure)"
    ),
    "podcastparser__no_guid.rss": Yields(1),
    # <enclosure type="audio/ogg" length="3000000"/>: said, not "no enclosure"
    "podcastparser__no_url.rss": Fails(
        "feed has 1 item but none with an audio enclosure or a transcript (1 whose "
        "<enclosure> has no url attribute: Untitled episode (item 1)); ask the publisher"
    ),
    "podcastparser__relative.rss": Yields(1),
    # rss-parser test files
    "rss-parser__giantbomb-podcast.rss": Yields(730),
    "rss-parser__heraldsun.rss": Yields(2),
    "rss-parser__itunes-missing-image.rss": Yields(131),
    "rss-parser__uolNoticias.rss": Fails(
        "feed has 15 items but none with an audio enclosure or a transcript (15 with no enclosure)"
    ),
}


def feed_path(name: str) -> Path:
    local = FIXTURES / name
    if local.exists():
        return local
    if not (CORPUS / name).exists():
        pytest.skip(f"{name} is not committed (GPL-3.0) and {CORPUS} is absent")
    return CORPUS / name


@cache
def parsed(name: str) -> ParsedFeed:
    # Cached: the giantbomb feed (1.6 MB, 730 items) is parsed once per session.
    return parse_feed(feed_path(name).read_bytes(), BASE + name)


def test_the_table_covers_every_corpus_and_fixture_feed() -> None:
    committed = {p.name for p in FIXTURES.iterdir() if p.is_file()}
    assert committed <= set(EXPECTED)
    assert not any(name.startswith("antennapod__") for name in committed), "GPL-3.0 files"
    if CORPUS.is_dir():
        # committed fixtures may go beyond the shared corpus (tests/fixtures/README.md)
        assert {p.name for p in CORPUS.iterdir() if p.is_file()} | committed == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_outcome(name: str) -> None:
    expected = EXPECTED[name]
    if isinstance(expected, Fails):
        data = feed_path(name).read_bytes()
        with pytest.raises(FeedError) as caught:
            parse_feed(data, BASE + name)
        message = str(caught.value)
        assert expected.message in message
        assert "\n" not in message
        return
    feed = parsed(name)
    assert len(feed.episodes) == expected.episodes
    assert len(feed.skipped) == expected.skipped
    keys = [e.episode_key for e in feed.episodes]
    assert len(set(keys)) == len(keys), "episode keys must be unique within a feed"
    for episode in feed.episodes:
        assert episode.feed_key == feed.feed_key
        assert episode.title
        assert episode.audio_url is None or episode.audio_url.startswith(("http://", "https://"))
        assert episode.audio_url or episode.transcripts
        assert episode.published is None or episode.published.tzinfo is not None
        assert not episode.allow_file_urls


@pytest.mark.parametrize(
    "name",
    # Feeds under 300 KB (Taverncast's duplicate guids included) keep the suite quick.
    sorted(n for n, e in EXPECTED.items() if isinstance(e, Yields) and n not in BIG),
)
def test_parsing_again_gives_the_same_keys(name: str) -> None:
    data = feed_path(name).read_bytes()
    first, second = parse_feed(data, BASE + name), parsed(name)
    assert [e.episode_key for e in first.episodes] == [e.episode_key for e in second.episodes]
    assert first.feed_key == second.feed_key


# --- spot checks ----------------------------------------------------------------------


def test_odd_audio_mime_types_are_accepted() -> None:
    assert {e.mime_type for e in parsed("partytime__changing-the-tide.xml").episodes} == {
        "audio/mp3"
    }
    taverncast = Counter(
        e.mime_type for e in parsed("rss-parser__itunes-missing-image.rss").episodes
    )
    assert taverncast == {"audio/mpeg": 120, "x-audio/mp3": 8, "audio/mp3": 3}
    itunes = parsed("feedjira__itunes.xml").episodes
    assert itunes[0].mime_type == "audio/x-m4a"
    assert itunes[0].audio_url.endswith("AllAboutEverythingEpisode3.m4a")


def test_atom_enclosure_links_are_read() -> None:
    feed = parsed("antennapod__feed-atom-testAtomBasic.xml")
    first = feed.episodes[0]
    assert first.audio_url == "http://example.com/media-0"
    assert first.mime_type == "audio/mp3"
    assert first.enclosure_length == 1048576
    assert first.published == datetime(1970, 1, 1, tzinfo=UTC)


def test_relative_untyped_enclosure_resolves_against_the_feed_url() -> None:
    (episode,) = parsed("podcastparser__relative.rss").episodes
    assert episode.audio_url == BASE + "example.mp3"
    assert episode.mime_type == "audio/mpeg"  # guessed from the extension
    assert episode.enclosure_length is None
    assert episode.title == "Episode"


def test_untyped_opus_enclosure_and_fuller_html_description() -> None:
    (episode,) = parsed("podcastparser__html_in_description_rss_both_different.rss").episodes
    assert episode.audio_url == "http://example.org/example.opus"
    assert episode.mime_type == "audio/opus"
    # gPodder's expected result too: content:encoded wins over description, tags stripped.
    assert episode.description == "This is also a test"


def test_missing_guid_and_title_fall_back() -> None:
    (episode,) = parsed("podcastparser__no_guid.rss").episodes
    assert episode.guid is None
    assert episode.title == "Untitled episode (test.ogg)"
    assert episode.mime_type == "audio/ogg"
    assert episode.enclosure_length == 3000000

    heraldsun = parsed("rss-parser__heraldsun.rss").episodes
    assert [e.guid for e in heraldsun] == [None, None]
    assert [e.audio_url for e in heraldsun] == [
        "http://www.oreilly.com/001.mp3",
        "http://www.oreilly.com/002.mp3",
    ]

    dk = parsed("partytime__dk-podcast.xml")
    assert [e.title for e in dk.episodes if e.guid is None] == [
        "01.02.2022 – Langsam gesprochene Nachrichten"
    ]
    assert dk.language == "de"


def test_duplicate_guid_items_get_distinct_keys() -> None:
    feed = parsed("rss-parser__itunes-missing-image.rss")
    twins = [e for e in feed.episodes if e.guid == "http://taverncast.com/shows/geekistry-2.mp3"]
    assert len(twins) == 2
    assert twins[0].episode_key != twins[1].episode_key


def test_two_digit_years_follow_rfc_2822() -> None:
    first = parsed("antennapod__feed-rss-testRss2Basic.xml").episodes[0]
    assert first.published is not None
    assert first.published.isoformat() == "1970-01-01T01:00:00+01:00"


def test_named_time_zones_and_month_names() -> None:
    giantbomb = parsed("rss-parser__giantbomb-podcast.rss").episodes[0]
    assert giantbomb.published is not None
    assert giantbomb.published.utcoffset().total_seconds() == -8 * 3600  # PST
    taverncast = parsed("rss-parser__itunes-missing-image.rss").episodes
    assert all(e.published is not None for e in taverncast)


def test_feed_with_leading_whitespace_and_undefined_entity_still_parses() -> None:
    no_agenda = parsed("partytime__no-agenda.xml")
    assert no_agenda.title == "No Agenda"
    assert no_agenda.episodes[0].title == '1393: "Space Wake"'
    # Show notes are escaped HTML in the XML; the description is plain text.
    assert "<p>" not in (no_agenda.episodes[0].description or "")
    assert parsed("partytime__sentimental-garbage.xml").episodes[0].audio_url


def test_podcast_transcripts_repeated_on_one_item_are_all_kept() -> None:
    (episode,) = parsed("antennapod__feed-rss-testPodcastIndexTranscript.xml").episodes
    assert episode.audio_url is None  # no enclosure, but the transcripts are usable
    assert [(t.url, t.mime_type) for t in episode.transcripts] == [
        ("https://podnews.net/audio/podnews231011.mp3.srt", "application/srt"),
        ("https://podnews.net/audio/podnews231011.mp3.json", "application/json"),
    ]


def test_themnshow_podcasting_2_0_tags() -> None:
    feed = parsed("partytime__themnshow.xml")
    kinds = Counter(t.mime_type for e in feed.episodes for t in e.transcripts)
    assert kinds == {"application/x-subrip": 54, "text/vtt": 2}
    assert feed.podcast_guid == "7a2d292c-8656-5fcf-88d2-31b10e54d7c7"
    first = feed.episodes[0]
    srt = next(t for t in first.transcripts if t.mime_type == "application/x-subrip")
    assert (srt.language, srt.rel) == ("EN", "captions")
    assert first.chapters_url and first.chapters_url.endswith("-chapters.json")
    assert [(p.name, p.role) for p in first.persons] == [("Dr. Timothy M. Jurgensen", "guest")]


def test_legacy_namespace_transcripts_chapters_and_persons() -> None:
    no_agenda = parsed("partytime__no-agenda.xml")
    assert no_agenda.podcast_guid == "856cd618-7f34-57ea-9b84-3600f1f65e7f"
    assert all(len(e.transcripts) == 1 for e in no_agenda.episodes)
    assert all(e.chapters_url for e in no_agenda.episodes)
    assert [(p.name, p.role, p.group) for p in no_agenda.episodes[0].persons] == [
        ("Adam Curry", "host", "cast"),  # role and group absent: the spec's defaults
        ("John C Dvorak", "host", "cast"),
    ]
    pc20 = parsed("partytime__pc20rss.xml")
    assert sum(1 for e in pc20.episodes if e.transcripts) == 47
    assert sum(1 for e in pc20.episodes if e.chapters_url) == 48


def test_current_namespace_example_feed() -> None:
    feed = parsed("podcast-namespace__example.xml")
    assert feed.podcast_guid == "y0ur-gu1d-g035-h3r3"
    first = feed.episodes[0]
    assert [(t.mime_type, t.language, t.rel) for t in first.transcripts] == [
        ("text/plain", None, None),
        ("text/vtt", "es", "captions"),
    ]
    assert [p.name for p in first.persons] == ["Adam Curry", "Dave Jones", "Becky Smith"]
    assert first.persons[2].group == "visuals"


def test_podlove_simple_chapters() -> None:
    for name in ("feedparser__rss2.0simplechapter.xml", "feedparser__atomsimplechapter.xml"):
        (episode,) = parsed(name).episodes
        assert [(c.start, c.title) for c in episode.chapters] == [
            (0.0, "Welcome"),
            (187.25, "Introducing Podlove"),
            (506.0, "Podlove WordPress Plugin"),
            (762.345, "Resumée"),
        ]
        assert episode.chapters[1].url == "http://podlove.org/"


def test_feed_keys_differ_between_feeds() -> None:
    names = [n for n, e in EXPECTED.items() if isinstance(e, Yields)]
    available = [n for n in names if (FIXTURES / n).exists()]
    keys = {parsed(n).feed_key for n in available}
    assert len(keys) == len(available)
