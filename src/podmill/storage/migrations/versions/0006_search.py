"""Search: one row per indexed node and passage, with keyword (FTS) and vector data.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24

``search_docs`` holds what search reads (docs/search.md): the text of every topic node
and transcript passage, its time span and its embedding (float32 bytes). The keyword
index is the database's own and derived from that table, so it has no model
(``models.is_modelled`` keeps it out of schema comparisons):

- SQLite: an external-content FTS5 table ``search_fts`` (porter stemming) kept in step
  by triggers. A later batch migration of ``search_docs`` would drop the triggers: it
  must create them again (``_SQLITE_TRIGGERS``).
- Postgres: a stored generated column ``search_tsv`` = ``to_tsvector('english', title
  || ' ' || body)`` with a GIN index: ranking reads the stored vector instead of parsing
  every matching row's text again.

SQLite ids use AUTOINCREMENT: a deleted id is never handed out again, so an id the
vector index holds always names the row it was built from.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE search_fts USING fts5(title, body, content='search_docs', "
    "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')"
)
_SQLITE_TRIGGERS = (
    """CREATE TRIGGER search_docs_fts_insert AFTER INSERT ON search_docs BEGIN
        INSERT INTO search_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
    END""",
    """CREATE TRIGGER search_docs_fts_delete AFTER DELETE ON search_docs BEGIN
        INSERT INTO search_fts(search_fts, rowid, title, body)
        VALUES ('delete', old.id, old.title, old.body);
    END""",
    """CREATE TRIGGER search_docs_fts_update AFTER UPDATE ON search_docs BEGIN
        INSERT INTO search_fts(search_fts, rowid, title, body)
        VALUES ('delete', old.id, old.title, old.body);
        INSERT INTO search_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
    END""",
)
_PG_FTS = (
    "ALTER TABLE search_docs ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS "
    "(to_tsvector('english', title || ' ' || body)) STORED",
    "CREATE INDEX ix_search_docs_fts ON search_docs USING gin (search_tsv)",
)


def upgrade() -> None:
    op.create_table(
        "search_docs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("episode_key", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("doc_key", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("node_id", sa.String(32), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("start_seconds", sa.Float(), nullable=False),
        sa.Column("end_seconds", sa.Float(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_docs")),
        sa.UniqueConstraint(
            "episode_key", "doc_key", name=op.f("uq_search_docs_episode_key_doc_key")
        ),
        sa.CheckConstraint("kind IN ('node', 'passage')", name=op.f("ck_search_docs_kind")),
        sqlite_autoincrement=True,
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(_SQLITE_FTS)
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)
    else:
        for statement in _PG_FTS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS search_docs_fts_{name}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_search_docs_fts")
        op.execute("ALTER TABLE search_docs DROP COLUMN IF EXISTS search_tsv")
    op.drop_table("search_docs")
