"""Feed parsing rules and episode identity, on small feeds written for each rule."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from podmill.errors import FeedError
from podmill.feeds.identity import (
    ItemIdentity,
    episode_key,
    feed_identity,
    feed_key,
    file_episode_key,
    normalize_url,
    unique_episode_keys,
    url_episode_key,
)
from podmill.feeds.parse import parse_feed

FEED_URL = "https://example.com/podcast/feed.xml"
P20 = "https://podcastindex.org/namespace/1.0"
P20_LEGACY = "https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/1.0.md"


def rss(items: str, *, channel: str = "", ns: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" {ns}><channel>'
        f"<title>Test show</title>{channel}{items}</channel></rss>"
    ).encode()


def item(body: str, guid: str | None = "g1", title: str | None = "Ep") -> str:
    parts = [f"<guid>{guid}</guid>" if guid else "", f"<title>{title}</title>" if title else ""]
    return f"<item>{''.join(parts)}{body}</item>"


def enclosure(url: str, mime: str | None = "audio/mpeg", length: str = "1000") -> str:
    typed = f' type="{mime}"' if mime is not None else ""
    return f'<enclosure url="{url}"{typed} length="{length}"/>'


# --- enclosure choice ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("mime", "url"),
    [
        ("audio/mpeg", "https://cdn.example.com/a.mp3"),
        ("audio/mp3", "https://cdn.example.com/a.mp3"),
        ("x-audio/mp3", "https://cdn.example.com/a.mp3"),
        ("audio/x-m4a", "https://cdn.example.com/a.m4a"),
        ("AUDIO/MPEG; charset=binary", "https://cdn.example.com/a"),
        (None, "https://cdn.example.com/a.opus"),
        ("application/octet-stream", "https://cdn.example.com/a.flac?token=1"),
    ],
)
def test_audio_enclosures_are_accepted(mime: str | None, url: str) -> None:
    feed = parse_feed(rss(item(enclosure(url, mime))), FEED_URL)
    assert [e.audio_url for e in feed.episodes] == [url]


@pytest.mark.parametrize(
    ("mime", "url", "reason"),
    [
        ("video/mp4", "https://cdn.example.com/a.mp4", "video-only enclosure (video/mp4)"),
        (None, "https://cdn.example.com/a.webm", "a .webm URL, which may be video"),
        ("application/pdf", "https://cdn.example.com/a.pdf", "no audio enclosure"),
        ("audio/x-mpegurl", "https://cdn.example.com/a.m3u", "no audio enclosure"),
    ],
)
def test_non_audio_items_are_skipped_with_a_reason(mime: str | None, url: str, reason: str) -> None:
    good = item(enclosure("https://cdn.example.com/ok.mp3"), guid="ok", title="Good")
    bad = item(enclosure(url, mime), guid="bad", title="Bad")
    feed = parse_feed(rss(good + bad), FEED_URL)
    assert [e.title for e in feed.episodes] == ["Good"]
    assert [s.title for s in feed.skipped] == ["Bad"]
    assert reason in feed.skipped[0].reason


def test_the_audio_enclosure_is_picked_among_several() -> None:
    body = enclosure("https://cdn.example.com/v.mp4", "video/mp4") + enclosure(
        "https://cdn.example.com/a.m4a", "audio/mp4", "77"
    )
    (episode,) = parse_feed(rss(item(body)), FEED_URL).episodes
    assert (episode.audio_url, episode.mime_type, episode.enclosure_length) == (
        "https://cdn.example.com/a.m4a",
        "audio/mp4",
        77,
    )


def _alternate(mime: str, *sources: tuple[str, str | None], length: str = "55") -> str:
    tags = "".join(
        f'<podcast:source uri="{uri}"' + (f' contentType="{ct}"' if ct else "") + "/>"
        for uri, ct in sources
    )
    opening = f'<podcast:alternateEnclosure type="{mime}" length="{length}">'
    return f"{opening}{tags}</podcast:alternateEnclosure>"


def test_an_audio_alternate_enclosure_rescues_a_video_episode() -> None:
    body = (
        enclosure("https://cdn.example.com/v.mp4", "video/mp4")
        + _alternate("video/mp4", ("https://cdn.example.com/v-720.mp4", None))
        + _alternate(
            "audio/mp4",
            ("https://cdn.example.com/a.torrent", "application/x-bittorrent"),  # not fetchable
            ("https://cdn.example.com/a.m4a", None),
            ("https://mirror.example.com/a.m4a", None),
        )
    )
    ns = f'xmlns:podcast="{P20}"'
    (episode,) = parse_feed(rss(item(body), ns=ns), FEED_URL).episodes
    assert (episode.audio_url, episode.mime_type, episode.enclosure_length) == (
        "https://cdn.example.com/a.m4a",
        "audio/mp4",
        55,
    )


def test_the_items_own_audio_enclosure_wins_over_alternates() -> None:
    body = enclosure("https://cdn.example.com/main.mp3") + _alternate(
        "audio/opus", ("https://cdn.example.com/alt.opus", None)
    )
    ns = f'xmlns:podcast="{P20}"'
    (episode,) = parse_feed(rss(item(body), ns=ns), FEED_URL).episodes
    assert episode.audio_url == "https://cdn.example.com/main.mp3"


def test_alternates_that_only_torrent_leave_a_video_episode_skipped() -> None:
    body = enclosure("https://cdn.example.com/v.mp4", "video/mp4") + _alternate(
        "audio/mp4", ("https://cdn.example.com/a.torrent", "application/x-bittorrent")
    )
    ns = f'xmlns:podcast="{P20}"'
    with pytest.raises(FeedError, match="video-only"):
        parse_feed(rss(item(body), ns=ns), FEED_URL)


def test_the_noagendatube_feed_gets_its_audio_renditions() -> None:
    data = (
        Path(__file__).parents[1] / "fixtures/feeds/partytime__animated-no-agenda.xml"
    ).read_bytes()
    feed = parse_feed(data, "https://noagendatube.com/feeds/podcast.xml")
    assert len(feed.episodes) == 20
    for episode in feed.episodes:  # the audio-only ("-0") rendition, never a torrent or video
        assert episode.mime_type == "audio/mp4", episode
        assert "-0" in episode.audio_url and episode.audio_url.endswith(".mp4"), episode


def test_media_content_is_used_when_there_is_no_enclosure() -> None:
    body = '<media:content url="https://cdn.example.com/m.mp3" type="audio/mpeg"/>'
    ns = 'xmlns:media="http://search.yahoo.com/mrss/"'
    (episode,) = parse_feed(rss(item(body), ns=ns), FEED_URL).episodes
    assert episode.audio_url == "https://cdn.example.com/m.mp3"


@pytest.mark.parametrize("length", ["", "abc", "-5", "0", "12.5"])
def test_bogus_enclosure_lengths_become_none(length: str) -> None:
    (episode,) = parse_feed(
        rss(item(enclosure("https://x.example/a.mp3", length=length))), FEED_URL
    ).episodes
    assert episode.enclosure_length is None


def test_relative_enclosures_resolve_against_the_feed_url() -> None:
    body = enclosure("../media/ep1.mp3") + "<link>https://example.com/ep1</link>"
    (episode,) = parse_feed(rss(item(body)), FEED_URL).episodes
    assert episode.audio_url == "https://example.com/media/ep1.mp3"
    assert episode.feed_url == FEED_URL


def test_local_feed_honours_file_urls(tmp_path: Path) -> None:
    (tmp_path / "ep.mp3").write_bytes(b"ID3")
    feed_file = tmp_path / "feed.xml"
    data = rss(item(enclosure("ep.mp3"), guid="a") + item(enclosure("file:///srv/b.mp3"), guid="b"))
    feed = parse_feed(data, feed_file.as_uri(), is_local=True)
    assert [e.audio_url for e in feed.episodes] == [
        (tmp_path / "ep.mp3").as_uri(),
        "file:///srv/b.mp3",
    ]
    assert all(e.allow_file_urls for e in feed.episodes)


def test_remote_feed_refuses_file_and_ftp_enclosures() -> None:
    items = (
        item(enclosure("file:///etc/passwd.mp3"), guid="a", title="File")
        + item(enclosure("ftp://example.com/b.mp3"), guid="b", title="Ftp")
        + item(enclosure("https://example.com/c.mp3"), guid="c", title="Fine")
    )
    feed = parse_feed(rss(items), FEED_URL)
    assert [e.title for e in feed.episodes] == ["Fine"]
    assert not feed.episodes[0].allow_file_urls
    reasons = {s.title: s.reason for s in feed.skipped}
    assert "only honoured in local feed files" in reasons["File"]
    assert "http and https only" in reasons["Ftp"]


def test_demo_feed_bundled_with_the_package_resolves_to_local_files() -> None:
    demo = Path(__file__).resolve().parents[2] / "src" / "podmill" / "demo" / "feed.xml"
    if not demo.exists():
        pytest.skip("no demo feed in this checkout")
    feed = parse_feed(demo.read_bytes(), demo.as_uri(), is_local=True)
    assert feed.episodes
    for episode in feed.episodes:
        assert episode.audio_url and episode.audio_url.startswith("file://")
        assert Path(episode.audio_url.removeprefix("file://")).exists()


# --- item fields --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Tue, 10 Oct 2023 08:46:31 +0000", datetime(2023, 10, 10, 8, 46, 31, tzinfo=UTC)),
        ("03 Apr 02 1500 GMT", datetime(2002, 4, 3, 15, 0, tzinfo=UTC)),
        ("01 Jan 70 01:00:00 +0100", datetime(1970, 1, 1, tzinfo=UTC)),
        ("Thu, 01 Jan 2015 10:00:00 PST", datetime(2015, 1, 1, 18, 0, tzinfo=UTC)),
        ("Sun, 12 August 2012 10:00:00 EST", datetime(2012, 8, 12, 15, 0, tzinfo=UTC)),
        ("Tue, 01 Feb 2022 00:00:00 -0000", datetime(2022, 2, 1, tzinfo=UTC)),
        ("2012-03-26T23:25:19+02:00", datetime(2012, 3, 26, 21, 25, 19, tzinfo=UTC)),
        ("not a date", None),
        # feedparser knows Greek month names (the corpus's http_high_bit_date feed).
        ("Τρι, 29 Ιον 2004 12:53:00 GMT", datetime(2004, 6, 29, 12, 53, tzinfo=UTC)),
        ("Mon, 45 Foo 99999 99:99:99 +9999", None),
    ],
)
def test_publication_dates(raw: str, expected: datetime | None) -> None:
    (episode,) = parse_feed(
        rss(item(f"<pubDate>{raw}</pubDate>" + enclosure("https://x.example/a.mp3"))), FEED_URL
    ).episodes
    assert episode.published == expected
    if episode.published is not None:
        assert episode.published.tzinfo is not None


def test_dates_keep_the_publishers_offset() -> None:
    body = "<pubDate>Thu, 01 Jan 2015 10:00:00 -0800</pubDate>" + enclosure("https://x/a.mp3")
    (episode,) = parse_feed(rss(item(body)), FEED_URL).episodes
    assert episode.published is not None
    assert episode.published.utcoffset() == timedelta(hours=-8)
    assert episode.published.tzinfo == timezone(timedelta(hours=-8))


def test_titles_fall_back_to_the_date_then_the_guid() -> None:
    dated = item(
        "<pubDate>Tue, 10 Oct 2023 08:46:31 +0000</pubDate>" + enclosure("https://x/a.mp3"),
        title=None,
    )
    undated = item(enclosure("https://x/b.mp3"), guid="guid-42", title=None)
    feed = parse_feed(rss(dated + undated), FEED_URL)
    assert [e.title for e in feed.episodes] == [
        "Untitled episode (2023-10-10)",
        "Untitled episode (guid-42)",
    ]


def test_description_prefers_plain_text_summary_then_strips_html() -> None:
    ns = (
        'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"'
    )
    plain = item(
        "<itunes:summary>Plain words.</itunes:summary>"
        "<description><![CDATA[<p>Rich <b>words</b></p>]]></description>"
        + enclosure("https://x/a.mp3"),
        guid="a",
    )
    html = item(
        "<description><![CDATA[<p>First&nbsp;para</p><p>Second &amp; last</p>"
        "<script>alert(1)</script>]]></description>" + enclosure("https://x/b.mp3"),
        guid="b",
    )
    double = item(
        "<description>&amp;lt;p&amp;gt;Escaped twice&amp;lt;/p&amp;gt;</description>"
        + enclosure("https://x/c.mp3"),
        guid="c",
    )
    episodes = parse_feed(rss(plain + html + double, ns=ns), FEED_URL).episodes
    assert [e.description for e in episodes] == [
        "Plain words.",
        "First para\nSecond & last",
        "Escaped twice",
    ]


def test_item_with_a_transcript_but_no_enclosure_is_kept() -> None:
    body = '<podcast:transcript url="/t/ep.vtt" type="text/vtt" language="en"/>'
    feed = parse_feed(rss(item(body), ns=f'xmlns:podcast="{P20}"'), FEED_URL)
    (episode,) = feed.episodes
    assert episode.audio_url is None
    assert episode.mime_type is None
    assert [(t.url, t.mime_type, t.language) for t in episode.transcripts] == [
        ("https://example.com/t/ep.vtt", "text/vtt", "en")
    ]


@pytest.mark.parametrize("namespace", [P20, P20_LEGACY])
@pytest.mark.parametrize("prefix", ["podcast", "pi"])
def test_podcasting_2_0_tags_under_any_prefix(namespace: str, prefix: str) -> None:
    channel = f"<{prefix}:guid>ABC-123</{prefix}:guid>"
    live = (
        f'<{prefix}:liveItem status="live"><title>Live</title>'
        f'<{prefix}:transcript url="https://x/live.srt" type="application/srt"/>'
        f"</{prefix}:liveItem>"
    )
    body = (
        enclosure("https://x/a.mp3")
        + f'<{prefix}:transcript url="https://x/a.srt" type="application/srt"/>'
        + f'<{prefix}:transcript url="https://x/a.json" type="application/json" rel="captions"/>'
        + f'<{prefix}:chapters url="chapters.json" type="application/json+chapters"/>'
        + f'<{prefix}:person role="guest" href="https://p.example">Ada &amp; Co</{prefix}:person>'
        + f'<{prefix}:person group="visuals" role="Cover Art Designer">Bea</{prefix}:person>'
    )
    ns = f'xmlns:{prefix}="{namespace}"'
    feed = parse_feed(rss(item(body), channel=channel + live, ns=ns), FEED_URL)
    assert feed.podcast_guid == "ABC-123"
    (episode,) = feed.episodes
    assert [t.url for t in episode.transcripts] == ["https://x/a.srt", "https://x/a.json"]
    assert episode.transcripts[1].rel == "captions"
    assert episode.chapters_url == "https://example.com/podcast/chapters.json"
    assert [(p.name, p.role, p.group, p.href) for p in episode.persons] == [
        ("Ada & Co", "guest", "cast", "https://p.example"),
        ("Bea", "Cover Art Designer", "visuals", None),
    ]


def test_undeclared_podcast_prefix_is_still_read_and_untyped_links_are_guessed() -> None:
    body = (
        enclosure("https://x/a.mp3")
        + '<podcast:transcript url="https://x/a.srt"/>'
        + '<podcast:transcript url="https://x/a.unknown"/>'
    )
    (episode,) = parse_feed(rss(item(body)), FEED_URL).episodes
    assert [(t.url, t.mime_type) for t in episode.transcripts] == [
        ("https://x/a.srt", "application/srt"),
        ("https://x/a.unknown", ""),
    ]


def test_atom_feed() -> None:
    data = b"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:podcast="https://podcastindex.org/namespace/1.0">
  <title>Atom show</title><id>urn:x</id>
  <link rel="self" href="HTTPS://Example.COM:443/atom.xml#top"/>
  <entry><id>urn:e1</id><title type="html">Ep &lt;b&gt;one&lt;/b&gt;</title>
    <published>2020-05-01T10:00:00Z</published>
    <summary>Short</summary>
    <link rel="enclosure" type="audio/mpeg" length="5" href="/a.mp3"/>
    <podcast:transcript url="/a.vtt" type="text/vtt"/>
  </entry>
</feed>"""
    feed = parse_feed(data, "https://mirror.example.net/atom.xml")
    (episode,) = feed.episodes
    assert episode.title == "Ep one"
    assert episode.audio_url == "https://mirror.example.net/a.mp3"
    assert episode.guid == "urn:e1"
    assert [t.url for t in episode.transcripts] == ["https://mirror.example.net/a.vtt"]
    # The self link, not the mirror's URL, names the feed.
    assert feed.feed_key == feed_key("https://example.com/atom.xml")


# --- whole-document failures --------------------------------------------------------


def assert_feed_error(data: bytes, *fragments: str) -> str:
    with pytest.raises(FeedError) as caught:
        parse_feed(data, FEED_URL)
    message = str(caught.value)
    assert "\n" not in message and message.strip() == message
    for fragment in fragments:
        assert fragment in message
    return message


def test_empty_document() -> None:
    assert_feed_error(b"", "feed is empty (0 bytes)")
    assert_feed_error(b"  \n\t ", "feed is empty")


def test_html_page_that_links_to_a_feed_says_so_without_quoting_it() -> None:
    page = (
        b"<!DOCTYPE html>\n<html><head><title>My  Show\n</title>"
        b'<link rel="alternate" type="application/rss+xml" href="/rss"></head>'
        b"<body><p>Listen!</p></body></html>"
    )
    assert_feed_error(page, "not a feed: the document is HTML that links to a feed")
    with pytest.raises(FeedError) as caught:
        parse_feed(page, "https://example.com/")
    assert "My" not in str(caught.value) and "/rss" not in str(caught.value)
    assert_feed_error(b"<html><body>nothing</body></html>", "not a feed: the document is HTML")


def test_json_document() -> None:
    assert_feed_error(b'{"version": "https://jsonfeed.org/version/1.1"}', "the document is JSON")


def test_xml_that_is_not_a_feed() -> None:
    assert_feed_error(
        b'<?xml version="1.0"?><svg><g/></svg>', "not a feed: the XML root element is not <rss>"
    )


def test_bytes_that_look_like_a_path_are_not_opened(tmp_path: Path) -> None:
    # feedparser opens a bytes argument as a file name; parse_feed must never do that.
    secret = tmp_path / "feed.xml"
    secret.write_bytes(rss(item(enclosure("https://x/a.mp3"))))
    assert_feed_error(str(secret).encode(), "not a feed")


def test_feed_without_items_and_feed_without_audio() -> None:
    assert_feed_error(rss(""), "feed has no items")
    no_audio = item("<link>https://news.example/1</link>", guid="a") + item("", guid="b")
    assert_feed_error(
        rss(no_audio),
        "feed has 2 items but none with an audio enclosure or a transcript (2 with no enclosure)",
        "not a podcast",
    )


@pytest.mark.parametrize("seed", range(40))
def test_random_bytes_raise_only_feed_error(seed: int) -> None:
    rng = random.Random(seed)
    data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
    if seed % 4 == 1:
        data = b"<rss><channel><item>" + data  # garbage inside a plausible start
    elif seed % 4 == 2:
        valid = rss(item(enclosure("https://x/a.mp3")))
        data = valid[: rng.randrange(len(valid))] + data[:50]  # truncated feed
    try:
        feed = parse_feed(data, FEED_URL)
    except FeedError as exc:
        assert "\n" not in str(exc)
    else:
        assert feed.episodes


# --- identity -----------------------------------------------------------------------


def test_normalize_url() -> None:
    assert normalize_url("HTTPS://Example.COM:443/Feed/?a=1#frag") == "https://example.com/Feed?a=1"
    assert normalize_url("http://example.com:8080/") == "http://example.com:8080"
    assert normalize_url("http://u:p@Example.com:80/x") == "http://u:p@example.com/x"
    assert normalize_url("http://[bad") == "http://[bad"


def test_feed_identity_precedence(tmp_path: Path) -> None:
    assert feed_identity(" ABC-Guid ", "https://a/self", "https://b/url") == "abc-guid"
    assert (
        feed_identity(None, "HTTPS://A.example/self/", "https://b/url") == "https://a.example/self"
    )
    assert feed_identity("", None, "https://B.example:443/feed#x") == "https://b.example/feed"
    local = tmp_path / "dir" / ".." / "feed.xml"
    expected = str((tmp_path / "feed.xml").resolve())
    assert (
        feed_identity(None, None, local.as_uri() if local.is_absolute() else str(local)) == expected
    )
    assert feed_identity(None, None, str(local)) == expected
    assert feed_identity(None, "relative/self.xml", "https://b/feed") == "https://b/feed"


def test_episode_key_fallbacks() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    by_guid = episode_key("feed", "guid-1", "https://x/a.mp3", "T", when)
    assert by_guid == episode_key("feed", " guid-1 ", "https://other/b.mp3", "Other", None)
    assert by_guid != episode_key("other-feed", "guid-1", "https://x/a.mp3", "T", when)
    by_url = episode_key("feed", None, "HTTPS://X/a.mp3#t=1", "T", when)
    assert by_url == episode_key("feed", "", "https://x/a.mp3", "Other", None)
    by_date = episode_key("feed", None, None, "T", when)
    same_instant = when.astimezone(timezone(timedelta(hours=2)))
    assert by_date == episode_key("feed", None, None, "T", same_instant)
    assert by_date != episode_key("feed", None, None, "T", when + timedelta(days=1))
    by_title = episode_key("feed", None, None, "T", None)
    assert len({by_guid, by_url, by_date, by_title}) == 4
    assert all(len(k) == 16 and int(k, 16) >= 0 for k in (by_guid, by_url, by_date, by_title))


def test_duplicate_guids_are_disambiguated_stably() -> None:
    items = [
        ItemIdentity("dup", "https://x/1.mp3", "One", None),
        ItemIdentity("dup", "https://x/2.mp3", "Two", None),
        ItemIdentity("dup", "https://x/2.mp3", "Two again", None),
        ItemIdentity("solo", "https://x/3.mp3", "Three", None),
    ]
    keys = unique_episode_keys("feed", items)
    assert len(set(keys)) == 4
    assert keys[0] == episode_key("feed", "dup", None, None, None)  # first keeps the plain key
    assert keys[3] == episode_key("feed", "solo", None, None, None)
    assert keys == unique_episode_keys("feed", items)


def test_duplicate_guids_in_a_parsed_feed() -> None:
    twice = item(enclosure("https://x/a.mp3"), guid="same", title="A") + item(
        enclosure("https://x/b.mp3"), guid="same", title="B"
    )
    feed = parse_feed(rss(twice), FEED_URL)
    keys = [e.episode_key for e in feed.episodes]
    assert len(set(keys)) == 2
    assert keys[0] == episode_key(feed_identity(None, None, FEED_URL), "same", None, None, None)


def test_podcast_guid_keeps_keys_when_the_feed_moves() -> None:
    data = rss(
        item(enclosure("https://x/a.mp3")),
        channel="<podcast:guid>9b024349-ccf0-5f69-a609-6b82873eab3c</podcast:guid>",
        ns=f'xmlns:podcast="{P20}"',
    )
    old = parse_feed(data, "https://old-host.example/feed")
    new = parse_feed(data, "https://new-host.example/rss.xml")
    assert old.feed_key == new.feed_key
    assert old.episodes[0].episode_key == new.episodes[0].episode_key


def test_file_and_url_keys() -> None:
    digest = "AB" * 32
    assert file_episode_key(digest) == file_episode_key(digest.lower())
    assert file_episode_key(digest) != file_episode_key("cd" * 32)
    assert url_episode_key("HTTPS://X.example/a.mp3#t") == url_episode_key(
        "https://x.example/a.mp3"
    )
    assert url_episode_key("https://x.example/a.mp3") != url_episode_key("https://x.example/b.mp3")
