"""Every route × another tenant's resource is a 404 that carries none of its data."""

from __future__ import annotations

import pytest

from podmill.platform import Platform

from support.api import Caller, LiveFeed, assert_error
from support.paths import DEMO


@pytest.fixture
def alices_things(alice: Caller, live_feed: LiveFeed, platform: Platform) -> dict[str, object]:
    """Alice's job (an upload), its episode with a transcript on disk, her subscription."""
    audio = (DEMO / "sonnet001.mp3").read_bytes()
    job = alice.post("/jobs", files={"file": ("secret.mp3", audio, "audio/mpeg")}).json()["job"]
    key = job["episode_key"]
    words = "alice's secret words\n"
    platform.artifacts.write_text(key, platform.fingerprint, "transcript.txt", words)
    platform.artifacts.write_manifest(key, platform.fingerprint, {})  # finished, as publish does
    sub = alice.post("/subscriptions", json={"url": live_feed.url}).json()
    feed_episode = alice.get(f"/episodes?feed={sub['feed_id']}").json()[-1]["episode_key"]
    assert alice.get(f"/episodes/{key}/transcript?format=txt").text == "alice's secret words\n"
    return {"job": job["id"], "key": key, "sub": sub["id"], "feed_episode": feed_episode}


ROUTES = [
    ("get", "/jobs/{job}"),
    ("post", "/jobs/{job}/cancel"),
    ("post", "/jobs/{job}/retry"),
    ("get", "/episodes/{key}"),
    ("get", "/episodes/{feed_episode}"),
    ("get", "/episodes/{key}/transcript?format=txt"),
    ("get", "/episodes/{key}/transcript?format=json"),
    ("get", "/subscriptions/{sub}"),
    ("delete", "/subscriptions/{sub}"),
]


@pytest.mark.parametrize(("method", "template"), ROUTES)
def test_another_tenants_resource_is_404(
    alices_things: dict[str, object], bob: Caller, method: str, template: str
) -> None:
    path = template.format(**alices_things)
    body = assert_error(getattr(bob, method)(path), 404, "not_found")
    assert "secret" not in str(body)


def test_listings_show_nothing_of_another_tenant(
    alices_things: dict[str, object], bob: Caller, alice: Caller
) -> None:
    assert bob.get("/jobs").json() == []
    assert bob.get("/episodes").json() == []
    assert bob.get("/subscriptions").json() == []
    post = bob.post("/jobs", json={"episode_key": alices_things["feed_episode"]})
    assert_error(post, 404)
    # and alice still has all of it
    assert len(alice.get("/jobs").json()) == 2  # her upload and the backfilled item
    assert alice.get(f"/subscriptions/{alices_things['sub']}").status_code == 200


def test_admins_see_their_own_jobs_too_not_everyones(
    alices_things: dict[str, object], admin: Caller
) -> None:
    """Admin is a role for the catalog and the engine (/feeds, /admin), not a view
    into tenants' data: /jobs and /episodes stay per tenant."""
    assert_error(admin.get(f"/jobs/{alices_things['job']}"), 404)
    assert admin.get("/episodes").json() == []
    assert admin.get("/admin/queues").json()[0]["pending"] == 2
