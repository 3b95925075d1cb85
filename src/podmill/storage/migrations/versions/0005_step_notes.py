"""Step notes: facts a stage wants kept with its step (a fallback it took, and why).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

A JSON list of strings per step, written with the step's fenced completion (a worker
that lost its lease writes none) and shown by ``podmill jobs show`` and the API's job
view. Before this, notes were only printed by the embedded runner.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("steps") as batch:
        batch.add_column(sa.Column("notes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("notes")
