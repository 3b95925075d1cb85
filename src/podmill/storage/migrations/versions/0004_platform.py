"""Platform: tenants, API keys, job requests, subscriptions, feed polling state.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

What ``podmill serve`` needs (docs/api.md). New tables only, so nothing is rebuilt on
SQLite; every constraint and index is named by ``models.NAMING_CONVENTION``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def _timestamp(name: str, *, nullable: bool, now: bool = False) -> sa.Column:
    default = sa.text("CURRENT_TIMESTAMP") if now else None
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=default)


def _fk(table: str, column: str, referred: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{referred}.id"],
        name=op.f(f"fk_{table}_{column}_{referred}"),
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("webhook_secret", sa.String(64), nullable=True),
        _timestamp("created_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("name", name=op.f("uq_tenants_name")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        _timestamp("created_at", nullable=False, now=True),
        _timestamp("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        _fk("api_keys", "tenant_id", "tenants", "CASCADE"),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_tenant_id"), "api_keys", ["tenant_id"])
    op.create_table(
        "job_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        _timestamp("created_at", nullable=False, now=True),
        _timestamp("cancelled_at", nullable=True),
        sa.Column("reply_to", sa.Text(), nullable=True),
        sa.Column("reply_attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        _timestamp("reply_next_at", nullable=True),
        _timestamp("replied_at", nullable=True),
        sa.Column("reply_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_requests")),
        _fk("job_requests", "tenant_id", "tenants", "CASCADE"),
        _fk("job_requests", "job_id", "jobs", "CASCADE"),
        sa.UniqueConstraint("tenant_id", "job_id", name=op.f("uq_job_requests_tenant_id_job_id")),
    )
    op.create_index(op.f("ix_job_requests_job_id"), "job_requests", ["job_id"])
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=False),
        _timestamp("created_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        _fk("subscriptions", "tenant_id", "tenants", "CASCADE"),
        _fk("subscriptions", "feed_id", "feeds", "CASCADE"),
        sa.UniqueConstraint(
            "tenant_id", "feed_id", name=op.f("uq_subscriptions_tenant_id_feed_id")
        ),
    )
    op.create_index(op.f("ix_subscriptions_feed_id"), "subscriptions", ["feed_id"])
    op.create_table(
        "feed_polls",
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        _timestamp("next_poll_at", nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        _timestamp("last_polled_at", nullable=True),
        sa.Column("error_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("feed_id", name=op.f("pk_feed_polls")),
        _fk("feed_polls", "feed_id", "feeds", "CASCADE"),
    )
    op.create_index(op.f("ix_feed_polls_next_poll_at"), "feed_polls", ["next_poll_at"])
    op.create_table(
        "feed_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("episode_key", sa.String(32), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        _timestamp("seen_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_items")),
        _fk("feed_items", "feed_id", "feeds", "CASCADE"),
        _fk("feed_items", "job_id", "jobs", "SET NULL"),
        sa.UniqueConstraint(
            "feed_id", "episode_key", name=op.f("uq_feed_items_feed_id_episode_key")
        ),
    )


def downgrade() -> None:
    op.drop_table("feed_items")
    op.drop_index(op.f("ix_feed_polls_next_poll_at"), table_name="feed_polls")
    op.drop_table("feed_polls")
    op.drop_index(op.f("ix_subscriptions_feed_id"), table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_index(op.f("ix_job_requests_job_id"), table_name="job_requests")
    op.drop_table("job_requests")
    op.drop_index(op.f("ix_api_keys_tenant_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("tenants")
