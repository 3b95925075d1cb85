"""Initial schema: feeds, episodes, jobs, steps, artifacts.

Revision ID: 0001
Revises:
Create Date: 2024-01-01

Hand-written and explicit: it must run on SQLite (batch mode) and Postgres alike.
Constraint names are final (op.f) and match ``podmill.storage.models.NAMING_CONVENTION``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

JOB_STATUSES = "'pending', 'running', 'done', 'failed', 'cancelled'"
STEP_STATUSES = "'pending', 'running', 'done', 'failed', 'dead', 'cancelled', 'skipped'"


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column:
    if nullable:
        return sa.Column(name, sa.DateTime(timezone=True), nullable=True)
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.text("CURRENT_TIMESTAMP"),
    )


def upgrade() -> None:
    op.create_table(
        "feeds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feed_key", sa.String(32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("podcast_guid", sa.String(64), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feeds")),
        sa.UniqueConstraint("feed_key", name=op.f("uq_feeds_feed_key")),
    )
    op.create_table(
        "episodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("episode_key", sa.String(32), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=True),
        sa.Column("guid", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("audio_url", sa.Text(), nullable=True),
        _timestamp("published_at", nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("audio_sha256", sa.String(64), nullable=True),
        sa.Column("metadata_json", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_episodes")),
        sa.UniqueConstraint("episode_key", name=op.f("uq_episodes_episode_key")),
        sa.ForeignKeyConstraint(
            ["feed_id"], ["feeds.id"], name=op.f("fk_episodes_feed_id_feeds"), ondelete="SET NULL"
        ),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("episode_key", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _timestamp("created_at"),
        _timestamp("started_at", nullable=True),
        _timestamp("finished_at", nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint(
            "episode_key", "fingerprint", name=op.f("uq_jobs_episode_key_fingerprint")
        ),
        sa.CheckConstraint(f"status IN ({JOB_STATUSES})", name=op.f("ck_jobs_status")),
    )
    op.create_index(op.f("ix_jobs_episode_key"), "jobs", ["episode_key"])
    op.create_table(
        "steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        _timestamp("not_before", nullable=True),
        _timestamp("started_at", nullable=True),
        _timestamp("finished_at", nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker_id", sa.String(64), nullable=True),
        sa.Column("lease_token", sa.String(64), nullable=True),
        _timestamp("lease_expires_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_steps")),
        sa.UniqueConstraint("job_id", "stage", name=op.f("uq_steps_job_id_stage")),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_steps_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.CheckConstraint(f"status IN ({STEP_STATUSES})", name=op.f("ck_steps_status")),
    )
    op.create_index(op.f("ix_steps_status_not_before"), "steps", ["status", "not_before"])
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("episode_key", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts")),
        sa.UniqueConstraint(
            "episode_key",
            "fingerprint",
            "kind",
            name=op.f("uq_artifacts_episode_key_fingerprint_kind"),
        ),
    )


def downgrade() -> None:
    op.drop_table("artifacts")
    op.drop_index(op.f("ix_steps_status_not_before"), table_name="steps")
    op.drop_table("steps")
    op.drop_index(op.f("ix_jobs_episode_key"), table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("episodes")
    op.drop_table("feeds")
