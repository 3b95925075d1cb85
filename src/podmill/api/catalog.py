"""``/feeds`` (the shared catalog, admin) and ``/subscriptions`` (a tenant's feeds)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from podmill.api.auth import AdminDep, PlatformDep, TenantDep
from podmill.api.errors import ERROR_SCHEMA
from podmill.api.params import FetchableUrl, ReplyTo, RowId
from podmill.api.schemas import Feed, Subscription
from podmill.api.validation import feed_validations

router = APIRouter(
    responses={401: ERROR_SCHEMA, 403: ERROR_SCHEMA, 404: ERROR_SCHEMA, 422: ERROR_SCHEMA}
)


class FeedCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: FetchableUrl
    interval_seconds: int | None = Field(
        None, ge=1, le=7 * 86400, description="poll interval (default server.poll_interval_seconds)"
    )


class FeedMerge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    into: int = Field(ge=1, le=2**31 - 1, description="the catalog feed that stays")
    url: str | None = Field(
        None,
        min_length=1,
        max_length=4000,
        description="the URL the merged feed is polled at: either feed's (default: this one's)",
    )


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: FetchableUrl = Field(description="the feed's URL")
    reply_to: ReplyTo | None = None  # every episode of the feed queued for this tenant


@router.post(
    "/feeds",
    tags=["catalog"],
    status_code=201,
    response_model=Feed,
    responses={200: {"model": Feed, "description": "the feed was in the catalog already"}},
)
async def add_feed(
    request: Request, service: PlatformDep, body: FeedCreate, _admin: AdminDep
) -> JSONResponse:
    """Add a feed to the catalog after fetching and parsing it (422 with the reason
    when that fails). 200 with the existing feed if it is already there. 429 while
    this tenant has ``server.validations_per_tenant`` validations running."""
    feed, created = await feed_validations(request).run(
        _admin, service.add_feed, body.url, body.interval_seconds
    )
    return _created(feed, created, f"/feeds/{feed['id']}")


@router.get("/feeds", tags=["catalog"], response_model=list[Feed])
def list_feeds(service: PlatformDep, _admin: AdminDep) -> list[dict[str, Any]]:
    """Every catalog feed with its polling state and number of subscribers."""
    return service.feeds()


@router.get("/feeds/{feed_id}", tags=["catalog"], response_model=Feed)
def get_feed(service: PlatformDep, feed_id: RowId, _admin: AdminDep) -> dict[str, Any]:
    return service.feed(feed_id)


@router.delete("/feeds/{feed_id}", tags=["catalog"], status_code=204)
def delete_feed(service: PlatformDep, feed_id: RowId, _admin: AdminDep) -> Response:
    """Remove a feed from the catalog (and every subscription to it); its episodes,
    jobs and artifacts stay."""
    service.delete_feed(feed_id)
    return Response(status_code=204)


@router.post("/feeds/{feed_id}/merge", tags=["catalog"], response_model=Feed)
def merge_feed(
    service: PlatformDep, feed_id: RowId, body: FeedMerge, _admin: AdminDep
) -> dict[str, Any]:
    """Declare this feed and ``into`` one show (two URLs that claim one identity are
    two feeds until an admin says so: docs/feeds.md). ``into`` keeps its identity and
    episodes and is polled at ``url``; this feed's subscribers move to it and this feed
    leaves the catalog. Answers the merged feed."""
    return service.merge_feed(feed_id, body.into, body.url)


@router.post(
    "/subscriptions",
    tags=["subscriptions"],
    status_code=201,
    response_model=Subscription,
    responses={200: {"model": Subscription, "description": "this tenant was subscribed already"}},
)
async def subscribe(
    request: Request, service: PlatformDep, body: SubscriptionCreate, tenant: TenantDep
) -> JSONResponse:
    """Subscribe to a feed by URL; a feed not yet in the catalog is added after it was
    fetched and parsed (422 with the reason otherwise). The newest
    ``server.backfill`` episodes are queued; later ones as the poller finds them.
    429 while this tenant has ``server.validations_per_tenant`` validations running."""
    if body.reply_to is not None:
        await run_in_threadpool(service.check_reply_to, body.reply_to)
    subscription, created = await feed_validations(request).run(
        tenant, service.subscribe, tenant, body.url, body.reply_to
    )
    return _created(subscription, created, f"/subscriptions/{subscription['id']}")


@router.get("/subscriptions", tags=["subscriptions"], response_model=list[Subscription])
def list_subscriptions(service: PlatformDep, tenant: TenantDep) -> list[dict[str, Any]]:
    return service.subscriptions(tenant)


@router.get("/subscriptions/{subscription_id}", tags=["subscriptions"], response_model=Subscription)
def get_subscription(
    service: PlatformDep, subscription_id: RowId, tenant: TenantDep
) -> dict[str, Any]:
    return service.subscription(tenant, subscription_id=subscription_id)


@router.delete("/subscriptions/{subscription_id}", tags=["subscriptions"], status_code=204)
def unsubscribe(service: PlatformDep, subscription_id: RowId, tenant: TenantDep) -> Response:
    service.unsubscribe(tenant, subscription_id)
    return Response(status_code=204)


def _created(answer: dict[str, Any], created: bool, location: str) -> JSONResponse:
    """201 with ``Location`` for a row this request added; 200 for one already there."""
    return JSONResponse(
        jsonable_encoder(answer),
        status_code=201 if created else 200,
        headers={"Location": location},
    )
