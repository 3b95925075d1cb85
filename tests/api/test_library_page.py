"""The viewer's library page on SQLite and Postgres: a tenant's feeds with their counts
and last poll, its title filter matching text literally, and nothing of another
tenant's (the page logs in with the tenant's key, as a browser does)."""

from __future__ import annotations

import re

from podmill.platform import Platform

from support.api import Caller, LiveFeed
from support.paths import DEMO


def logged_in(caller: Caller) -> Caller:
    response = caller.client.post(
        "/login", data={"key": caller.key, "next": "/"}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    return caller


def rows(html: str) -> list[str]:
    """The titles of the episode table's rows."""
    return re.findall(r'<td><a href="/view/episode/[0-9a-z]+">([^<]*)</a>', html)


def test_library_lists_a_tenants_feeds_and_filters_its_episodes(
    alice: Caller, bob: Caller, live_feed: LiveFeed, platform: Platform
) -> None:
    subscription = alice.post("/subscriptions", json={"url": live_feed.url}).json()
    audio = (DEMO / "sonnet001.mp3").read_bytes()
    upload = alice.post("/jobs", files={"file": ("mine_100%.mp3", audio, "audio/mpeg")})
    assert upload.status_code in (200, 201, 202), upload.text

    feeds = platform.library_feeds(platform.tenant("alice"))
    assert [(f["id"], f["episodes"]) for f in feeds] == [
        (subscription["feed_id"], 3),
        (None, 1),  # the upload: no feed
    ]
    assert feeds[0]["last_polled_at"] is not None

    page = logged_in(alice).client.get("/").text
    assert "3 episodes" in page and "last poll 20" in page and "Local files" in page
    assert sorted(rows(page)) == ["Episode 0", "Episode 1", "Episode 2", "mine_100%"]

    feed_only = alice.client.get("/", params={"feed": subscription["feed_id"]}).text
    assert sorted(rows(feed_only)) == ["Episode 0", "Episode 1", "Episode 2"]
    assert rows(alice.client.get("/", params={"q": "EPISODE 1"}).text) == ["Episode 1"]
    # LIKE's wildcards are matched as the characters they are
    assert rows(alice.client.get("/", params={"q": "100%"}).text) == ["mine_100%"]
    # "_" is no wildcard: "e_1" is in "mine_100%", not in "Episode 1"
    assert rows(alice.client.get("/", params={"q": "e_1"}).text) == ["mine_100%"]
    assert rows(alice.client.get("/", params={"q": "%"}).text) == ["mine_100%"]

    paged = alice.client.get("/", params={"limit": 2}).text
    assert len(rows(paged)) == 2 and 'rel="next" href="/?limit=2&amp;offset=2"' in paged
    last = alice.client.get("/", params={"limit": 2, "offset": 2}).text
    assert len(rows(last)) == 2 and 'rel="prev"' in last and 'rel="next"' not in last

    # bob sees none of it: his library is the empty state
    alice.client.cookies.clear()
    empty = logged_in(bob).client.get("/").text
    assert "No episodes yet" in empty and "Episode" not in empty
    assert platform.library_feeds(platform.tenant("bob")) == []
