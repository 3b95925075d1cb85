"""Results delivered to streams, and the event log of job and step transitions
(docs/delivery.md, docs/api.md "Live events").

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

- ``subscriptions.reply_to``: every episode of the feed queued for that tenant gets it.
- ``job_requests``: a delivery that failed now keeps its last error with its next try
  (shown in the tenant's job); a given-up one has none, so those rows lose theirs.
- ``job_replies``: results owed to a stream no tenant asked for (``server.default_stream``,
  ``podmill submit --reply-to``), with the delivery state ``job_requests`` has.
- ``job_events``: one row per new job, status change of a job or a step, and tenant's
  request of a job, written by triggers on ``jobs``, ``steps`` and ``job_requests`` in
  the transaction that makes the change, so every process (API, workers on other
  machines, the scheduler) is seen, and no engine code path can forget one.
  ``GET /events`` reads it with its ``id`` as the cursor. ``tenant_id`` is set on a
  request's event only (no foreign key: an event outlives nothing it names but its job).

SQLite's batch mode rebuilds a table and drops its triggers: a later migration that
batch-alters ``jobs`` or ``steps`` must call :func:`create_triggers` again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

_ERROR = "substr({row}.error, 1, 500)"

# kind: "created" (a new job), "job" (its status changed), "step" (a step's status
# changed), "request" (tenant_id asked for the job, then in status).
_SQLITE = [
    """CREATE TRIGGER job_events_job_insert AFTER INSERT ON jobs
    BEGIN
        INSERT INTO job_events (kind, job_id, status) VALUES ('created', NEW.id, NEW.status);
    END""",
    f"""CREATE TRIGGER job_events_job_update AFTER UPDATE OF status ON jobs
    WHEN NEW.status IS NOT OLD.status
    BEGIN
        INSERT INTO job_events (kind, job_id, status, error)
        VALUES ('job', NEW.id, NEW.status, {_ERROR.format(row="NEW")});
    END""",
    f"""CREATE TRIGGER job_events_step_update AFTER UPDATE OF status ON steps
    WHEN NEW.status IS NOT OLD.status
    BEGIN
        INSERT INTO job_events (kind, job_id, stage, status, attempts, error)
        VALUES ('step', NEW.job_id, NEW.stage, NEW.status, NEW.attempts,
                {_ERROR.format(row="NEW")});
    END""",
    """CREATE TRIGGER job_events_request_insert AFTER INSERT ON job_requests
    BEGIN
        INSERT INTO job_events (kind, job_id, tenant_id, status)
        VALUES ('request', NEW.job_id, NEW.tenant_id,
                (SELECT status FROM jobs WHERE id = NEW.job_id));
    END""",
]

_POSTGRES = [
    f"""CREATE FUNCTION podmill_job_event() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO job_events (kind, job_id, status) VALUES ('created', NEW.id, NEW.status);
        ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
            INSERT INTO job_events (kind, job_id, status, error)
            VALUES ('job', NEW.id, NEW.status, {_ERROR.format(row="NEW")});
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    f"""CREATE FUNCTION podmill_step_event() RETURNS trigger AS $$
    BEGIN
        IF NEW.status IS DISTINCT FROM OLD.status THEN
            INSERT INTO job_events (kind, job_id, stage, status, attempts, error)
            VALUES ('step', NEW.job_id, NEW.stage, NEW.status, NEW.attempts,
                    {_ERROR.format(row="NEW")});
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    """CREATE FUNCTION podmill_request_event() RETURNS trigger AS $$
    BEGIN
        INSERT INTO job_events (kind, job_id, tenant_id, status)
        VALUES ('request', NEW.job_id, NEW.tenant_id,
                (SELECT status FROM jobs WHERE id = NEW.job_id));
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER job_events_job AFTER INSERT OR UPDATE OF status ON jobs
    FOR EACH ROW EXECUTE FUNCTION podmill_job_event()""",
    """CREATE TRIGGER job_events_step AFTER UPDATE OF status ON steps
    FOR EACH ROW EXECUTE FUNCTION podmill_step_event()""",
    """CREATE TRIGGER job_events_request AFTER INSERT ON job_requests
    FOR EACH ROW EXECUTE FUNCTION podmill_request_event()""",
]


def create_triggers() -> None:
    """The triggers that write ``job_events`` (for this database's dialect)."""
    statements = _POSTGRES if op.get_bind().dialect.name == "postgresql" else _SQLITE
    for statement in statements:
        op.execute(statement)


def drop_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS job_events_job ON jobs")
        op.execute("DROP TRIGGER IF EXISTS job_events_step ON steps")
        op.execute("DROP TRIGGER IF EXISTS job_events_request ON job_requests")
        for function in ("podmill_job_event", "podmill_step_event", "podmill_request_event"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    else:
        for name in (
            "job_events_job_insert",
            "job_events_job_update",
            "job_events_step_update",
            "job_events_request_insert",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def _timestamp(name: str, *, nullable: bool, now: bool = False) -> sa.Column:
    default = sa.text("CURRENT_TIMESTAMP") if now else None
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=default)


def upgrade() -> None:
    # A row that failed keeps its last error and its next try from now on; a given-up one
    # has no next try (before, only given-up rows had an error, and kept their claim's).
    op.execute("UPDATE job_requests SET reply_next_at = NULL WHERE reply_error IS NOT NULL")
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("reply_to", sa.Text(), nullable=True))
    op.create_table(
        "job_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        _timestamp("created_at", nullable=False, now=True),
        sa.Column("reply_attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        _timestamp("reply_next_at", nullable=True),
        _timestamp("replied_at", nullable=True),
        sa.Column("reply_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_replies")),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_replies_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("job_id", "target", name=op.f("uq_job_replies_job_id_target")),
    )
    op.create_index(op.f("ix_job_replies_job_id"), "job_replies", ["job_id"])
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("stage", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_events")),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_events_job_id_jobs"), ondelete="CASCADE"
        ),
    )
    op.create_index(op.f("ix_job_events_job_id"), "job_events", ["job_id"])
    create_triggers()


def downgrade() -> None:
    drop_triggers()
    op.drop_index(op.f("ix_job_events_job_id"), table_name="job_events")
    op.drop_table("job_events")
    op.drop_index(op.f("ix_job_replies_job_id"), table_name="job_replies")
    op.drop_table("job_replies")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("reply_to")
