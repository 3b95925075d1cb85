"""``/jobs``: submit an audio URL, a feed item's audio URL or an upload; read, cancel,
retry. A tenant sees only the jobs it requested (others' are 404)."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from podmill.api.auth import PlatformDep, TenantDep, platform
from podmill.api.errors import ERROR_SCHEMA, Problem, describe_errors
from podmill.api.params import FetchableUrl, ReplyTo, RowId
from podmill.api.schemas import Job, JobAccepted
from podmill.api.validation import feed_validations
from podmill.audio import describe_non_audio, sniff_audio
from podmill.domain import Episode, JobStatus
from podmill.feeds.identity import file_episode_key, upload_episode_key
from podmill.feeds.sources import fetched_to_resolve
from podmill.platform import Platform, Tenant

router = APIRouter(tags=["jobs"], responses={401: ERROR_SCHEMA, 404: ERROR_SCHEMA})

# The viewer's upload form (api/web/jobs.py) takes the same uploads as POST /jobs.
PAGE_UPLOAD_PATH = "/view/jobs/upload"
# Multipart bodies to these may be as large as server.max_upload_bytes (api/bodies.py).
UPLOAD_ROUTES = frozenset({("POST", "/jobs"), ("POST", PAGE_UPLOAD_PATH)})
# Multipart framing around the file: a body this much over the cap is refused unread.
_MULTIPART_SLACK = 64 * 1024
_CHUNK = 1 << 20


class JobCreate(BaseModel):
    """Exactly one of ``url`` (audio, or a catalog feed item's audio) and
    ``episode_key`` (an episode of this tenant's subscriptions)."""

    model_config = ConfigDict(extra="forbid")

    url: FetchableUrl | None = None
    episode_key: str | None = Field(None, min_length=1, max_length=32)
    reply_to: ReplyTo | None = None


_UPLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "reply_to": {"type": "string", "maxLength": 4000},
    },
    "required": ["file"],
}
_CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": JobCreate.model_json_schema()},
            "multipart/form-data": {"schema": _UPLOAD_SCHEMA},
        },
    }
}


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobAccepted,
    openapi_extra=_CREATE_BODY,
    responses={400: ERROR_SCHEMA, 413: ERROR_SCHEMA, 415: ERROR_SCHEMA, 422: ERROR_SCHEMA},
)
async def create_job(request: Request, tenant: TenantDep) -> JSONResponse:
    """Queue an episode: JSON ``{"url": …}`` / ``{"episode_key": …}``, or a multipart
    upload (field ``file``, at most ``server.max_upload_bytes``). The same episode with
    the same settings is one job whoever asks: ``created`` says whether this request
    made it. 202 with ``Location: /jobs/{id}``."""
    service = platform(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    feed_id = None
    reply_to = None
    if content_type == "multipart/form-data":
        episode, reply_to = await receive_upload(request, service)
        episode = tenant_upload(episode, tenant)
    elif content_type in ("application/json", ""):
        body = await _json_body(request)
        reply_to = body.reply_to
        if body.url is not None:
            episode, feed_id = await episode_for_url(request, tenant, body.url)
        else:
            assert body.episode_key is not None
            episode, feed_id = await run_in_threadpool(
                service.episode_by_key, tenant, body.episode_key
            )
    else:
        raise Problem(
            415,
            "unsupported_media_type",
            f'Content-Type {content_type!r}: send JSON {{"url": …}} or a multipart/form-data '
            "upload with a 'file' field",
        )
    job, created = await queue_episode(request, tenant, episode, feed_id, reply_to)
    return JSONResponse(
        jsonable_encoder({"job": job, "created": created}),
        status_code=202,
        headers={"Location": f"/jobs/{job['id']}"},
    )


async def episode_for_url(request: Request, tenant: Tenant, url: str) -> tuple[Episode, int | None]:
    """The episode ``url`` names for ``tenant`` (a subscribed feed item's enclosure, else
    the audio there) and its feed id; the viewer's jobs form asks the same way."""
    service = platform(request)
    # A URL that must be fetched to know what it is fetches on the validation threads,
    # a few per tenant (api/validation.py), never the request threads.
    if fetched_to_resolve(url):
        return await feed_validations(request).run(
            tenant, service.episode_for_submission, tenant, url
        )
    return await run_in_threadpool(service.episode_for_submission, tenant, url)


async def queue_episode(
    request: Request,
    tenant: Tenant,
    episode: Episode,
    feed_id: int | None,
    reply_to: str | None,
) -> tuple[dict[str, Any], bool]:
    """Request ``episode`` for ``tenant`` (one job per episode and settings, whoever
    asks): the job as ``GET /jobs/{id}`` shows it, and whether this request made it."""
    service = platform(request)
    if reply_to is not None:
        await run_in_threadpool(service.check_reply_to, reply_to)
    job_id, created = await run_in_threadpool(
        service.request_episode,
        [tenant.id],
        episode,
        feed_id=feed_id,
        reply_to=reply_to,
        # the request's X-Correlation-ID (or a new one): every step's log lines carry it
        correlation_id=request.state.correlation_id,
    )
    request.app.state.metrics.job_submitted("api")
    job = await run_in_threadpool(service.job, tenant, job_id)
    return job, created


def tenant_upload(episode: Episode, tenant: Tenant) -> Episode:
    """An upload as ``tenant``'s own episode: the same bytes from another tenant are
    another episode and job, so an upload never reveals that someone uploaded it
    before (``created``, status, title, how soon it is done) nor renames theirs."""
    return replace(episode, episode_key=upload_episode_key(episode.episode_key, tenant.id))


_FIELD_ERRORS = {"url": "invalid_url", "reply_to": "invalid_reply_to"}


async def _json_body(request: Request) -> JobCreate:
    import json

    raw = await request.body()
    try:
        data: Any = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Problem(
            422, "invalid_request", 'send a JSON object: {"url": AUDIO_URL} or {"episode_key": KEY}'
        )
    try:
        body = JobCreate.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # a bad URL keeps the code it had when the fetch refused it
        fields = {str(e["loc"][0]) for e in errors if e.get("loc")}
        code = _FIELD_ERRORS.get(fields.pop(), "invalid_request") if len(fields) == 1 else None
        raise Problem(422, code or "invalid_request", describe_errors(errors)) from None
    if (body.url is None) == (body.episode_key is None):
        raise Problem(422, "invalid_request", 'give exactly one of "url" and "episode_key"')
    return body


async def receive_upload(request: Request, service: Platform) -> tuple[Episode, str | None]:
    """Store an uploaded audio file under ``DATA_DIR/uploads/<sha256>.<format>``;
    returns its episode and the form's ``reply_to``, if any.

    Refused (and nothing kept) when it is too large (413), empty (422) or not audio
    (415). The body is streamed to a temp file in that directory and renamed into place
    only when it passed every check.
    """
    cap = service.settings.server.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap + _MULTIPART_SLACK:
        raise _too_large(cap)
    try:
        form = await request.form(max_files=1, max_fields=5)
    except Exception as exc:  # starlette's MultiPartException and parser errors
        raise Problem(400, "invalid_upload", f"malformed multipart body: {exc}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Problem(
                422, "invalid_upload", "a multipart upload needs a 'file' field with the audio"
            )
        reply_to = form.get("reply_to")
        if reply_to is not None and not isinstance(reply_to, str):
            raise Problem(422, "invalid_upload", "reply_to must be a text field with a URL")
        return await _store_upload(upload, service, cap), reply_to
    finally:
        await form.close()


async def _store_upload(upload: UploadFile, service: Platform, cap: int) -> Episode:
    folder = service.settings.data_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".upload-{secrets.token_hex(8)}"
    digest = hashlib.sha256()
    head = b""
    size = 0
    try:
        with temp.open("wb") as out:
            while chunk := await upload.read(_CHUNK):
                size += len(chunk)
                if size > cap:
                    raise _too_large(cap)
                if len(head) < 4096:
                    head += chunk[: 4096 - len(head)]
                digest.update(chunk)
                out.write(chunk)
        name = upload.filename or "upload"
        if size == 0:
            raise Problem(422, "empty_upload", f"{name} is empty (0 bytes): upload an audio file")
        audio_format = sniff_audio(head)
        if audio_format is None:
            raise Problem(
                415,
                "not_audio",
                f"{name} is not audio: it is {describe_non_audio(head)}; upload an audio "
                "file (mp3, m4a, ogg, opus, wav, flac)",
            )
        sha = digest.hexdigest()
        final = folder / f"{sha}.{audio_format}"
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)
    return Episode(
        episode_key=file_episode_key(sha),
        title=Path(name).stem or sha[:12],
        audio_url=final.resolve().as_uri(),
        allow_file_urls=True,
    )


def _too_large(cap: int) -> Problem:
    return Problem(
        413,
        "too_large",
        f"the upload is larger than {cap} bytes (server.max_upload_bytes); "
        "give a URL instead or raise the limit",
    )


@router.get("/jobs", response_model=list[Job])
def list_jobs(
    service: PlatformDep,
    tenant: TenantDep,
    status: JobStatus | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """This tenant's jobs, newest first, optionally only those with ``status``."""
    return service.jobs(tenant, status, limit)


@router.get("/jobs/{job_id}", response_model=Job)
def get_job(service: PlatformDep, job_id: RowId, tenant: TenantDep) -> dict[str, Any]:
    """A job with each stage's status, attempts, worker, timings and error."""
    return service.job(tenant, job_id)


@router.post("/jobs/{job_id}/cancel", response_model=Job, responses={409: ERROR_SCHEMA})
def cancel_job(service: PlatformDep, job_id: RowId, tenant: TenantDep) -> dict[str, Any]:
    """Withdraw this tenant's request; the job stops (queued steps cancelled, running
    ones finish) once no other tenant still wants it."""
    return service.cancel(tenant, job_id)


@router.post("/jobs/{job_id}/retry", response_model=Job, responses={409: ERROR_SCHEMA})
def retry_job(service: PlatformDep, job_id: RowId, tenant: TenantDep) -> dict[str, Any]:
    """Queue a job's failed, dead and cancelled steps again (attempts reset)."""
    return service.retry(tenant, job_id)
