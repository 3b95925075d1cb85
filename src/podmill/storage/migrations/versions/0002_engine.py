"""Durable engine: queue columns on steps, job payloads, workers, resource locks, pauses.

Revision ID: 0002
Revises: 0001
Create Date: 2024-06-01

Hand-written for SQLite (batch mode rebuilds ``steps`` and ``jobs``) and Postgres alike.
New NOT NULL columns have server defaults, so rows written by the in-process runner
(``storage.repo``), which knows nothing of them, stay valid.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

OLD_STEP_STATUSES = "'pending', 'running', 'done', 'failed', 'dead', 'cancelled', 'skipped'"
STEP_STATUSES = f"'waiting', {OLD_STEP_STATUSES}"
WORKER_STATUSES = "'running', 'stopping', 'stopped', 'dead'"


def _timestamp(name: str, *, nullable: bool) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("steps") as batch:
        batch.add_column(sa.Column("profile", sa.String(16), nullable=False, server_default="cpu"))
        batch.add_column(
            sa.Column("deps_remaining", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("resource_key", sa.String(200), nullable=True))
        batch.add_column(_timestamp("enqueued_at", nullable=True))
        batch.add_column(
            sa.Column("released_count", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.drop_constraint(op.f("ck_steps_status"), type_="check")
        batch.create_check_constraint(op.f("ck_steps_status"), f"status IN ({STEP_STATUSES})")
        batch.create_index(op.f("ix_steps_worker_id"), ["worker_id"])

    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("payload", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch.add_column(sa.Column("correlation_id", sa.String(64), nullable=True))

    op.create_table(
        "workers",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("pools", sa.JSON(), nullable=False),
        _timestamp("started_at", nullable=False),
        _timestamp("heartbeat_at", nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("current_steps", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
        sa.CheckConstraint(f"status IN ({WORKER_STATUSES})", name=op.f("ck_workers_status")),
    )
    op.create_table(
        "resource_locks",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=True),
        _timestamp("expires_at", nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_resource_locks")),
    )
    op.create_table(
        "paused_stages",
        sa.Column("stage", sa.String(32), nullable=False),
        _timestamp("paused_at", nullable=False),
        sa.PrimaryKeyConstraint("stage", name=op.f("pk_paused_stages")),
    )


def downgrade() -> None:
    op.drop_table("paused_stages")
    op.drop_table("resource_locks")
    op.drop_table("workers")

    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("correlation_id")
        batch.drop_column("payload")

    # The old schema has no `waiting`: such a step was simply not started yet.
    op.execute("UPDATE steps SET status = 'pending' WHERE status = 'waiting'")
    with op.batch_alter_table("steps") as batch:
        batch.drop_index(op.f("ix_steps_worker_id"))
        batch.drop_constraint(op.f("ck_steps_status"), type_="check")
        batch.create_check_constraint(op.f("ck_steps_status"), f"status IN ({OLD_STEP_STATUSES})")
        batch.drop_column("released_count")
        batch.drop_column("enqueued_at")
        batch.drop_column("resource_key")
        batch.drop_column("deps_remaining")
        batch.drop_column("profile")
