"""``job_replies``: results owed to a stream that no tenant asked for — the default stream
(``server.default_stream``) of every job queued through the server or ``podmill submit``,
and ``podmill submit --reply-to``. The notifier (``api/webhooks.py``) delivers them as it
delivers tenants' ``reply_to`` (docs/delivery.md)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, update

from podmill.settings import Settings
from podmill.storage.db import dialect_insert
from podmill.storage.models import JobReplyRow

REPLIES = JobReplyRow.__table__


def default_replies(settings: Settings) -> list[str]:
    """The streams every job's result goes to, whoever asked: the default stream, if set."""
    return [settings.server.default_stream] if settings.server.default_stream else []


def add_replies(conn: Connection, job_id: int, targets: Iterable[str]) -> None:
    """Owe job ``job_id``'s result to each of ``targets`` (once each: a target already
    owed, or already delivered, is left as it is), in ``conn``'s transaction."""
    for target in dict.fromkeys(targets):
        stmt = dialect_insert(conn.dialect.name, REPLIES).values(job_id=job_id, target=target)
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["job_id", "target"]))


def replies_due_again(conn: Connection, job_id: int) -> None:
    """The job was revived and will finish again: its results are owed again."""
    conn.execute(
        update(REPLIES)
        .where(REPLIES.c.job_id == job_id)
        .values(replied_at=None, reply_attempts=0, reply_next_at=None, reply_error=None)
    )
