"""Claim index: the pending steps in FIFO order, so a claim reads only what it takes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

A partial index on ``(enqueued_at, id) WHERE status = 'pending'``: the claim's
``ORDER BY enqueued_at, id LIMIT n`` walks it and stops after ``n`` matches, instead of
sorting every pending step on each claim. Partial indexes work on SQLite and Postgres.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index(
        "ix_steps_claimable",
        "steps",
        ["enqueued_at", "id"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_steps_claimable", table_name="steps")
