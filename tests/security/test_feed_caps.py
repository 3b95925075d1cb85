"""Feeds have caps on items and field sizes (docs/feeds.md, "Caps"): a hostile or
broken feed with 20,000 items, a 1 MB title or a 1 MB description is read, cut to the
caps and said so in warnings; it never crashes the parse."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from podmill.feeds.parse import parse_feed
from podmill.settings import FeedSettings

from support.feeds import item, rss

BASE = datetime(2020, 1, 1, tzinfo=UTC)


def dated(n: int) -> str:
    return (BASE + timedelta(days=n)).strftime("%a, %d %b %Y %H:%M:%S GMT")


def test_a_feed_over_max_items_keeps_the_newest_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # oldest first, as some feeds are: the newest are at the end
    items = [
        item(f"g{n}", f"Episode {n}", f"https://cdn.example/{n}.mp3", date=dated(n))
        for n in range(20_000)
    ]
    with caplog.at_level(logging.WARNING, logger="podmill.feeds.parse"):
        feed = parse_feed(
            rss(items), "https://example.com/feed.xml", limits=FeedSettings(max_items=500)
        )
    assert len(feed.episodes) == 500
    assert {e.guid for e in feed.episodes} == {f"g{n}" for n in range(19_500, 20_000)}
    assert feed.warnings == [
        "the feed has 20000 items; only the newest 500 are read (feeds.max_items)"
    ]
    assert "feeds.max_items" in caplog.text


def test_the_default_cap_is_5000_items() -> None:
    items = [
        item(f"g{n}", f"E{n}", f"https://cdn.example/{n}.mp3", date=dated(n)) for n in range(5_001)
    ]
    feed = parse_feed(rss(items), "https://example.com/feed.xml")
    assert len(feed.episodes) == 5_000
    assert "g0" not in {e.guid for e in feed.episodes}  # the oldest went


def test_huge_titles_and_descriptions_are_cut_with_a_warning() -> None:
    huge = "A" * 1_000_000
    items = [
        item("g1", huge, "https://cdn.example/1.mp3", extra=f"<description>{huge}</description>"),
        item("g2", "Short", "https://cdn.example/2.mp3", extra="<description>fine</description>"),
    ]
    feed = parse_feed(rss(items, title="T" * 5000), "https://example.com/feed.xml")
    limits = FeedSettings()
    big, small = feed.episodes
    assert len(big.title) == limits.max_title_chars and big.title.endswith("…")
    assert big.description is not None
    assert len(big.description) == limits.max_description_chars
    assert (small.title, small.description) == ("Short", "fine")
    assert len(feed.title) == limits.max_title_chars
    assert feed.warnings == [
        "2 title(s) cut to 1000 characters (feeds.max_title_chars)",
        "1 description(s) cut to 65536 characters (feeds.max_description_chars)",
    ]
    # the cut is stable: a re-poll keys the episode the same way
    again = parse_feed(rss(items, title="T" * 5000), "https://example.com/feed.xml")
    assert [e.episode_key for e in again.episodes] == [e.episode_key for e in feed.episodes]
