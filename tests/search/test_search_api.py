"""``GET /search`` on SQLite and Postgres: a tenant finds its own episodes and never
another tenant's, through the keyword side, the exact vector side and the IVF side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from podmill.platform import Platform
from podmill.search.searcher import Searcher
from podmill.storage.db import make_engine
from podmill.storage.models import SubscriptionRow, utcnow

from support.api import assert_error, make_caller, make_settings

pytest.importorskip("fastapi", reason="pip install 'podmill[server]'")

from fastapi.testclient import TestClient

from podmill.api.app import create_app

SCIENCE = {"sci0001mars", "sci0002vacc"}
CITY = {"city001taxx", "city002flood"}
# Queries that match every show's episodes strongly, by words or by meaning.
QUERIES = [
    "property tax rebate",
    "growing tomatoes in the sun",
    "river flooding basements",
    "grind the coffee beans",
    "rover on Mars",
    "how much sleep do adults need",
    "sourdough",
]


def _subscribe(platform: Platform, tenant_id: int, feed_id: int) -> None:
    with platform.engine.begin() as conn:
        conn.execute(
            insert(SubscriptionRow.__table__).values(
                tenant_id=tenant_id, feed_id=feed_id, created_at=utcnow()
            )
        )


def _request_job(platform: Platform, tenant_id: int, episode_key: str) -> None:
    job_id, _ = platform.store.submit(episode_key, "fp", {})
    with platform.engine.begin() as conn:
        platform.add_requests(conn, job_id, [tenant_id], None)


@pytest.fixture
def callers(loaded: tuple[str, dict[str, int]], tmp_path: Path) -> Any:
    url, feeds = loaded
    app = create_app(make_settings(tmp_path, url))
    with TestClient(app) as client:
        platform: Platform = app.state.platform
        alice = make_caller(platform, client, "alice")
        bob = make_caller(platform, client, "bob")
        carol = make_caller(platform, client, "carol")
        _subscribe(platform, platform.tenant("alice").id, feeds["science"])
        _subscribe(platform, platform.tenant("bob").id, feeds["city"])
        _request_job(platform, platform.tenant("bob").id, "home001toma")
        yield alice, bob, carol, feeds


def _keys(caller: Any, query: str, **params: Any) -> set[str]:
    response = caller.get("/search", params={"q": query, "limit": 20, **params})
    assert response.status_code == 200, response.text
    return {hit["episode_key"] for hit in response.json()}


def _check_isolation(alice: Any, bob: Any, carol: Any) -> None:
    for query in QUERIES:
        assert _keys(alice, query) <= SCIENCE, query
        assert _keys(bob, query) <= CITY | {"home001toma"}, query
        assert _keys(carol, query) == set(), query
    assert "home001toma" in _keys(bob, "growing tomatoes in the sun")  # a requested job
    assert "city001taxx" in _keys(bob, "property tax rebate")  # a subscription
    assert "sci0001mars" in _keys(alice, "rover on Mars")


def test_a_tenant_never_sees_another_tenants_episodes(
    callers: Any, loaded: tuple[str, dict[str, int]], tmp_path: Path, embed: Any
) -> None:
    alice, bob, carol, feeds = callers
    _check_isolation(alice, bob, carol)  # exact vector scan (no generation yet)
    # a generation with IVF, probed under the tenant's mask (no exact shortcut)
    engine = make_engine(loaded[0])
    try:
        Searcher(engine, tmp_path / "data", embed=embed, ivf_min_docs=1).rebuild()
    finally:
        engine.dispose()
    alice.client.app.state.searcher.exact_below = 0
    _check_isolation(alice, bob, carol)
    # another tenant's feed as a filter: nothing, not an error
    assert _keys(alice, "property tax", feed=feeds["city"]) == set()


def test_search_hits_and_errors(callers: Any) -> None:
    alice, *_ = callers
    response = alice.get("/search", params={"q": "telescope mirror", "limit": 10})
    assert response.status_code == 200
    hits = response.json()
    assert {"episode_key", "episode_title", "node_id", "level", "start", "end", "score"} <= set(
        hits[0]
    )
    assert hits[0]["episode_key"] == "sci0001mars" and "«" in hits[0]["snippet"]
    # the topic and the passage inside it that both matched are one hit: the passage
    # (its exact time), titled with its topic
    assert len(hits) == 1, hits
    assert (hits[0]["kind"], hits[0]["title"]) == ("passage", "Space telescope")
    assert hits[0]["matched"] == ["keyword", "vector"]
    response = alice.get("/search", params={"q": "rover on Mars", "limit": 1})
    assert response.status_code == 200 and len(response.json()) == 1
    assert _keys(alice, "telescope", since="2026-11-05") == set()  # published on the 2nd
    assert _keys(alice, "telescope", until="2026-11-02") == {"sci0001mars"}
    assert_error(alice.get("/search", params={"q": "x", "since": "soon"}), 422, "invalid_request")
    assert_error(alice.get("/search", params={"q": "   "}), 422, "invalid_request")
    assert_error(alice.get("/search"), 422)
    assert_error(alice.client.get("/search", params={"q": "x"}), 401)
