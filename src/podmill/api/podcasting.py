"""Podcasting 2.0 outputs: an episode's JSON transcript and chapters, its captions as
files with their own names, and a feed written back with tags that point at them
(docs/podcasting20.md). The entitlement checks are the episodes' (another tenant's
episode or feed is a 404); a damaged artifact is a 409 as on every route."""

from __future__ import annotations

import json

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response

from podmill.api.auth import PlatformDep, TenantDep
from podmill.api.episodes import MEDIA_TYPES
from podmill.api.errors import ERROR_SCHEMA
from podmill.api.params import EpisodeKey, RowId
from podmill.feeds.podcasting import CHAPTERS_MIME

router = APIRouter(
    tags=["podcasting 2.0"],
    responses={401: ERROR_SCHEMA, 404: ERROR_SCHEMA, 409: ERROR_SCHEMA},
)

RSS_MIME = "application/rss+xml; charset=utf-8"
JSON_MIME = "application/json"

# Routes whose answers are documents of a published format (the spec is the shape),
# not one of podmill's JSON answers.
DOCUMENT_ROUTES = {
    ("get", "/episodes/{episode_key}/transcript.json"),
    ("get", "/episodes/{episode_key}/transcript.vtt"),
    ("get", "/episodes/{episode_key}/transcript.srt"),
    ("get", "/episodes/{episode_key}/chapters.json"),
    ("get", "/feeds/{feed_id}/enriched.xml"),
}

DepthQuery = Query(
    1, ge=1, le=2, description="1: a chapter per L1 topic; 2: L2 sub-topics where a topic has them"
)


@router.get(
    "/episodes/{episode_key}/transcript.json",
    response_class=Response,
    responses={200: {"content": {JSON_MIME: {}}}},
)
def get_podcast_transcript(
    service: PlatformDep, episode_key: EpisodeKey, tenant: TenantDep
) -> Response:
    """The transcript in the Podcasting 2.0 JSON transcript format (``{"version":
    "1.0.0", "segments": [{"speaker", "startTime", "endTime", "body"}]}``), speakers
    where they are known. ``GET /episodes/{key}/transcript`` is podmill's own,
    word-timed JSON."""
    return Response(service.podcast_transcript(tenant, episode_key), media_type=JSON_MIME)


@router.get(
    "/episodes/{episode_key}/transcript.vtt",
    response_class=FileResponse,
    responses={200: {"content": {MEDIA_TYPES["vtt"]: {}}}},
)
def get_vtt(service: PlatformDep, episode_key: EpisodeKey, tenant: TenantDep) -> FileResponse:
    """The WebVTT captions (``text/vtt``), as ``GET /episodes/{key}/transcript?format=vtt``."""
    return FileResponse(
        service.transcript(tenant, episode_key, "vtt"), media_type=MEDIA_TYPES["vtt"]
    )


@router.get(
    "/episodes/{episode_key}/transcript.srt",
    response_class=FileResponse,
    responses={200: {"content": {MEDIA_TYPES["srt"]: {}}}},
)
def get_srt(service: PlatformDep, episode_key: EpisodeKey, tenant: TenantDep) -> FileResponse:
    """The SubRip captions (``application/x-subrip``), as ``?format=srt``."""
    return FileResponse(
        service.transcript(tenant, episode_key, "srt"), media_type=MEDIA_TYPES["srt"]
    )


@router.get(
    "/episodes/{episode_key}/chapters.json",
    response_class=Response,
    responses={200: {"content": {CHAPTERS_MIME: {}}}},
)
def get_chapters(
    service: PlatformDep, episode_key: EpisodeKey, tenant: TenantDep, depth: int = DepthQuery
) -> Response:
    """Podcasting 2.0 JSON chapters (version 1.2.0, ``application/json+chapters``): a
    chapter per topic with its title and start and end times."""
    document = service.chapters(tenant, episode_key, depth)
    body = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return Response(body, media_type=CHAPTERS_MIME)


@router.get(
    "/feeds/{feed_id}/enriched.xml",
    response_class=Response,
    responses={200: {"content": {RSS_MIME: {}}}},
)
def get_enriched_feed(
    request: Request, service: PlatformDep, feed_id: RowId, tenant: TenantDep
) -> Response:
    """The feed written back as RSS, each processed item with ``podcast:transcript``
    (JSON, WebVTT and SRT) and ``podcast:chapters`` tags. Its links are absolute:
    ``server.base_url``, else this request's base URL. The items are this tenant's
    episodes of the feed (every one when subscribed), newest first."""
    base_url = service.settings.server.base_url or str(request.base_url)
    return Response(service.enriched_feed(tenant, feed_id, base_url), media_type=RSS_MIME)
