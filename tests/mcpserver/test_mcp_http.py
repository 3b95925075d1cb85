"""``/mcp`` of a real ``podmill serve`` process, driven by the official SDK's client over
streamable HTTP with the API's keys: ``alice`` (Talk show's two episodes) and
``bob`` (the other feed's one) each get what the REST API gives them, a tenant never
reaches another's episode through any tool or resource, and a wrong key is a 401.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from support.api import assert_error
from support.browser import Site, create_tenant
from support.httpserver import TestHTTPServer
from support.mcp_client import SyncClient, http_session
from support.paths import DEMO

# The first test builds the session's data (real `podmill run`s of two feeds): minutes on
# a loaded machine, so a bound above the suite's 600 s (a safety bound, not a check).
pytestmark = pytest.mark.timeout(1800)
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "curl", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def alice(mcp_site: Site) -> Iterator[SyncClient]:
    with http_session(mcp_site.url, mcp_site.key("alice")) as client:
        yield client


@pytest.fixture(scope="module")
def bob(mcp_site: Site) -> Iterator[SyncClient]:
    with http_session(mcp_site.url, mcp_site.key("bob")) as client:
        yield client


def _mars(site: Site) -> str:
    return site.data.titled("Coffee, Mars rovers").key


def test_each_tool_answers_what_the_rest_api_answers(alice: SyncClient, mcp_site: Site) -> None:
    key = _mars(mcp_site)
    listed = alice.ok("list_episodes")["episodes"]
    assert [e["episode_key"] for e in listed] == mcp_site.visible["alice"]
    with mcp_site.api("alice") as api:
        detail = api.get(f"/episodes/{key}").json()
        rest_hits = api.get("/search", params={"q": "robotic rovers on Mars", "limit": 5}).json()
        digest = api.get("/digest", params={"since": "2025-01-01"}).json()
    tree = alice.ok("get_episode_tree", {"episode_key": key})["tree"]
    assert [c["title"] for c in tree["children"]] == [
        c["title"] for c in detail["topics"]["root"]["children"]
    ]
    hits = alice.ok("search", {"query": "robotic rovers on Mars", "limit": 5})["hits"]
    assert [(h["episode_key"], h["node_id"], h["start"]) for h in hits] == [
        (h["episode_key"], h["node_id"], h["start"]) for h in rest_hits
    ]
    assert hits[0]["episode_key"] == key and f"[{key}]" in hits[0]["cite"]
    topic = tree["children"][0]
    span = alice.ok(
        "get_transcript_span",
        {"episode_key": key, "start": topic["start"], "end": topic["end"]},
    )
    assert "coffee" in span["text"].lower() and span["episode_key"] == key
    ours = alice.ok("digest", {"since": "2025-01-01"})["digest"]
    assert [e["episode_key"] for e in ours["episodes"]] == [
        e["episode_key"] for e in digest["episodes"]
    ]
    assert ours["tenant"] == "alice"
    assert alice.read(f"podmill://episodes/{key}").startswith("# Coffee, Mars rovers")


def test_a_tenant_never_reaches_another_tenants_episode(
    alice: SyncClient, bob: SyncClient, mcp_site: Site
) -> None:
    from mcp import MCPError

    theirs = mcp_site.visible["alice"]
    mine = mcp_site.visible["bob"]
    assert theirs and mine and not set(theirs) & set(mine)
    key = _mars(mcp_site)
    assert [e["episode_key"] for e in bob.ok("list_episodes")["episodes"]] == mine
    # what alice finds, bob does not; his own episode he does find (the search works)
    assert alice.ok("search", {"query": "robotic rovers on Mars"})["hits"]
    for query in ("robotic rovers on Mars", "coffee beans grinder", "ask not your country"):
        hits = bob.ok("search", {"query": query})["hits"]
        assert {h["episode_key"] for h in hits} <= set(mine), (query, hits)
    assert {h["episode_key"] for h in bob.ok("search", {"query": "weather"})["hits"]} == set(mine)
    for other in theirs:
        assert "no episode" in bob.error("get_episode_tree", {"episode_key": other})
        assert "no episode" in bob.error(
            "get_transcript_span", {"episode_key": other, "start": 0, "end": 30}
        )
        for uri in (f"podmill://episodes/{other}", f"podmill://episodes/{other}/transcript"):
            with pytest.raises(MCPError, match="no episode"):
                bob.read(uri)
    digest = bob.ok("digest", {"since": "2025-01-01"})["digest"]
    assert {e["episode_key"] for e in digest["episodes"]} == set(mine)
    # alice's feed is not bob's to name, by title or URL
    assert "no feed" in bob.error("list_episodes", {"feed": mcp_site.data.demo_feed})
    assert "no feed" in bob.error("search", {"query": "Mars", "feed": "Talk show"})
    named = bob.call("digest", {"feeds": ["Talk show"], "since": "2025-01-01"})
    assert named.is_error or not named.structured_content["digest"]["episodes"], named
    # bob's own episode, for the record, reads fine
    assert bob.ok("get_episode_tree", {"episode_key": mine[0]})["tree"]
    assert key not in bob.read(f"podmill://episodes/{mine[0]}")


def test_a_wrong_or_missing_key_is_a_401(mcp_site: Site) -> None:
    url = mcp_site.url + "/mcp"
    for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Basic x"}):
        answer = httpx.post(url, json=INITIALIZE, headers={**MCP_HEADERS, **headers}, timeout=30)
        assert_error(answer, 401, "unauthorized")
        assert answer.headers["www-authenticate"] == "Bearer"
    # the SDK's client with a wrong key gets nowhere
    with pytest.raises(Exception, match="TaskGroup|rror"), http_session(mcp_site.url, "not-a-key"):
        pass
    # with the right key the same request is answered
    ok = httpx.post(
        url,
        json=INITIALIZE,
        headers={**MCP_HEADERS, "Authorization": f"Bearer {mcp_site.key('alice')}"},
        timeout=30,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["result"]["serverInfo"]["name"] == "podmill"


def test_submit_queues_like_post_jobs_for_the_caller_only(
    mcp_site: Site, mcp_feeds: TestHTTPServer, bob: SyncClient
) -> None:
    db_url = f"sqlite:///{mcp_site.server.log_path.parent / 'data' / 'podmill.db'}"
    carol = create_tenant(db_url, "carol")
    audio = mcp_feeds.add_file("/mcp-submit/episode.mp3", DEMO / "sonnet001.mp3")
    with mcp_site.api("alice") as api:
        [theirs] = [e for e in api.get("/episodes").json() if e["episode_key"] == _mars(mcp_site)]
    with http_session(mcp_site.url, carol.key) as client:
        first = client.ok("submit_url", {"url": audio})
        again = client.ok("submit_url", {"url": audio})
        listed = client.ok("list_episodes")["episodes"]
        refused = client.error("submit_url", {"url": "ftp://example.com/a.mp3"})
        # knowing the enclosure URL of alice's episode is no entitlement to it
        copy = client.ok("submit_url", {"url": theirs["audio_url"]})
        assert copy["episode_key"] != theirs["episode_key"]
        assert "no episode" in client.error(
            "get_episode_tree", {"episode_key": theirs["episode_key"]}
        )
    key = first["episode_key"]
    assert first["created"] is True and again["created"] is False
    assert first["job"]["id"] == again["job"]["id"] and first["uri"] == f"podmill://episodes/{key}"
    assert first["job"]["status"] == "pending" and "steps" not in first["job"]
    assert [e["episode_key"] for e in listed] == [key]
    assert "ftp://example.com/a.mp3" in refused
    with mcp_site.api("root") as api:  # the job is the one POST /jobs would show
        assert api.get(f"/jobs/{first['job']['id']}").status_code == 404  # not root's
    with mcp_site.server.client(carol.key) as api:
        job = api.get(f"/jobs/{first['job']['id']}").json()
    assert job["episode_key"] == key
    assert key not in [e["episode_key"] for e in bob.ok("list_episodes")["episodes"]]
    assert "no episode" in bob.error("get_episode_tree", {"episode_key": key})
