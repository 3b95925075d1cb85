"""``/feeds`` (the shared catalog, admin) and ``/subscriptions`` (a tenant's feeds)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from podmill.api.auth import admin_tenant, current_tenant, platform
from podmill.api.errors import ERROR_SCHEMA
from podmill.api.params import FetchableUrl, RowId
from podmill.api.platform import Tenant
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


@router.post("/feeds", tags=["catalog"], status_code=201)
async def add_feed(
    request: Request, body: FeedCreate, _admin: Tenant = Depends(admin_tenant)
) -> JSONResponse:
    """Add a feed to the catalog after fetching and parsing it (422 with the reason
    when that fails). 200 with the existing feed if it is already there. 429 while
    this tenant has ``server.validations_per_tenant`` validations running."""
    feed, created = await feed_validations(request).run(
        _admin, platform(request).add_feed, body.url, body.interval_seconds
    )
    return JSONResponse(
        jsonable_encoder(feed),
        status_code=201 if created else 200,
        headers={"Location": f"/feeds/{feed['id']}"},
    )


@router.get("/feeds", tags=["catalog"])
def list_feeds(request: Request, _admin: Tenant = Depends(admin_tenant)) -> list[dict[str, Any]]:
    """Every catalog feed with its polling state and number of subscribers."""
    return platform(request).feeds()


@router.get("/feeds/{feed_id}", tags=["catalog"])
def get_feed(
    request: Request, feed_id: RowId, _admin: Tenant = Depends(admin_tenant)
) -> dict[str, Any]:
    return platform(request).feed(feed_id)


@router.delete("/feeds/{feed_id}", tags=["catalog"], status_code=204)
def delete_feed(
    request: Request, feed_id: RowId, _admin: Tenant = Depends(admin_tenant)
) -> Response:
    """Remove a feed from the catalog (and every subscription to it); its episodes,
    jobs and artifacts stay."""
    platform(request).delete_feed(feed_id)
    return Response(status_code=204)


@router.post("/feeds/{feed_id}/merge", tags=["catalog"])
def merge_feed(
    request: Request, feed_id: RowId, body: FeedMerge, _admin: Tenant = Depends(admin_tenant)
) -> dict[str, Any]:
    """Declare this feed and ``into`` one show (two URLs that claim one identity are
    two feeds until an admin says so: docs/feeds.md). ``into`` keeps its identity and
    episodes and is polled at ``url``; this feed's subscribers move to it and this feed
    leaves the catalog. Answers the merged feed."""
    return platform(request).merge_feed(feed_id, body.into, body.url)


@router.post("/subscriptions", tags=["subscriptions"], status_code=201)
async def subscribe(
    request: Request, body: SubscriptionCreate, tenant: Tenant = Depends(current_tenant)
) -> JSONResponse:
    """Subscribe to a feed by URL; a feed not yet in the catalog is added after it was
    fetched and parsed (422 with the reason otherwise). The newest
    ``server.backfill`` episodes are queued; later ones as the poller finds them.
    429 while this tenant has ``server.validations_per_tenant`` validations running."""
    subscription, created = await feed_validations(request).run(
        tenant, platform(request).subscribe, tenant, body.url
    )
    return JSONResponse(
        jsonable_encoder(subscription),
        status_code=201 if created else 200,
        headers={"Location": f"/subscriptions/{subscription['id']}"},
    )


@router.get("/subscriptions", tags=["subscriptions"])
def list_subscriptions(
    request: Request, tenant: Tenant = Depends(current_tenant)
) -> list[dict[str, Any]]:
    return platform(request).subscriptions(tenant)


@router.get("/subscriptions/{subscription_id}", tags=["subscriptions"])
def get_subscription(
    request: Request, subscription_id: RowId, tenant: Tenant = Depends(current_tenant)
) -> dict[str, Any]:
    return platform(request).subscription(tenant, subscription_id=subscription_id)


@router.delete("/subscriptions/{subscription_id}", tags=["subscriptions"], status_code=204)
def unsubscribe(
    request: Request, subscription_id: RowId, tenant: Tenant = Depends(current_tenant)
) -> Response:
    platform(request).unsubscribe(tenant, subscription_id)
    return Response(status_code=204)
