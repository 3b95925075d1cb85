"""Digests: stored weekly digests per tenant.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24

One row per tenant, kind and period (``podmill serve`` stores a weekly digest for every
tenant; docs/digest.md). The unique constraint is what makes "once per tenant per week"
hold when several server processes run the schedule at the same moment. ``document`` is
the digest itself (schema ``podmill.digest/1``); the counts are copied out so
``GET /digests`` can list digests without reading documents.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "digests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False, server_default="weekly"),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("schema_version", sa.String(32), nullable=False),
        sa.Column("episodes", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("stories", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digests")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_digests_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "tenant_id",
            "kind",
            "period_start",
            name=op.f("uq_digests_tenant_id_kind_period_start"),
        ),
    )


def downgrade() -> None:
    op.drop_table("digests")
