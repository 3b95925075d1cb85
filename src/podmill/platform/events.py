"""Job and step transitions as a stream of events: ``GET /events`` (server-sent events)
and ``podmill jobs watch`` read them (docs/api.md, "Live events").

Database triggers write a ``job_events`` row in the same transaction as every status
change of a job or step (migration 0010), so whatever process made the change, the
database has the event; the row id is the cursor. A reader polls ``id > cursor``
(``server.events_poll_seconds``): the same query on SQLite and Postgres, no connection
held open per listener, and a reconnecting client names its last id (``Last-Event-ID``)
and misses nothing that is still kept (``server.events_keep_hours``).

One subtlety on Postgres: ids come from a sequence, so a transaction that took id 10 may
commit after one that took id 11. :class:`EventReader` therefore never steps over a
missing id until it has waited ``SETTLE_SECONDS`` for it (a rolled-back transaction
leaves a gap for ever); on SQLite ids are given in commit order and there are no gaps to
wait for.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select

from podmill.engine.clock import Clock, SystemClock
from podmill.platform.tables import EVENTS, JOBS, REQUESTS
from podmill.platform.tenants import Tenant

SETTLE_SECONDS = 5.0
BATCH = 500


def latest_event_id(conn: Connection) -> int:
    """The newest event's id (0 when there is none): where a new listener starts."""
    return int(conn.execute(select(func.coalesce(func.max(EVENTS.c.id), 0))).scalar_one())


def event_of(row: Any) -> dict[str, Any]:
    """An event as it is sent: ``type`` is ``job`` (the job's own status: ``created``
    for a new job, ``requested`` where this tenant's view of it begins) or ``step``."""
    return {
        "id": row.id,
        "type": "step" if row.kind == "step" else "job",
        "kind": row.kind,
        "job_id": row.job_id,
        "episode_key": row.episode_key,
        "stage": row.stage,
        "status": row.status,
        "attempts": row.attempts,
        "error": row.error,
        "at": row.at.isoformat() if isinstance(row.at, datetime) else row.at,
    }


class EventReader:
    """The events after a cursor, oldest first, for one tenant (``None``: every job, the
    operator's view). :meth:`read` advances the cursor past what it returned and past
    other tenants' events, never past an id that may still commit."""

    def __init__(
        self,
        tenant: Tenant | None,
        after: int,
        *,
        job_id: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.tenant = tenant
        self.cursor = after
        self.job_id = job_id
        self.clock: Clock = clock or SystemClock()
        self._gap_since: dict[int, datetime] = {}  # a missing id → when it was first missed

    def _mine(self) -> Any:
        """Which events this reader shows. A tenant: its own request events (where its
        view of a job starts: the job's status when it asked) and the transitions of the
        jobs it requested; the operator: every job's creation and transitions."""
        if self.tenant is None or self.tenant.sees_all:
            mine = EVENTS.c.kind != "request"
        else:
            requested = select(REQUESTS.c.job_id).where(REQUESTS.c.tenant_id == self.tenant.id)
            own_request = (EVENTS.c.kind == "request") & (EVENTS.c.tenant_id == self.tenant.id)
            transition = EVENTS.c.kind.in_(("job", "step")) & EVENTS.c.job_id.in_(requested)
            mine = own_request | transition
        if self.job_id is not None:
            mine = (EVENTS.c.job_id == self.job_id) & mine
        return mine

    def read(self, conn: Connection) -> list[dict[str, Any]]:
        mine = self._mine()
        columns = [EVENTS, JOBS.c.episode_key, mine.label("mine")]
        rows = conn.execute(
            select(*columns)
            .join(JOBS, JOBS.c.id == EVENTS.c.job_id)
            .where(EVENTS.c.id > self.cursor)
            .order_by(EVENTS.c.id)
            .limit(BATCH)
        ).all()
        found = []
        for row in rows:
            if row.id != self.cursor + 1 and not self._settled(self.cursor + 1):
                break  # an earlier id may still commit: read from here next time
            self.cursor = row.id
            if row.mine:
                found.append(event_of(row))
        return found

    def _settled(self, missing: int) -> bool:
        """Whether the missing id ``missing`` has been missing long enough to skip."""
        now = self.clock.now()
        since = self._gap_since.setdefault(missing, now)
        if now - since < timedelta(seconds=SETTLE_SECONDS):
            return False
        del self._gap_since[missing]
        return True


def prune_events(engine: Engine, keep: timedelta, now: datetime) -> int:
    """Delete events older than ``keep`` (always keeping the newest, so ids never start
    over); how many went."""
    with engine.begin() as conn:
        newest = latest_event_id(conn)
        return conn.execute(
            delete(EVENTS).where(EVENTS.c.at < now - keep, EVENTS.c.id < newest)
        ).rowcount
