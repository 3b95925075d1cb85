"""Feed identity and the operator's hold on a job (docs/security.md, catalog identity).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25

- ``feeds.identity``: the identity string a catalog feed's episode keys are derived
  from, fixed when the row is created. A document's later ``podcast:guid`` or
  ``atom:link rel="self"`` no longer moves or re-keys a feed. Existing rows get it back
  where it can be recomputed (their ``podcast:guid`` or their URL hashes to their
  ``feed_key``); the others learn it at their next poll (podmill.platform.poller).
- ``jobs.held_by_operator``: ``podmill submit`` asked for the job. A tenant's cancel
  withdraws only that tenant's request; such a job is never cancelled by tenants.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from podmill.feeds.identity import feed_key, normalize_url

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("identity", sa.Text(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("held_by_operator", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    conn = op.get_bind()
    feeds = sa.table(
        "feeds",
        sa.column("id", sa.Integer),
        sa.column("feed_key", sa.String),
        sa.column("url", sa.Text),
        sa.column("podcast_guid", sa.String),
        sa.column("identity", sa.Text),
    )
    for row in conn.execute(sa.select(feeds)).all():
        candidates = [(row.podcast_guid or "").strip().lower(), normalize_url(row.url)]
        known = next((c for c in candidates if c and feed_key(c) == row.feed_key), None)
        if known is not None:
            conn.execute(feeds.update().where(feeds.c.id == row.id).values(identity=known))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("held_by_operator")
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("identity")
