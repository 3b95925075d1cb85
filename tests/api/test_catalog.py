"""The catalog, subscriptions and the feed poller (conditional GET, cursor, backoff)."""

from __future__ import annotations

from datetime import UTC, datetime

from podmill.engine.clock import ManualClock
from podmill.platform import Platform
from podmill.platform.poller import Poller

from support.api import Caller, LiveFeed, assert_error
from support.httpserver import TestHTTPServer


def poller(platform: Platform) -> tuple[Poller, ManualClock]:
    clock = ManualClock(datetime.now(UTC))
    return Poller(platform, clock=clock), clock


def test_subscribing_adds_the_feed_and_backfills(
    alice: Caller, bob: Caller, admin: Caller, live_feed: LiveFeed
) -> None:
    response = alice.post("/subscriptions", json={"url": live_feed.url})
    assert response.status_code == 201, response.text
    sub = response.json()
    assert (
        sub["title"] == "Test show"
        and response.headers["location"] == f"/subscriptions/{sub['id']}"
    )
    assert alice.post("/subscriptions", json={"url": live_feed.url}).status_code == 200
    assert [s["id"] for s in alice.get("/subscriptions").json()] == [sub["id"]]

    episodes = alice.get("/episodes").json()
    assert [e["title"] for e in episodes] == ["Episode 2", "Episode 1", "Episode 0"]
    assert [e["status"] for e in episodes] == ["pending", "new", "new"]  # backfill = 1
    assert alice.get(f"/episodes?feed={sub['feed_id']}&status=new").json()[0]["title"] == (
        "Episode 1"
    )
    assert alice.get("/episodes?since=2026-11-03T00:00:00").json()[0]["title"] == "Episode 2"
    assert len(alice.get("/jobs").json()) == 1

    [feed] = admin.get("/feeds").json()
    assert feed["subscribers"] == 1 and feed["url"] == live_feed.url
    assert bob.get("/episodes").json() == []  # not subscribed

    assert alice.delete(f"/subscriptions/{sub['id']}").status_code == 204
    assert alice.get("/subscriptions").json() == []
    # the backfilled job is still hers, and so is its episode
    assert [e["title"] for e in alice.get("/episodes").json()] == ["Episode 2"]


def test_a_url_that_is_not_a_feed_is_422_with_the_reason(
    alice: Caller, admin: Caller, http_server: TestHTTPServer
) -> None:
    page = http_server.add_bytes("/page", b"<html><body>hello</body></html>", "text/html")
    body = assert_error(alice.post("/subscriptions", json={"url": page}), 422, "invalid_feed")
    assert page in body["detail"]
    missing = http_server.url_for("/gone.xml")
    body = assert_error(admin.post("/feeds", json={"url": missing}), 422, "invalid_feed")
    assert "404" in body["detail"]
    assert_error(alice.post("/subscriptions", json={"url": "ftp://x/feed"}), 422)
    assert admin.get("/feeds").json() == []


def test_admin_manages_the_catalog(admin: Caller, alice: Caller, live_feed: LiveFeed) -> None:
    response = admin.post("/feeds", json={"url": live_feed.url, "interval_seconds": 120})
    assert response.status_code == 201, response.text
    feed = response.json()
    assert feed["interval_seconds"] == 120 and feed["subscribers"] == 0
    assert admin.post("/feeds", json={"url": live_feed.url}).status_code == 200
    assert admin.get(f"/feeds/{feed['id']}").json()["title"] == "Test show"
    alice.post("/subscriptions", json={"url": live_feed.url})
    assert admin.get(f"/feeds/{feed['id']}").json()["subscribers"] == 1

    assert admin.delete(f"/feeds/{feed['id']}").status_code == 204
    assert admin.get("/feeds").json() == []
    assert alice.get("/subscriptions").json() == []
    assert_error(admin.delete(f"/feeds/{feed['id']}"), 404)


def test_poller_enqueues_each_new_item_once_across_restarts(
    alice: Caller, bob: Caller, live_feed: LiveFeed, platform: Platform
) -> None:
    alice.post("/subscriptions", json={"url": live_feed.url})
    bob.post("/subscriptions", json={"url": live_feed.url})
    first, clock = poller(platform)
    assert first.poll_due() == []  # not due yet: subscribing just fetched it

    clock.advance(601)
    [outcome] = first.poll_due()
    assert outcome.status == "not_modified" and outcome.enqueued == []
    assert live_feed.not_modified == 1

    new_audio = live_feed.add_item(3)
    clock.advance(601)
    [outcome] = first.poll_due()
    assert outcome.status == "new" and len(outcome.enqueued) == 1
    # both subscribers see the one new job
    for caller in (alice, bob):
        assert outcome.enqueued[0] in [j["id"] for j in caller.get("/jobs").json()]
    jobs_before = len(platform.store.jobs())

    # a restarted poller that forgot the ETag (the feed answers 200) enqueues nothing again
    from sqlalchemy import update

    from podmill.platform.tables import POLLS

    with platform.engine.begin() as conn:
        conn.execute(update(POLLS).values(etag=None, last_modified=None))
    restarted = Poller(platform, clock=clock)
    clock.advance(601)
    [outcome] = restarted.poll_due()
    assert outcome.status == "new" and outcome.enqueued == []
    assert len(platform.store.jobs()) == jobs_before
    assert bob.post("/jobs", json={"url": new_audio}).json()["created"] is False


def test_a_failing_feed_backs_off_and_recovers(
    alice: Caller, admin: Caller, live_feed: LiveFeed, platform: Platform
) -> None:
    alice.post("/subscriptions", json={"url": live_feed.url})
    poll, clock = poller(platform)
    live_feed.failing = True
    waits = []
    for _ in range(3):
        clock.advance(100_000)
        [outcome] = poll.poll_due()
        assert outcome.status == "error" and "500" in (outcome.error or "")
        [feed] = admin.get("/feeds").json()
        waits.append(datetime.fromisoformat(feed["next_poll_at"]) - clock.now())
    assert [w.total_seconds() for w in waits] == [60, 120, 240]
    assert feed["error_count"] == 3 and "500" in feed["last_error"]
    clock.advance(239)
    assert poll.poll_due() == []  # still backing off

    live_feed.failing = False
    live_feed.add_item(3)
    clock.advance(1)
    [outcome] = poll.poll_due()
    assert outcome.status == "new" and len(outcome.enqueued) == 1
    [feed] = admin.get("/feeds").json()
    assert feed["error_count"] == 0 and feed["last_error"] is None
    assert (datetime.fromisoformat(feed["next_poll_at"]) - clock.now()).total_seconds() == 600


def test_feeds_without_subscribers_are_not_polled(
    admin: Caller, live_feed: LiveFeed, platform: Platform
) -> None:
    admin.post("/feeds", json={"url": live_feed.url})
    poll, clock = poller(platform)
    clock.advance(10_000)
    assert poll.poll_due() == []
