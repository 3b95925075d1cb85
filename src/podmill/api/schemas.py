"""What every route answers, as types: each route's ``response_model`` is one of these,
so ``/openapi.json`` (and ``/docs``) documents the real shape, and an answer that
drifts from it is caught at the boundary instead of reaching a client.

One module for the whole API rather than one per router: a job is what ``/jobs``,
``/jobs/{id}``, cancel and retry all answer, a feed what the catalog's list, get, add
and merge answer; the shapes are shared, and a reader finds them all here.

TypedDicts, not models: the platform answers plain dicts, and validating a dict
against a TypedDict costs what the untyped ``dict[str, Any]`` cost (GET /jobs with
1,000 jobs of 10 steps: ~30 ms either way; ``BaseModel`` instances double it). A key
the type lacks is dropped from the answer, so every key the platform returns is
declared here (tests/api/test_openapi_shapes.py compares the two).

The digest document is not typed here: its one schema is the shipped JSON schema
(``podmill.digest.json_schema()``), which :func:`digest_document_schema` puts into the
OpenAPI document as it is.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from podmill.storage.models import JobStatus, StepStatus, WorkerStatus

# the status of an episode's job; "new": no job yet (GET /episodes?status=new)
EpisodeStatus = Literal["new", "pending", "running", "done", "failed", "cancelled"]
TranscriptFormat = Literal["json", "srt", "vtt", "txt"]
HealthStatus = Literal["healthy", "degraded", "unhealthy"]
# an ISO 8601 time the answer carries as the text it was built with (search hits)
IsoTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class Me(TypedDict):
    """The caller's tenant, its role, and the secret that signs its webhooks."""

    tenant: str
    role: Literal["admin", "member"]
    webhook_secret: str | None


# ---------------------------------------------------------------------------- jobs


class Step(TypedDict):
    """One stage of a job."""

    status: StepStatus
    attempts: int
    max_attempts: int
    worker_id: str | None
    lease_expires_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    error: str | None
    not_before: Annotated[datetime | None, Field(description="a failed step's next try")]
    notes: Annotated[list[str], Field(description="facts the stage recorded")]
    paused: Annotated[
        bool,
        Field(description="its stage is paused, so nothing claims it until the stage resumes"),
    ]


class JobReply(TypedDict):
    """Where this tenant's result of the job goes, and how its delivery stands."""

    to: Annotated[str, Field(description="the reply_to: an https webhook or a Redis stream")]
    attempts: int
    delivered_at: datetime | None
    next_try_at: Annotated[datetime | None, Field(description="a failed delivery's next try")]
    error: Annotated[
        str | None,
        Field(description="the last failure, in words; 'gave up: …' after the last try"),
    ]


class Job(TypedDict):
    """One episode × fingerprint, with its steps by stage name (graph order)."""

    id: int
    episode_key: str
    fingerprint: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    correlation_id: str | None
    paused: Annotated[
        list[str],
        Field(description="paused stages this job still has to run (it waits on them)"),
    ]
    steps: dict[str, Step]
    reply: Annotated[
        JobReply | None,
        Field(description="this tenant's reply_to and its delivery (docs/delivery.md)"),
    ]


class JobAccepted(TypedDict):
    """``POST /jobs``: the job, and whether this request created it."""

    job: Job
    created: bool


# ------------------------------------------------------------------------ episodes


class EpisodeSummary(TypedDict):
    """A row of ``GET /episodes``: the episode and the status of this server's job."""

    episode_key: str
    title: str
    feed_id: int | None
    audio_url: str | None
    published_at: datetime | None
    duration_seconds: float | None
    job_id: int | None
    status: EpisodeStatus


class EpisodeDetail(TypedDict):
    """One episode: catalog metadata, its job, and its topic tree once done."""

    episode_key: str
    feed_id: int | None
    guid: str | None
    title: str
    audio_url: str | None
    published_at: datetime | None
    duration_seconds: float | None
    audio_sha256: str | None
    metadata_json: Annotated[
        dict[str, Any], Field(description="feed metadata without a column of its own")
    ]
    created_at: datetime
    updated_at: datetime
    job_id: int | None
    status: EpisodeStatus
    fingerprint: Annotated[str | None, Field(description="the artifact set shown")]
    topics: Annotated[
        dict[str, Any] | None, Field(description="the topic tree (topics.json), once done")
    ]
    transcript_formats: list[TranscriptFormat]


# ------------------------------------------------------------- catalog, subscriptions


class Feed(TypedDict):
    """A catalog feed with its polling state and number of subscribers."""

    id: int
    feed_key: str
    url: str
    title: str | None
    created_at: datetime
    interval_seconds: int
    next_poll_at: datetime
    last_polled_at: datetime | None
    error_count: int
    last_error: str | None
    subscribers: int


class Subscription(TypedDict):
    """A tenant's subscription to a catalog feed."""

    id: int
    feed_id: int
    url: str
    title: str | None
    created_at: datetime
    reply_to: Annotated[
        str | None, Field(description="goes with every episode of the feed queued for you")
    ]


# --------------------------------------------------------------------------- admin


class Queue(TypedDict):
    """A stage's steps by status, and whether its claims are paused."""

    stage: str
    waiting: int
    pending: int
    running: int
    done: int
    failed: int
    dead: int
    cancelled: int
    skipped: int
    paused: bool


class QueueState(TypedDict):
    """A stage after ``pause`` or ``resume``."""

    stage: str
    paused: bool


class DeadStep(TypedDict):
    """A step that used up its attempts (or failed for good), with its last error."""

    step_id: int
    job_id: int
    episode_key: str
    fingerprint: str
    stage: str
    attempts: int
    max_attempts: int
    error: str | None
    finished_at: datetime | None
    correlation_id: str | None


class DeadStepRetried(TypedDict):
    step_id: int
    status: Literal["pending"]


class Worker(TypedDict):
    """A worker process as it last reported itself."""

    id: Annotated[str, Field(description="host:pid:random")]
    host: str
    pid: int
    pools: Annotated[dict[str, int], Field(description="slots per profile, e.g. asr: 1")]
    started_at: datetime
    heartbeat_at: datetime
    status: WorkerStatus
    current_steps: Annotated[list[int], Field(description="ids of the steps it runs")]
    heartbeat_age_seconds: float


# ------------------------------------------------------------------ search, digests


class SearchHit(TypedDict):
    """A topic or passage that matched, best first (``podmill search --json``)."""

    episode_key: str
    episode_title: str
    node_id: str
    level: Annotated[int, Field(description="0 episode, 1 topic, 2 sub-topic")]
    start: float
    end: float
    score: float
    snippet: Annotated[str, Field(description="matched words marked «like this»")]
    kind: Literal["node", "passage"]
    title: str
    feed_id: int | None
    feed_title: str | None
    published_at: IsoTime | None
    matched: Annotated[list[Literal["keyword", "vector"]], Field(description="which side")]


class StoredDigest(TypedDict):
    """A weekly digest stored for the tenant (its document: ``GET /digests/{id}``)."""

    id: int
    kind: str
    period_start: datetime
    period_end: datetime
    created_at: datetime
    schema_version: str
    episodes: int
    stories: int


def digest_document_schema() -> dict[str, Any]:
    """The shipped digest JSON schema, self-contained for an OpenAPI document: its
    ``#/$defs/…`` references are replaced by what they name (OpenAPI resolves a
    ``$ref`` against the whole document, which has no ``$defs``)."""
    from podmill.digest import json_schema

    schema = json_schema()
    defs = schema.pop("$defs", {})
    for keyword in ("$schema", "$id"):
        schema.pop(keyword, None)

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**inline(copy.deepcopy(defs[ref.removeprefix("#/$defs/")])), **rest}
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(schema)


# ---------------------------------------------------------------------------- health


class HealthCheck(TypedDict):
    """One check's verdict and its numbers (which depend on the check)."""

    status: Literal["healthy", "degraded", "unhealthy", "unknown"]
    detail: str
    latency_ms: NotRequired[float]  # database
    ready: NotRequired[int]  # backlog, workers: steps ready to run
    threshold: NotRequired[int]  # backlog
    alive: NotRequired[int]  # workers
    path: NotRequired[str]  # disk
    free_bytes: NotRequired[int | None]  # disk
    models: NotRequired[list[str]]  # models
    devices: NotRequired[int]  # gpu


class Health(TypedDict):
    """The overall status; the checks, version and git sha for a caller on this
    machine or with an admin key (docs/security.md)."""

    status: HealthStatus
    version: NotRequired[str]
    git_sha: NotRequired[str]
    checks: NotRequired[dict[str, HealthCheck]]


# ----------------------------------------------------------------------------- OPML


class OpmlSubscribed(TypedDict):
    """An outline of an imported OPML list whose feed the tenant is subscribed to."""

    outline: int  # the file's Nth <outline>, folders counted
    title: str | None
    url: str
    subscription_id: int
    feed_id: int


class OpmlRejected(TypedDict):
    """An outline that was not imported, and why."""

    outline: int
    title: str | None
    url: str | None  # its xmlUrl as written; null when it has none
    reason: str


class OpmlImport(TypedDict):
    """What ``POST /subscriptions/opml`` did with each outline, in document order."""

    title: str | None  # the list's <head><title>
    imported: list[OpmlSubscribed]
    already_subscribed: list[OpmlSubscribed]
    rejected: list[OpmlRejected]
