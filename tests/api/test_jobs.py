"""POST /jobs (URL, catalog item, upload), GET, cancel, retry; one job per episode."""

from __future__ import annotations

from pathlib import Path

from podmill.platform import Platform

from support.api import Caller, LiveFeed, assert_error
from support.httpserver import TestHTTPServer
from support.paths import DEMO


def test_submit_an_audio_url(alice: Caller, http_server: TestHTTPServer) -> None:
    url = http_server.add_file("/talk.mp3", DEMO / "sonnet001.mp3")
    response = alice.post("/jobs", json={"url": url})
    assert response.status_code == 202, response.text
    body = response.json()
    job = body["job"]
    assert body["created"] is True
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert job["status"] == "pending"
    assert job["steps"]["fetch"]["status"] == "pending"
    assert job["steps"]["transcribe"]["status"] == "waiting"
    assert set(job["steps"]["fetch"]) >= {"attempts", "started_at", "duration_seconds", "error"}

    shown = alice.get(f"/jobs/{job['id']}").json()
    assert shown["id"] == job["id"] and shown["episode_key"] == job["episode_key"]
    assert [j["id"] for j in alice.get("/jobs").json()] == [job["id"]]
    assert [j["id"] for j in alice.get("/jobs?status=pending").json()] == [job["id"]]
    assert alice.get("/jobs?status=done").json() == []
    episode = alice.get(f"/episodes/{job['episode_key']}").json()
    assert episode["title"] == "talk" and episode["status"] == "pending"


def test_two_tenants_asking_for_one_episode_share_one_job(
    alice: Caller, bob: Caller, http_server: TestHTTPServer, platform: Platform
) -> None:
    url = http_server.add_file("/talk.mp3", DEMO / "sonnet001.mp3")
    first = alice.post("/jobs", json={"url": url}).json()
    second = bob.post("/jobs", json={"url": url}).json()
    assert first["created"] is True and second["created"] is False
    assert first["job"]["id"] == second["job"]["id"]
    assert len(platform.store.jobs()) == 1
    for caller in (alice, bob):
        assert [j["id"] for j in caller.get("/jobs").json()] == [first["job"]["id"]]


def test_cancel_withdraws_a_request_and_stops_the_job_when_nobody_wants_it(
    alice: Caller, bob: Caller, http_server: TestHTTPServer
) -> None:
    url = http_server.add_file("/talk.mp3", DEMO / "sonnet001.mp3")
    job_id = alice.post("/jobs", json={"url": url}).json()["job"]["id"]
    bob.post("/jobs", json={"url": url})

    assert alice.post(f"/jobs/{job_id}/cancel").json()["status"] == "pending"  # bob wants it
    cancelled = bob.post(f"/jobs/{job_id}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["steps"]["fetch"]["status"] == "cancelled"
    assert_error(bob.post(f"/jobs/{job_id}/cancel"), 409, "conflict")

    retried = alice.post(f"/jobs/{job_id}/retry").json()
    assert retried["status"] == "pending"
    assert retried["steps"]["fetch"]["status"] == "pending"
    assert_error(alice.post(f"/jobs/{job_id}/retry"), 409, "conflict")

    # asking again for a job everybody cancelled brings it back
    bob.post(f"/jobs/{job_id}/cancel")
    alice.post(f"/jobs/{job_id}/cancel")
    assert alice.get(f"/jobs/{job_id}").json()["status"] == "cancelled"
    again = bob.post("/jobs", json={"url": url}).json()
    assert again["job"]["id"] == job_id and again["job"]["status"] == "pending"


def test_a_catalog_items_audio_url_is_that_episode(
    alice: Caller, bob: Caller, live_feed: LiveFeed, platform: Platform
) -> None:
    """Submitting the enclosure URL of a feed item the tenant may see attaches to the
    item's episode (and job); for a tenant who may not, it is a bare audio URL of its own
    (tests/security/test_catalog_takeover.py attacks that)."""
    subscribed = alice.post("/subscriptions", json={"url": live_feed.url})
    assert subscribed.status_code == 201, subscribed.text
    [backfilled] = alice.get("/jobs").json()  # backfill = 1: the newest item
    newest_audio = live_feed.server.url_for("/feed.xml.audio/ep2.mp3")
    mine = alice.post("/jobs", json={"url": newest_audio}).json()
    assert mine["job"]["id"] == backfilled["id"] and mine["created"] is False
    theirs = bob.post("/jobs", json={"url": newest_audio}).json()
    assert theirs["job"]["id"] != backfilled["id"] and theirs["created"] is True
    bob.post("/subscriptions", json={"url": live_feed.url})
    episode = bob.get(f"/episodes/{backfilled['episode_key']}").json()
    assert episode["title"] == "Episode 2"


def test_submit_by_episode_key_of_a_subscription(alice: Caller, live_feed: LiveFeed) -> None:
    alice.post("/subscriptions", json={"url": live_feed.url})
    new = alice.get("/episodes?status=new").json()
    assert [e["title"] for e in new] == ["Episode 1", "Episode 0"]
    response = alice.post("/jobs", json={"episode_key": new[0]["episode_key"]})
    assert response.status_code == 202
    assert alice.get("/episodes?status=new").json()[0]["title"] == "Episode 0"
    assert_error(alice.post("/jobs", json={"episode_key": "0" * 16}), 404)


def test_a_feed_url_or_a_dead_link_is_422(alice: Caller, live_feed: LiveFeed) -> None:
    body = assert_error(alice.post("/jobs", json={"url": live_feed.url}), 422, "invalid_url")
    assert "POST /subscriptions" in body["detail"]
    missing = live_feed.server.url_for("/missing")
    body = assert_error(alice.post("/jobs", json={"url": missing}), 422, "invalid_url")
    assert "404" in body["detail"]


# ---------------------------------------------------------------------------- uploads


def uploads(platform: Platform) -> list[Path]:
    folder = platform.settings.data_dir / "uploads"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_upload_audio(alice: Caller, bob: Caller, platform: Platform) -> None:
    audio = (DEMO / "sonnet001.mp3").read_bytes()
    response = alice.post("/jobs", files={"file": ("sonnet.mp3", audio, "audio/mpeg")})
    assert response.status_code == 202, response.text
    job = response.json()["job"]
    [stored] = uploads(platform)
    assert stored.read_bytes() == audio and stored.suffix == ".mp3"
    # the same bytes from the same tenant are the same job
    again = alice.post("/jobs", files={"file": ("sonnet.mp3", audio, "audio/mpeg")}).json()
    assert again["job"]["id"] == job["id"] and again["created"] is False
    # from another tenant, a job of its own (tests/security/test_catalog_takeover.py); one file
    theirs = bob.post("/jobs", files={"file": ("other.mp3", audio, "audio/mpeg")}).json()
    assert theirs["job"]["id"] != job["id"] and theirs["created"] is True
    assert len(uploads(platform)) == 1


def test_bad_uploads_are_4xx_and_leave_nothing_behind(alice: Caller, platform: Platform) -> None:
    audio = (DEMO / "sonnet001.mp3").read_bytes()
    big = audio * 6  # over the 2 MiB cap of these tests
    cases = [
        (("page.mp3", b"<!doctype html><html><body>Not found</body></html>", "audio/mpeg"), 415),
        (("empty.mp3", b"", "audio/mpeg"), 422),
        (("big.mp3", big, "audio/mpeg"), 413),
    ]
    for upload, status in cases:
        response = alice.post("/jobs", files={"file": upload})
        body = assert_error(response, status)
        assert upload[0] in body["detail"] or "bytes" in body["detail"]
    assert_error(alice.post("/jobs", files={"other": ("a.mp3", audio, "audio/mpeg")}), 422)
    assert uploads(platform) == []
    assert alice.get("/jobs").json() == []
