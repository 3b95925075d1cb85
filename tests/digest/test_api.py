"""``GET /digest``, ``GET /digests`` and the weekly digest per tenant, through the real
app on SQLite and Postgres: a tenant's digest holds only the episodes it is entitled
to, and each week is stored once per tenant (the clock is moved, not waited for)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import func, select

pytest.importorskip("fastapi", reason="pip install 'podmill[server]'")

from digest_library import CABLES, FINGERPRINT, NOW, OTHER, STORM, Library, days_ago, timed
from fastapi.testclient import TestClient

from podmill.api.app import create_app
from podmill.digest import json_schema
from podmill.digest.weekly import DIGESTS, WeeklyDigests, week_ending
from podmill.engine.clock import ManualClock
from podmill.platform import Platform
from podmill.storage.models import FeedRow, SubscriptionRow, utcnow

from support.api import Caller, assert_error, make_caller, make_settings

WINDOW = "since=2026-11-16T12:00:00Z&until=2026-11-23T12:00:00Z"


@pytest.fixture
def platform(library: Library, tmp_path: Path, db_url: str) -> Iterator[Platform]:
    """Three shows in the library; alice subscribes to two, bob to the third."""
    library.add("Byte Sized", "Tech 1", days_ago(1), timed([STORM[0], OTHER[0]]))
    library.add("World Desk", "World 1", days_ago(2), timed([STORM[1], CABLES[0]]))
    library.add("Lab Notes", "Lab 1", days_ago(3), timed([CABLES[1], STORM[2]]))
    service = Platform(make_settings(tmp_path, db_url))
    assert service.settings.data_dir == library.settings.data_dir
    try:
        yield service
    finally:
        service.close()


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform.settings)) as test_client:
        yield test_client


def subscribe(platform: Platform, caller: Caller, *feeds: str) -> None:
    tenant = platform.tenant(caller.name)
    assert tenant is not None
    with platform.engine.begin() as conn:
        for title in feeds:
            feed_id = conn.execute(select(FeedRow.id).where(FeedRow.title == title)).scalar_one()
            conn.execute(
                SubscriptionRow.__table__.insert().values(
                    tenant_id=tenant.id, feed_id=feed_id, created_at=utcnow()
                )
            )


@pytest.fixture
def alice(platform: Platform, client: TestClient) -> Caller:
    caller = make_caller(platform, client, "alice")
    subscribe(platform, caller, "Byte Sized", "World Desk")
    return caller


@pytest.fixture
def bob(platform: Platform, client: TestClient) -> Caller:
    caller = make_caller(platform, client, "bob")
    subscribe(platform, caller, "Lab Notes")
    return caller


def validate(document: dict[str, object]) -> None:
    jsonschema.Draft202012Validator(json_schema()).validate(document)


def test_a_tenant_digest_holds_only_its_episodes(alice: Caller, bob: Caller) -> None:
    mine = alice.get(f"/digest?{WINDOW}&budget=10m")
    assert mine.status_code == 200, mine.text
    doc = mine.json()
    validate(doc)
    assert doc["tenant"] == "alice"
    assert [e["title"] for e in doc["episodes"]] == ["Tech 1", "World 1"]
    (story,) = doc["stories"]  # the storm; Lab Notes' half of the cable story is bob's
    assert {t["episode_title"] for t in story["topics"]} == {"Tech 1", "World 1"}
    keys = {e["episode_key"] for e in doc["episodes"]}
    assert {i["episode_key"] for i in doc["listen"]["items"]} <= keys
    theirs = bob.get(f"/digest?{WINDOW}").json()
    assert [e["title"] for e in theirs["episodes"]] == ["Lab 1"]
    assert theirs["stories"] == []
    assert "Tech 1" not in bob.get(f"/digest?{WINDOW}&format=md").text


def test_markdown_and_html(alice: Caller) -> None:
    md = alice.get(f"/digest?{WINDOW}&format=md")
    assert md.status_code == 200
    assert md.headers["content-type"].startswith("text/markdown")
    assert md.text.startswith("# Digest 2026-11-16")
    page = alice.get(f"/digest?{WINDOW}&format=html")
    assert page.headers["content-type"].startswith("text/html")
    assert "<h2>Stories across shows</h2>" in page.text


def test_bad_requests_are_422_with_the_reason(alice: Caller, bob: Caller) -> None:
    body = assert_error(alice.get("/digest?since=lastweek"), 422, "invalid_request")
    assert body["detail"].startswith("since 'lastweek' is not a time")
    body = assert_error(alice.get("/digest?budget=forever"), 422, "invalid_request")
    assert body["detail"].startswith("budget 'forever' is not a duration")
    # Another tenant's feed is no feed at all, and its name is not in the message.
    body = assert_error(bob.get("/digest?feed=Byte%20Sized"), 422, "invalid_request")
    assert "Byte Sized" in body["detail"] and "World Desk" not in body["detail"]
    assert body["detail"].startswith("feed 'Byte Sized': no such feed (feeds: ")
    assert alice.get("/digest").status_code == 200  # since defaults to 7d
    assert alice.client.get("/digest").status_code == 401  # no key


def test_weekly_digest_is_stored_once_per_tenant_per_week(
    platform: Platform, alice: Caller, bob: Caller
) -> None:
    # Monday 2026-11-23 07:00: the week that ended at 06:00 holds every episode above.
    clock = ManualClock(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    weekly = WeeklyDigests(platform, clock)
    assert weekly.store_due() == 2
    assert weekly.store_due() == 0  # this week is done for both
    listed = alice.get("/digests").json()
    assert len(listed) == 1
    entry = listed[0]
    assert entry["kind"] == "weekly"
    assert entry["period_start"].startswith("2026-11-16T06:00:00")
    assert entry["period_end"].startswith("2026-11-23T06:00:00")
    assert entry["schema_version"] == "podmill.digest/1"
    assert entry["episodes"] == 2 and entry["stories"] == 1
    doc = alice.get(f"/digests/{entry['id']}").json()
    validate(doc)
    assert doc["tenant"] == "alice"
    assert doc["listen"]["budget_seconds"] == 30 * 60  # server.digest_budget_minutes
    assert {e["title"] for e in doc["episodes"]} == {"Tech 1", "World 1"}
    assert alice.get(f"/digests/{entry['id']}?format=html").text.startswith("<!doctype html>")
    assert_error(bob.get(f"/digests/{entry['id']}"), 404, "not_found")
    assert [d["id"] for d in bob.get("/digests").json()] != [entry["id"]]

    clock.advance(timedelta(days=6).total_seconds())  # Sunday: still the same week
    assert weekly.store_due() == 0
    clock.advance(timedelta(days=1).total_seconds())  # Monday 07:00 again: a new week
    assert weekly.store_due() == 2
    periods = [d["period_start"][:10] for d in alice.get("/digests").json()]
    assert periods == ["2026-11-23", "2026-11-16"]  # newest first


def test_concurrent_passes_store_one_digest(platform: Platform, alice: Caller) -> None:
    clock = ManualClock(NOW)
    passes = [WeeklyDigests(platform, clock) for _ in range(3)]
    threads = [threading.Thread(target=p.store_due) for p in passes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    window = week_ending(NOW, 0, 6)
    with platform.reader.connect() as conn:
        count = conn.execute(
            select(func.count()).select_from(DIGESTS).where(DIGESTS.c.period_start == window.since)
        ).scalar_one()
    assert count == 1  # alice's (the only tenant), whoever got there first


def test_the_schedule_can_be_turned_off(tmp_path: Path, db_url: str, library: Library) -> None:
    settings = make_settings(tmp_path, db_url, digest_weekly=False)
    service = Platform(settings)
    try:
        service.create_tenant("carol")
        assert WeeklyDigests(service, ManualClock(NOW)).store_due() == 0
    finally:
        service.close()


@pytest.mark.parametrize(
    ("now", "start"),
    [
        (datetime(2026, 11, 23, 6, 0, tzinfo=UTC), datetime(2026, 11, 16, 6, 0, tzinfo=UTC)),
        (datetime(2026, 11, 23, 5, 59, tzinfo=UTC), datetime(2026, 11, 9, 6, 0, tzinfo=UTC)),
        (datetime(2026, 11, 29, 23, 0, tzinfo=UTC), datetime(2026, 11, 16, 6, 0, tzinfo=UTC)),
    ],
)
def test_week_boundaries(now: datetime, start: datetime) -> None:
    window = week_ending(now, weekday=0, hour=6)
    assert window.since == start
    assert window.until == start + timedelta(days=7)


def test_a_broken_artifact_delays_only_its_tenant(
    platform: Platform, library: Library, alice: Caller, bob: Caller
) -> None:
    lab = platform.artifacts.episode_dir(library.keys["Lab 1"], FINGERPRINT) / "topics.json"
    good = lab.read_text()
    lab.write_text("{not json")
    clock = ManualClock(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    weekly = WeeklyDigests(platform, clock)
    assert weekly.store_due() == 1  # alice's; bob's digest failed on Lab 1
    assert bob.get("/digests").json() == []
    lab.write_text(good)
    assert weekly.store_due() == 0  # not retried at once
    clock.advance(WeeklyDigests.RETRY_SECONDS)
    assert weekly.store_due() == 1
    assert len(bob.get("/digests").json()) == 1


def test_the_server_runs_the_weekly_pass(platform: Platform) -> None:
    from podmill.api.background import background_threads

    names = [t.name for t in background_threads(platform, threading.Event())]
    assert "podmill-digests" in names
