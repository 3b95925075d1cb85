"""Catalog and episode identity: a tenant cannot take over another's feed or episode.

Issue 20, item 1, through the real API (TestClient on ``create_app``), the real HTTP test
server serving the victim's and the attacker's feeds and audio, on SQLite and Postgres;
the operator's ``podmill submit`` runs as a real subprocess. docs/security.md, "Catalog
and episode identity", states each rule.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from podmill.engine.clock import ManualClock
from podmill.platform import Platform
from podmill.platform.poller import Poller
from podmill.settings import Settings

from support.api import Caller, assert_error, make_caller, make_settings, podmill_env
from support.feeds import item
from support.httpserver import RequestHandler, TestHTTPServer
from support.paths import DEMO

pytest.importorskip("fastapi", reason="pip install 'podmill[server]'")

from fastapi.testclient import TestClient

from podmill.api.app import create_app

GUID = "917393e3-1b1e-5cef-ace4-edaa54e1f810"  # the victim's podcast:guid (public in her feed)


class Show:
    """A feed on the test server whose channel tags, title and items can change."""

    def __init__(self, server: TestHTTPServer, path: str, title: str) -> None:
        self.server = server
        self.path = path
        self.title = title
        self.channel = ""  # extra channel tags: podcast:guid, atom:link rel="self"
        self.items: list[str] = []
        self.url = server.add_route(path, self._serve)

    def add(self, guid: str, title: str, n: int) -> str:
        audio = self.server.add_file(f"{self.path}.audio/{n}.mp3", DEMO / "sonnet001.mp3")
        date = f"Mon, {n + 1:02d} Nov 2026 10:00:00 GMT"
        self.items.append(item(guid, title, audio, date=date))
        return audio

    def document(self) -> bytes:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<rss version="2.0" xmlns:podcast="https://podcastindex.org/namespace/1.0" '
            'xmlns:atom="http://www.w3.org/2005/Atom">'
            f"<channel><title>{self.title}</title><link>https://example.invalid/</link>"
            f"<description>test</description>{self.channel}{''.join(self.items)}"
            "</channel></rss>"
        ).encode()

    def _serve(self, req: RequestHandler) -> None:
        req.send_body(self.document(), "application/rss+xml")


def claims_guid() -> str:
    return f"<podcast:guid>{GUID}</podcast:guid>"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url)


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    service = Platform(settings)
    try:
        yield service
    finally:
        service.close()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def alice(platform: Platform, client: TestClient) -> Caller:
    return make_caller(platform, client, "alice")  # the victim


@pytest.fixture
def mallory(platform: Platform, client: TestClient) -> Caller:
    return make_caller(platform, client, "mallory")  # the attacker, a tenant like her


@pytest.fixture
def admin(platform: Platform, client: TestClient) -> Caller:
    return make_caller(platform, client, "root", admin=True)


@pytest.fixture
def victim(http_server: TestHTTPServer) -> Show:
    show = Show(http_server, "/alice.xml", "Alice's private show")
    show.channel = claims_guid()
    for n in range(2):
        show.add(f"item-{n}", f"Alice episode {n}", n)
    return show


def attacker_copy(server: TestHTTPServer, victim: Show, channel: str) -> Show:
    """Mallory's feed: the victim's identity claim, her item guids with other titles
    and audio, and one injected item."""
    show = Show(server, "/mallory.xml", "Mallory's show")
    show.channel = channel
    for n in range(2):
        show.add(f"item-{n}", f"Replaced {n}", 10 + n)
    show.add("injected", "Injected item", 20)
    return show


def poll_everything(platform: Platform) -> list[str]:
    clock = ManualClock(datetime.now(UTC))
    clock.advance(10_000)  # past every feed's next poll
    return [o.status for o in Poller(platform, clock=clock).poll_due()]


def her_view(alice: Caller) -> list[tuple[str, str | None, str]]:
    return [(e["title"], e["audio_url"], e["episode_key"]) for e in alice.get("/episodes").json()]


@pytest.mark.parametrize("claim", ["podcast_guid", "self_link"])
def test_a_feed_that_copies_anothers_identity_is_a_feed_of_its_own(
    claim: str,
    alice: Caller,
    mallory: Caller,
    admin: Caller,
    victim: Show,
    http_server: TestHTTPServer,
    platform: Platform,
) -> None:
    if claim == "podcast_guid":
        channel = claims_guid()
    else:  # her feed has no guid: its identity is its URL, which Mallory's self link claims
        victim.channel = ""
        channel = f'<atom:link rel="self" href="{victim.url}" type="application/rss+xml"/>'
    subscribed = alice.post("/subscriptions", json={"url": victim.url})
    assert subscribed.status_code == 201, subscribed.text
    her_feed = subscribed.json()["feed_id"]
    before = her_view(alice)
    her_jobs = [j["id"] for j in alice.get("/jobs").json()]
    attacker = attacker_copy(http_server, victim, channel)

    taken = mallory.post("/subscriptions", json={"url": attacker.url})
    assert taken.status_code == 201, taken.text
    assert taken.json()["feed_id"] != her_feed  # two URLs, one claimed identity: two feeds
    feeds = {f["id"]: f for f in admin.get("/feeds").json()}
    assert feeds[her_feed]["url"] == victim.url
    assert feeds[her_feed]["title"] == "Alice's private show"
    assert feeds[her_feed]["feed_key"] != feeds[taken.json()["feed_id"]]["feed_key"]
    assert her_view(alice) == before  # titles, audio and keys untouched

    attacker.add("injected-later", "Injected later", 21)
    polled_before = http_server.count(victim.path)
    assert poll_everything(platform) == ["new", "new"]
    assert http_server.count(victim.path) == polled_before + 1  # her feed polls her URL
    assert admin.get(f"/feeds/{her_feed}").json()["url"] == victim.url
    assert her_view(alice) == before
    assert [j["id"] for j in alice.get("/jobs").json()] == her_jobs  # nothing injected
    [sub] = alice.get("/subscriptions").json()
    assert sub["url"] == victim.url and sub["title"] == "Alice's private show"


def test_a_claim_squatted_first_does_not_capture_the_real_feed(
    alice: Caller, mallory: Caller, victim: Show, http_server: TestHTTPServer
) -> None:
    attacker = attacker_copy(http_server, victim, claims_guid())
    assert mallory.post("/subscriptions", json={"url": attacker.url}).status_code == 201
    mine = alice.post("/subscriptions", json={"url": victim.url})
    assert mine.status_code == 201, mine.text
    assert mine.json()["url"] == victim.url and mine.json()["title"] == "Alice's private show"
    titles = [e["title"] for e in alice.get("/episodes").json()]
    assert titles == ["Alice episode 1", "Alice episode 0"]
    squatted = {e["episode_key"] for e in mallory.get("/episodes").json()}
    assert squatted.isdisjoint(e["episode_key"] for e in alice.get("/episodes").json())


def test_a_poll_that_switches_to_anothers_identity_takes_over_nothing(
    alice: Caller,
    mallory: Caller,
    admin: Caller,
    victim: Show,
    http_server: TestHTTPServer,
    platform: Platform,
) -> None:
    attacker = Show(http_server, "/mallory.xml", "Mallory's show")
    attacker.add("m-0", "Mallory 0", 30)
    theirs = mallory.post("/subscriptions", json={"url": attacker.url}).json()["feed_id"]
    her_feed = alice.post("/subscriptions", json={"url": victim.url}).json()["feed_id"]
    before = her_view(alice)
    her_jobs = [j["id"] for j in alice.get("/jobs").json()]

    # later, Mallory's document claims Alice's guid and serves her item guids
    attacker.channel = claims_guid()
    attacker.title = "Alice's private show (hijacked)"
    for n in range(2):
        attacker.add(f"item-{n}", f"Replaced {n}", 10 + n)
    assert poll_everything(platform) == ["new", "new"]

    feeds = {f["id"]: f for f in admin.get("/feeds").json()}
    assert feeds[her_feed]["url"] == victim.url
    assert feeds[her_feed]["title"] == "Alice's private show"
    assert feeds[theirs]["url"] == attacker.url and len(feeds) == 2
    assert her_view(alice) == before
    assert [j["id"] for j in alice.get("/jobs").json()] == her_jobs
    # Mallory's new items are hers, under her feed's own keys (enqueued for her alone)
    hers = {key for _, _, key in before}
    assert len(mallory.get("/jobs").json()) == 3
    assert hers.isdisjoint(e["episode_key"] for e in mallory.get("/episodes").json())


def test_an_admin_merges_two_urls_of_one_show(
    alice: Caller, mallory: Caller, admin: Caller, victim: Show, http_server: TestHTTPServer
) -> None:
    """The legitimate case: a show moved to a new URL and kept its podcast:guid."""
    old = alice.post("/subscriptions", json={"url": victim.url}).json()["feed_id"]
    moved = Show(http_server, "/moved.xml", "Alice's private show")
    moved.channel, moved.items = victim.channel, list(victim.items)
    new = mallory.post("/subscriptions", json={"url": moved.url}).json()["feed_id"]
    assert new != old

    assert_error(mallory.post(f"/feeds/{new}/merge", json={"into": old}), 403)
    assert_error(admin.post(f"/feeds/{new}/merge", json={"into": new}), 422, "invalid_merge")
    merged = admin.post(f"/feeds/{new}/merge", json={"into": old})
    assert merged.status_code == 200, merged.text
    assert merged.json()["id"] == old and merged.json()["url"] == moved.url
    assert merged.json()["subscribers"] == 2
    assert [f["id"] for f in admin.get("/feeds").json()] == [old]
    [sub] = mallory.get("/subscriptions").json()
    assert sub["feed_id"] == old
    keys = [e["episode_key"] for e in alice.get(f"/episodes?feed={old}").json()]
    assert [e["episode_key"] for e in mallory.get(f"/episodes?feed={old}").json()] == keys


# ------------------------------------------------------------------------- episodes


def test_identical_upload_bytes_look_like_a_first_upload(alice: Caller, mallory: Caller) -> None:
    audio = (DEMO / "sonnet001.mp3").read_bytes()
    first = alice.post("/jobs", files={"file": ("alice-interview.mp3", audio, "audio/mpeg")})
    assert first.status_code == 202, first.text
    her_job = first.json()["job"]

    probe = mallory.post("/jobs", files={"file": ("guess.mp3", audio, "audio/mpeg")})
    assert probe.status_code == 202, probe.text
    body = probe.json()
    assert set(body) == set(first.json()) and body["created"] is True
    assert set(body["job"]) == set(her_job)
    assert body["job"]["id"] != her_job["id"] and body["job"]["status"] == "pending"
    assert body["job"]["episode_key"] != her_job["episode_key"]
    mine = mallory.get(f"/episodes/{body['job']['episode_key']}").json()
    assert mine["title"] == "guess"
    assert alice.get(f"/episodes/{her_job['episode_key']}").json()["title"] == "alice-interview"
    assert_error(mallory.get(f"/episodes/{her_job['episode_key']}"), 404)


def test_an_enclosure_url_is_no_entitlement(
    alice: Caller, mallory: Caller, victim: Show, platform: Platform
) -> None:
    alice.post("/subscriptions", json={"url": victim.url})
    [her_job] = alice.get("/jobs").json()  # backfill = 1: her newest item
    key = her_job["episode_key"]
    secret = platform.artifacts.write_text(key, platform.fingerprint, "transcript.txt", "secret")
    platform.artifacts.write_manifest(key, platform.fingerprint, {})  # finished, as publish does
    assert secret.size == 6
    assert alice.get(f"/episodes/{key}/transcript?format=txt").text == "secret"
    enclosure = alice.get(f"/episodes/{key}").json()["audio_url"]

    probe = mallory.post("/jobs", json={"url": enclosure})
    assert probe.status_code == 202, probe.text
    body = probe.json()
    assert body["created"] is True and body["job"]["id"] != her_job["id"]
    assert body["job"]["episode_key"] != key
    assert mallory.get(f"/episodes/{body['job']['episode_key']}").json()["title"] == "1"
    assert_error(mallory.get(f"/episodes/{key}"), 404)
    assert_error(mallory.get(f"/episodes/{key}/transcript?format=txt"), 404)
    assert_error(mallory.post("/jobs", json={"episode_key": key}), 404)
    assert key not in {e["episode_key"] for e in mallory.get("/episodes").json()}


def test_cancel_never_stops_a_job_someone_else_holds(
    mallory: Caller, settings: Settings, http_server: TestHTTPServer
) -> None:
    audio = http_server.add_file("/talk.mp3", DEMO / "sonnet001.mp3")
    # the operator queues it with `podmill submit` (no tenant, no job_requests row)
    submitted = subprocess.run(
        [
            sys.executable,
            "-m",
            "podmill",
            "submit",
            audio,
            "--db",
            str(settings.db),
            "--data-dir",
            str(settings.data_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=podmill_env(),
    )
    assert submitted.returncode == 0, submitted.stderr
    operators = json.loads(submitted.stdout.splitlines()[-1])["job_id"]

    asked = mallory.post("/jobs", json={"url": audio}).json()
    assert asked["job"]["id"] == operators and asked["created"] is False
    withdrawn = mallory.post(f"/jobs/{operators}/cancel")
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "pending"  # the operator still holds it
    assert withdrawn.json()["steps"]["fetch"]["status"] == "pending"
