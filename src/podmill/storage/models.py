"""SQLAlchemy models: the database's view of feeds, episodes, jobs, steps and artifacts.

The schema itself is owned by the Alembic migrations in ``migrations/versions``; these
classes must match them (``tests/integration/test_storage.py`` compares the two).
Every timestamp is a timezone-aware UTC ``datetime`` on both SQLite and Postgres.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from podmill.domain import JobStatus, StepStatus

WorkerStatus = Literal["running", "stopping", "stopped", "dead"]
# The vocabularies live in podmill.domain (JobStatus, StepStatus); these are their values.
JOB_STATUSES: tuple[str, ...] = tuple(status.value for status in JobStatus)
STEP_STATUSES: tuple[str, ...] = tuple(status.value for status in StepStatus)
WORKER_STATUSES: tuple[str, ...] = get_args(WorkerStatus)

# Named constraints, so later migrations (and SQLite batch mode) can address them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that only accepts aware values and returns UTC.

    SQLite keeps no zone, so values are normalised to UTC on the way in and tagged as
    UTC on the way out; Postgres returns them in the session zone, converted here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store timezone-aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _status_check(statuses: tuple[str, ...]) -> CheckConstraint:
    allowed = ", ".join(f"'{s}'" for s in statuses)
    return CheckConstraint(f"status IN ({allowed})", name="status")


def _created_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, default=utcnow, server_default=text("CURRENT_TIMESTAMP"))


def _updated_at() -> Mapped[datetime]:
    return mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, server_default=text("CURRENT_TIMESTAMP")
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class FeedRow(Base):
    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_key: Mapped[str] = mapped_column(String(32), unique=True)
    url: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    podcast_guid: Mapped[str | None] = mapped_column(String(64))
    # what the episode keys derive from, fixed when the row is created (migration 0009):
    # a document's later podcast:guid or self link never re-keys or moves the feed
    identity: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class EpisodeRow(Base):
    """Catalog entry for one episode; feed metadata that has no column is in metadata_json."""

    __tablename__ = "episodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_key: Mapped[str] = mapped_column(String(32), unique=True)
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feeds.id", ondelete="SET NULL"))
    guid: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    audio_url: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    audio_sha256: Mapped[str | None] = mapped_column(String(64))
    metadata_json: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class JobRow(Base):
    """One episode × fingerprint: at most one per pair, whoever asks for it."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("episode_key", "fingerprint"),
        _status_check(JOB_STATUSES),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_key: Mapped[str] = mapped_column(String(32), index=True)
    fingerprint: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = _created_at()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    # What a worker needs to run the job: {"episode": Episode.to_dict(), "settings": {...}}.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    correlation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # `podmill submit` asked for it: tenants' cancels never stop it (migration 0009)
    held_by_operator: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    steps: Mapped[list[StepRow]] = relationship(
        back_populates="job", order_by="StepRow.id", passive_deletes=True
    )


class StepRow(Base):
    """One stage of one job. The lease and queue columns belong to the durable engine
    (``podmill.engine.store``); ``deps_remaining`` counts predecessors not yet done."""

    __tablename__ = "steps"
    __table_args__ = (
        UniqueConstraint("job_id", "stage"),
        _status_check(STEP_STATUSES),
        Index("ix_steps_status_not_before", "status", "not_before"),
        # what a FIFO claim walks (migration 0003)
        Index(
            "ix_steps_claimable",
            "enqueued_at",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(64), index=True)
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    profile: Mapped[str] = mapped_column(String(16), default="cpu", server_default="cpu")
    deps_remaining: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    resource_key: Mapped[str | None] = mapped_column(String(200))
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last became pending
    released_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # facts the stage recorded (e.g. "fell back to extractive: …"), migration 0005
    notes: Mapped[list[str] | None] = mapped_column(JSON)

    job: Mapped[JobRow] = relationship(back_populates="steps")


class ArtifactRow(Base):
    """Pointer to one artifact file; ``path`` is relative to the data directory."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("episode_key", "fingerprint", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_key: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _created_at()


class WorkerRow(Base):
    """A worker process as it last reported itself (``id`` is "host:pid:random")."""

    __tablename__ = "workers"
    __table_args__ = (_status_check(WORKER_STATUSES),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    pools: Mapped[dict[str, int]] = mapped_column(JSON)  # {"asr": 1, "cpu": 2}
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="running")
    current_steps: Mapped[list[int]] = mapped_column(JSON, default=list)


class ResourceLockRow(Base):
    """A named lock with an expiry; a step whose ``resource_key`` is held is not claimed."""

    __tablename__ = "resource_locks"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))  # a worker id
    step_id: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PausedStageRow(Base):
    """A stage whose pending steps are not claimed until it is resumed."""

    __tablename__ = "paused_stages"

    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    paused_at: Mapped[datetime] = mapped_column(UTCDateTime)


# ------------------------------------------------------------------ platform (0004)
# Tenants, API keys, who asked for which job, subscriptions and feed polling state:
# what `podmill serve` needs (docs/api.md).


class TenantRow(Base):
    """A customer of a shared install: its subscriptions, job requests and API keys."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # signs this tenant's reply_to webhooks (HMAC-SHA256); shown by GET /me
    webhook_secret: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created_at()


class ApiKeyRow(Base):
    """An API key, stored as the SHA-256 of the key; ``prefix`` is shown to tell keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _created_at()
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobRequestRow(Base):
    """A tenant asked for a job (directly, or through a subscription). One job, many
    requesters: that is how a tenant sees a job another tenant's request created."""

    __tablename__ = "job_requests"
    __table_args__ = (UniqueConstraint("tenant_id", "job_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = _created_at()
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the webhook called when the job finishes, and its delivery state
    reply_to: Mapped[str | None] = mapped_column(Text)
    reply_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    reply_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reply_error: Mapped[str | None] = mapped_column(Text)


class SubscriptionRow(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("tenant_id", "feed_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = _created_at()
    # the reply_to of every episode of the feed queued for this tenant (migration 0010)
    reply_to: Mapped[str | None] = mapped_column(Text)


class JobReplyRow(Base):
    """A result owed to a stream that no tenant asked for: the default stream
    (``server.default_stream``) and ``podmill submit --reply-to`` (migration 0010).
    Delivery state as on ``job_requests``."""

    __tablename__ = "job_replies"
    __table_args__ = (UniqueConstraint("job_id", "target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    reply_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    reply_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reply_error: Mapped[str | None] = mapped_column(Text)


class JobEventRow(Base):
    """A new job, a job or step status change, or a tenant's request of a job, written by
    database triggers (migration 0010), whichever process made it; ``id`` is the cursor
    of ``GET /events`` and ``podmill jobs watch``. ``stage`` is NULL but for steps."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # created (a new job) · job (its status changed) · step · request (tenant_id asked)
    kind: Mapped[str] = mapped_column(String(8))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[int | None] = mapped_column(Integer)
    stage: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = _created_at()


class FeedPollRow(Base):
    """Polling state of a catalog feed: conditional-GET validators, schedule, errors."""

    __tablename__ = "feed_polls"

    feed_id: Mapped[int] = mapped_column(
        ForeignKey("feeds.id", ondelete="CASCADE"), primary_key=True
    )
    interval_seconds: Mapped[int] = mapped_column(Integer)
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)


class FeedItemRow(Base):
    """The poller's cursor: every item of a feed it has seen, so each is enqueued once."""

    __tablename__ = "feed_items"
    __table_args__ = (UniqueConstraint("feed_id", "episode_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    episode_key: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    seen_at: Mapped[datetime] = _created_at()


# -------------------------------------------------------------------- search (0006)
# What `podmill search` and GET /search read (docs/search.md). The keyword index over
# these rows belongs to the database (SQLite FTS5 table ``search_fts`` and its shadow
# tables; the Postgres GIN index ``ix_search_docs_fts``): migration 0006 creates it, and
# it has no model because it is derived data with a dialect-specific shape.

SEARCH_DOC_KINDS = ("node", "passage")
SEARCH_FTS_TABLE = "search_fts"
SEARCH_FTS_INDEX = "ix_search_docs_fts"
SEARCH_TSV_COLUMN = "search_tsv"  # Postgres only: the stored tsvector the GIN index covers


class SearchDocRow(Base):
    """One searchable unit: a topic node (L0/L1/L2) or a transcript passage window.

    ``doc_key`` is ``n:<node id>`` or ``p:<n>``; ``node_id`` of a passage is the deepest
    node containing its midpoint. ``vector``: the 384 float32s of its embedding.
    """

    __tablename__ = "search_docs"
    __table_args__ = (
        UniqueConstraint("episode_key", "doc_key"),
        CheckConstraint("kind IN ('node', 'passage')", name="kind"),
        {"sqlite_autoincrement": True},  # ids are never reused: the vector index names rows
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_key: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(32))
    doc_key: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(8))
    node_id: Mapped[str] = mapped_column(String(32))
    level: Mapped[int] = mapped_column(Integer)
    start_seconds: Mapped[float] = mapped_column(Float)
    end_seconds: Mapped[float] = mapped_column(Float)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = _created_at()


def is_modelled(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic ``include_name`` hook: ``False`` for the database-owned keyword index of
    ``search_docs`` (FTS5 virtual and shadow tables; the Postgres tsvector column and
    its GIN index), which the migrations create and no model describes; every other
    reflected object is compared."""
    if name is None:
        return True
    if type_ == "table":
        return name != SEARCH_FTS_TABLE and not name.startswith(SEARCH_FTS_TABLE + "_")
    if type_ == "index":
        return name != SEARCH_FTS_INDEX
    if type_ == "column":
        return not (name == SEARCH_TSV_COLUMN and parent_names.get("table_name") == "search_docs")
    return True


# ------------------------------------------------------------------- digests (0007)


class DigestRow(Base):
    """A stored digest of one tenant for one period (``podmill serve``'s weekly digest;
    docs/digest.md). Unique per tenant, kind and period start: stored once, whoever runs
    the schedule."""

    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "period_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="weekly", server_default="weekly")
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    schema_version: Mapped[str] = mapped_column(String(32))  # "podmill.digest/1"
    episodes: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    stories: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = _created_at()
