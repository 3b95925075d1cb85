"""The typed HTTP boundary (api/schemas.py): ``/openapi.json`` documents the real shape
of every route's answer, and real answers have that shape with nothing dropped.

A route's ``response_model`` filters its answer: a key the type forgot disappears
from it. So the answers of real calls (a real feed on the test HTTP server, the real
app on SQLite and Postgres) are checked twice: valid against the schema the route
publishes, and equal to what the platform returned before the boundary saw it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema
from fastapi.encoders import jsonable_encoder
from pydantic import TypeAdapter
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import select, update

from podmill.api.podcasting import DOCUMENT_ROUTES
from podmill.api.schemas import SearchHit
from podmill.digest.weekly import DIGESTS, list_digests
from podmill.platform import Platform
from podmill.search.searcher import Hit
from podmill.storage.models import JobRow, StepRow

from support.api import Caller, LiveFeed

# answers that are files or text, documented by media type rather than a JSON shape (the
# Podcasting 2.0 documents' shapes are their specs': tests/support/podcasting.py)
FILE_ROUTES = {
    ("get", "/episodes/{episode_key}/transcript"),
    ("get", "/subscriptions.opml"),
    ("get", "/events"),  # text/event-stream: each event's data is documented in docs/api.md
} | DOCUMENT_ROUTES
_ANY = TypeAdapter(Any)


def untyped(value: Any) -> Any:
    """What a route answered before it had a response_model (``dict[str, Any]``)."""
    return _ANY.dump_python(value, mode="json")


class Spec:
    """The app's OpenAPI document: an operation's answer schema, and a validator."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if ref is None:
            return schema
        return self.document["components"]["schemas"][ref.rpartition("/")[2]]

    def validate(self, method: str, path: str, body: Any, status: int = 200) -> None:
        """``body`` is valid against the JSON schema of ``method path``'s ``status``."""
        responses = self.document["paths"][path][method]["responses"]
        answer = responses[str(status)]["content"]["application/json"]["schema"]
        # the answer's $refs point into the document: validate it as a part of it
        whole = {**self.document, "$defs": {"answer": answer}}
        registry = Registry().with_resource(
            "urn:openapi", Resource.from_contents(whole, default_specification=DRAFT202012)
        )
        jsonschema.Draft202012Validator(
            {"$ref": "urn:openapi#/$defs/answer"},
            registry=registry,
            format_checker=jsonschema.FormatChecker(),
        ).validate(body)


def test_every_route_documents_the_shape_of_its_answer(admin: Caller) -> None:
    spec = Spec(admin.client.get("/openapi.json").json())
    documented = {(m, p) for p, ops in spec.document["paths"].items() for m in ops}
    assert len(documented) >= 28  # every route but /metrics and the docs pages
    shapeless = []
    for method, path in sorted(documented - FILE_ROUTES):
        responses = spec.document["paths"][path][method]["responses"]
        answers = {code: r for code, r in responses.items() if code.startswith("2")}
        assert answers, (method, path)
        for code, answer in answers.items():
            if code == "204":
                assert "content" not in answer, (method, path)
                continue
            schema = spec.resolve(
                answer.get("content", {}).get("application/json", {}).get("schema", {})
            )
            if schema.get("type") == "array":
                schema = spec.resolve(schema.get("items", {}))
            # a shape: named properties, not {} nor "any object"
            if not schema.get("properties"):
                shapeless.append(f"{method.upper()} {path} {code}: {schema}")
    assert not shapeless, "\n".join(shapeless)


def test_answers_of_real_calls_have_their_documented_shape(
    platform: Platform, admin: Caller, live_feed: LiveFeed
) -> None:
    spec = Spec(admin.client.get("/openapi.json").json())
    tenant = platform.tenant(admin.name)
    assert tenant is not None

    def answer(method: str, path: str, url: str | None = None, status: int = 200, **kw: Any) -> Any:
        response = getattr(admin, method)(url or path, **kw)
        assert response.status_code == status, response.text
        spec.validate(method, path, response.json(), status)
        return response.json()

    # the POST routes JSON-encode their answers themselves (jsonable_encoder)
    subscription = answer("post", "/subscriptions", status=201, json={"url": live_feed.url})
    feed_id = subscription["feed_id"]
    assert subscription == jsonable_encoder(platform.subscription(tenant, feed_id=feed_id))
    again = answer("post", "/subscriptions", json={"url": live_feed.url})
    assert again == subscription
    feed = answer("post", "/feeds", json={"url": live_feed.url})
    assert feed == jsonable_encoder(platform.feed(feed_id))

    assert answer("get", "/me") == untyped(platform.me(tenant))
    assert answer("get", "/subscriptions") == untyped(platform.subscriptions(tenant))
    assert answer(
        "get", "/subscriptions/{subscription_id}", f"/subscriptions/{subscription['id']}"
    ) == untyped(platform.subscription(tenant, subscription_id=subscription["id"]))
    assert answer("get", "/feeds") == untyped(platform.feeds())
    assert answer("get", "/feeds/{feed_id}", f"/feeds/{feed_id}") == untyped(platform.feed(feed_id))

    # the backfill queued the newest episode's job; another one is asked for by key
    episodes = answer("get", "/episodes")
    assert episodes == untyped(
        platform.episodes(tenant, feed_id=None, since=None, status=None, limit=50, offset=0)
    )
    assert {e["status"] for e in episodes} == {"new", "pending"}
    key = next(e["episode_key"] for e in episodes if e["status"] == "new")
    accepted = answer("post", "/jobs", status=202, json={"episode_key": key})
    job_id = accepted["job"]["id"]
    assert accepted == {"job": jsonable_encoder(platform.job(tenant, job_id)), "created": True}
    detail = answer("get", "/episodes/{episode_key}", f"/episodes/{key}")
    assert detail == untyped(platform.episode(tenant, key))
    assert detail["status"] == "pending"

    # a step that failed for good, on a worker that is still there
    platform.store.register_worker("host:1:abc", "host", 1, {"io": 1, "cpu": 2})
    now = datetime.now(UTC)
    with platform.engine.begin() as conn:
        step_id = conn.execute(
            select(StepRow.id).where(StepRow.job_id == job_id, StepRow.stage == "fetch")
        ).scalar_one()
        conn.execute(
            update(StepRow)
            .where(StepRow.id == step_id)
            .values(
                status="dead",
                attempts=3,
                error="DownloadError: HTTP 404",
                finished_at=now,
                worker_id="host:1:abc",
                notes=["a note"],
            )
        )
        conn.execute(
            update(JobRow).where(JobRow.id == job_id).values(status="failed", error="fetch: 404")
        )
    assert answer("get", "/jobs") == untyped(platform.jobs(tenant, None, 100))
    assert answer("get", "/jobs/{job_id}", f"/jobs/{job_id}") == untyped(
        platform.job(tenant, job_id)
    )
    assert answer("get", "/admin/dead") == untyped(platform.store.list_dead())
    workers, direct = answer("get", "/admin/workers"), untyped(platform.workers())
    for worker in (*workers, *direct):  # its age grows between the two reads
        assert worker.pop("heartbeat_age_seconds") >= 0
    assert workers == direct
    paused = answer("post", "/admin/queues/{stage}/{action}", "/admin/queues/fetch/pause")
    assert paused == {"stage": "fetch", "paused": True}
    queues = answer("get", "/admin/queues")
    assert queues[0] == {**queues[0], "stage": "fetch", "dead": 1, "paused": True}
    assert queues == untyped(admin_queues(platform))
    retried = answer("post", "/admin/dead/{step_id}/retry", f"/admin/dead/{step_id}/retry")
    assert retried == {"step_id": step_id, "status": "pending"}
    for action in ("cancel", "retry"):
        body = answer("post", f"/jobs/{{job_id}}/{action}", f"/jobs/{job_id}/{action}")
        assert body == untyped(platform.job(tenant, job_id))

    # digests: one made now, and one stored
    document = answer("get", "/digest")
    with platform.engine.begin() as conn:
        digest_id = conn.execute(
            DIGESTS.insert().values(
                tenant_id=tenant.id,
                kind="weekly",
                period_start=now,
                period_end=now,
                schema_version=document["schema"],
                document=document,
                created_at=now,
            )
        ).inserted_primary_key[0]
    assert answer("get", "/digests") == untyped(list_digests(platform, tenant, 52))
    assert answer("get", "/digests/{digest_id}", f"/digests/{digest_id}") == document

    health = admin.get("/health")  # an admin's key sees the checks
    spec.validate("get", "/health", health.json(), health.status_code)
    assert {"status", "version", "git_sha", "checks"} <= set(health.json())


def admin_queues(platform: Platform) -> list[dict[str, Any]]:
    """GET /admin/queues as the route builds it from the store's counts."""
    return [
        {
            "stage": name,
            **{k: v for k, v in counts.items() if k != "paused"},
            "paused": bool(counts["paused"]),
        }
        for name, counts in platform.store.queue_stats().items()
    ]


def test_a_search_hit_keeps_every_key_of_podmill_search_json() -> None:
    hit = Hit(
        episode_key="k1",
        episode_title="Episode",
        node_id="n1",
        level=1,
        start=1.234,
        end=5.678,
        score=0.0163934,
        snippet="the «storm» came",
        kind="node",
        title="Storm",
        feed_id=3,
        feed_title="Show",
        published_at=datetime(2026, 11, 20, 10, tzinfo=UTC),
        matched=["keyword", "vector"],
    )
    answer = TypeAdapter(list[SearchHit])
    assert answer.dump_python(answer.validate_python([hit.to_json()]), mode="json") == [
        hit.to_json()
    ]
