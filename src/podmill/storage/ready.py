"""Which steps are ready to run: the one definition.

A step is *ready* when a worker with a pool for its stage could claim it now:

- it is ``pending`` and was enqueued (a join step only becomes ``pending`` when its last
  predecessor is done, in the same transaction: engine/store.py);
- its ``not_before`` (the retry back-off) has passed;
- its stage's queue is not paused;
- its job is not cancelled;
- its resource lock, if it names one, is free, expired, or already its own.

The claim (both its SQLAlchemy form and the one-statement Postgres form, engine/claim.py),
``Store.has_ready`` and the fleet gauges (storage/fleet.py) all read :func:`ready`, so a step
the gauges count as backlog is one a worker can take. It lives below the engine and obs
so both can import it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, FromClause, and_, exists, or_, select

from podmill.storage.models import JobRow, PausedStageRow, ResourceLockRow, StepRow

STEPS = StepRow.__table__
JOBS = JobRow.__table__
LOCKS = ResourceLockRow.__table__
PAUSED = PausedStageRow.__table__

# ``now``: a datetime, a bound parameter, or a placeholder the claim's text statement binds.
Now = datetime | ColumnElement[Any]


def ready(now: Now, steps: FromClause = STEPS, jobs: FromClause = JOBS) -> ColumnElement[bool]:
    """The condition on a row of ``steps`` joined to its row of ``jobs`` (the tables, or
    aliases of them) that the step is ready to run at ``now``."""
    rules = _rules(now, steps, jobs)
    return and_(*rules.values())


def ready_but_paused(
    now: Now, steps: FromClause = STEPS, jobs: FromClause = JOBS
) -> ColumnElement[bool]:
    """Steps that would be ready if their stage's queue were resumed: the backlog an
    operator's pause holds back."""
    rules = _rules(now, steps, jobs)
    unpaused = rules.pop("queue not paused")
    return and_(*rules.values(), ~unpaused)


def _rules(now: Now, steps: FromClause, jobs: FromClause) -> dict[str, ColumnElement[bool]]:
    s, j = steps.c, jobs.c
    held_by_another_step = (
        exists()
        .where(
            LOCKS.c.key == s.resource_key,
            LOCKS.c.expires_at > now,  # an expired lock is ignored, and taken over by the claim
            or_(LOCKS.c.step_id.is_(None), LOCKS.c.step_id != s.id),
        )
        .correlate(steps)
    )
    return {
        "pending": s.status == "pending",
        # only steps that were enqueued (became ready) count
        "enqueued": s.enqueued_at.is_not(None),
        "back-off passed": or_(s.not_before.is_(None), s.not_before <= now),
        "queue not paused": s.stage.not_in(select(PAUSED.c.stage)),
        "job not cancelled": j.status != "cancelled",
        "resource free": or_(s.resource_key.is_(None), ~held_by_another_step),
    }
