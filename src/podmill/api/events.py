"""``GET /events``: the caller's job and step transitions as server-sent events
(``text/event-stream``; docs/api.md, "Live events"; the event log is
``platform/events.py``).

Each event is ``id: N`` (the cursor), ``event: job|step`` and one JSON ``data:`` line.
A client that reconnects sends ``Last-Event-ID`` (browsers' ``EventSource`` does) and
gets every event after it; without one the stream starts at the newest event (``?after=N``
names a cursor explicitly). A comment line (``: heartbeat``) is sent after
``server.events_heartbeat_seconds`` without events, so proxies keep the connection and a
client that went away is noticed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from podmill.api.auth import PlatformDep, TenantDep
from podmill.api.errors import ERROR_SCHEMA, Problem
from podmill.platform import Platform, Tenant
from podmill.platform.events import EventReader, latest_event_id

router = APIRouter(tags=["jobs"], responses={401: ERROR_SCHEMA})

# Tells EventSource how long to wait before reconnecting (ms).
RETRY_MS = 2000


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "server-sent events: id, event (job or step), data (JSON)",
        },
        422: ERROR_SCHEMA,
    },
)
async def events(
    service: PlatformDep,
    tenant: TenantDep,
    last_event_id: Annotated[str | None, Header(description="resume after this event")] = None,
    after: Annotated[int | None, Query(ge=0, description="start after this event id")] = None,
    job: Annotated[int | None, Query(ge=1, description="only this job's events")] = None,
) -> StreamingResponse:
    """This tenant's job and step transitions, live: ``id``, ``event`` (``job`` or
    ``step``) and ``data`` (``{"id", "type", "job_id", "episode_key", "stage",
    "status", "attempts", "error", "at"}``)."""
    cursor = after
    if last_event_id is not None:
        if not last_event_id.strip().isdigit():
            raise Problem(422, "invalid_request", f"Last-Event-ID {last_event_id!r} is not an id")
        cursor = int(last_event_id)
    if cursor is None:
        cursor = await run_in_threadpool(_latest, service)
    reader = EventReader(tenant, cursor, job_id=job)
    return StreamingResponse(
        _stream(service, tenant, reader),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _latest(service: Platform) -> int:
    with service.reader.connect() as conn:
        return latest_event_id(conn)


def _read(service: Platform, reader: EventReader) -> list[dict[str, object]]:
    with service.reader.connect() as conn:
        return reader.read(conn)


async def _stream(service: Platform, tenant: Tenant, reader: EventReader) -> AsyncIterator[str]:
    settings = service.settings.server
    # Comments end with one newline, not a blank line: a blank line ends an event, and
    # some clients (httpx-sse) dispatch an empty event for it once an id was seen.
    yield f": events of tenant {tenant.name} after {reader.cursor}\n"
    quiet = 0.0
    while True:
        found = await run_in_threadpool(_read, service, reader)
        for event in found:
            data = json.dumps(event, separators=(",", ":"))
            yield f"id: {event['id']}\nevent: {event['type']}\nretry: {RETRY_MS}\ndata: {data}\n\n"
        quiet = 0.0 if found else quiet + settings.events_poll_seconds
        if quiet >= settings.events_heartbeat_seconds:
            quiet = 0.0
            yield ": heartbeat\n"
        await anyio.sleep(settings.events_poll_seconds)
