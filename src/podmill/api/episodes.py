"""``/episodes``: the episodes of a tenant's subscriptions and requested jobs, their
topic trees and transcripts. Another tenant's episode is a 404."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from podmill.api.auth import PlatformDep, TenantDep
from podmill.api.errors import ERROR_SCHEMA
from podmill.api.params import MAX_ID, EpisodeKey
from podmill.api.schemas import EpisodeDetail, EpisodeStatus, EpisodeSummary, TranscriptFormat

router = APIRouter(tags=["episodes"], responses={401: ERROR_SCHEMA, 404: ERROR_SCHEMA})

MEDIA_TYPES = {
    "json": "application/json",
    "srt": "application/x-subrip",
    "vtt": "text/vtt; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}


@router.get("/episodes", response_model=list[EpisodeSummary])
def list_episodes(
    service: PlatformDep,
    tenant: TenantDep,
    feed: int | None = Query(
        None, ge=1, le=MAX_ID, description="a feed id (GET /subscriptions shows them)"
    ),
    since: datetime | None = Query(None, description="published at or after (ISO 8601)"),
    status: EpisodeStatus | None = Query(None, description="new = no job yet"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> list[dict[str, Any]]:
    """This tenant's episodes, newest first, with their job status."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return service.episodes(
        tenant, feed_id=feed, since=since, status=status, limit=limit, offset=offset
    )


@router.get("/episodes/{episode_key}", response_model=EpisodeDetail)
def get_episode(service: PlatformDep, episode_key: EpisodeKey, tenant: TenantDep) -> dict[str, Any]:
    """One episode: catalog metadata, job status, topic tree (``topics``, once done)."""
    return service.episode(tenant, episode_key)


@router.get(
    "/episodes/{episode_key}/transcript",
    response_class=FileResponse,
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}},
)
def get_transcript(
    service: PlatformDep,
    episode_key: EpisodeKey,
    tenant: TenantDep,
    format: TranscriptFormat = "json",
) -> FileResponse:
    """The word-timed transcript as JSON, SRT, WebVTT or plain text."""
    path = service.transcript(tenant, episode_key, format)
    return FileResponse(path, media_type=MEDIA_TYPES[format])
