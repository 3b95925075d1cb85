"""Correlation ids: the id created at submission, carried by every step's log lines.

``jobs.correlation_id`` itself came with the engine (0002); this revision indexes it, so
the job behind a log line is one look-up (``WHERE correlation_id = ?``) however many
jobs the table holds (docs/observability.md).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_jobs_correlation_id"), "jobs", ["correlation_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_jobs_correlation_id"), table_name="jobs")
