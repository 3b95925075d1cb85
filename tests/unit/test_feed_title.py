"""A podcast:liveItem's title never replaces the channel's: real Podcasting 2.0 feeds
with live items (partytime, MIT; podcast-namespace, CC0), fetched from a real HTTP
server and parsed."""

from __future__ import annotations

import pytest

from podmill.feeds.download import fetch_bytes
from podmill.feeds.parse import parse_feed
from podmill.settings import Settings

from support.paths import FIXTURES

FEEDS = FIXTURES / "feeds"


@pytest.mark.parametrize(
    ("name", "title", "live_titles"),
    [
        # <image title="..."/> before the live items made feedparser drop the channel
        # title, and the first live item's "Live Audio" stood in for it.
        ("partytime__podverse-test-feed.xml", "Podverse - Test Feed", {"Live Audio"}),
        ("partytime__themnshow.xml", "The Mike Neumann Show", {"The Mike Neumann Show - LIVE"}),
        ("podcast-namespace__example.xml", "Podcasting 2.0 Namespace Example", None),
    ],
)
def test_live_item_title_never_names_the_feed(
    http_server, name: str, title: str, live_titles: set[str] | None
) -> None:
    url = http_server.add_file(f"/{name}", FEEDS / name, "application/rss+xml")
    body, _, final_url = fetch_bytes(url, Settings(allow_private_networks=True))
    feed = parse_feed(body, final_url)
    assert feed.title == title
    assert {e.feed_title for e in feed.episodes} == {title}
    if live_titles:  # and the live items are not episodes
        assert not live_titles & {e.title for e in feed.episodes}
