"""What podmill holds, for the operator's listings (``podmill feeds list``,
``podmill episodes list``): every feed and episode of the catalog, whoever asked for it.

A tenant's view of the same rows is the platform's (``platform/episodes.py``: its
entitlement rule and this server's fingerprint); these read the tables as they are. An
episode's status is that of its newest job, whatever its settings (``new`` when none
was queued), so a rerun with other settings shows the run a user last asked for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, select

from podmill.domain import JobStatus
from podmill.storage.models import EpisodeRow, FeedRow, JobRow

EPISODES = EpisodeRow.__table__
FEEDS = FeedRow.__table__
JOBS = JobRow.__table__

NEW = "new"  # an episode in the catalog that no job was queued for
EPISODE_STATUSES = (NEW, *(status.value for status in JobStatus))


def _newest_jobs() -> Any:
    """Each episode's newest job: ``(episode_key, job_id)``."""
    return (
        select(JOBS.c.episode_key, func.max(JOBS.c.id).label("job_id"))
        .group_by(JOBS.c.episode_key)
        .subquery("newest")
    )


def episode_listing(
    conn: Connection,
    *,
    feed_id: int | None = None,
    status: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Episodes newest first (published, else catalogued), each with its feed's title
    and its newest job's id, status and finish time."""
    if status is not None and status not in EPISODE_STATUSES:
        raise ValueError(f"unknown status {status!r}; use one of {', '.join(EPISODE_STATUSES)}")
    newest = _newest_jobs()
    job_status = func.coalesce(JOBS.c.status, NEW)
    query = (
        select(
            EPISODES.c.episode_key,
            EPISODES.c.title,
            FEEDS.c.title.label("feed_title"),
            EPISODES.c.feed_id,
            EPISODES.c.published_at,
            EPISODES.c.duration_seconds,
            newest.c.job_id,
            job_status.label("status"),
            JOBS.c.finished_at,
        )
        .outerjoin(FEEDS, FEEDS.c.id == EPISODES.c.feed_id)
        .outerjoin(newest, newest.c.episode_key == EPISODES.c.episode_key)
        .outerjoin(JOBS, JOBS.c.id == newest.c.job_id)
    )
    if feed_id is not None:
        query = query.where(EPISODES.c.feed_id == feed_id)
    if status is not None:
        query = query.where(job_status == status)
    if since is not None:
        query = query.where(EPISODES.c.published_at >= since)
    query = query.order_by(
        func.coalesce(EPISODES.c.published_at, EPISODES.c.created_at).desc(),
        EPISODES.c.id.desc(),
    )
    rows = conn.execute(query.limit(limit).offset(offset)).all()
    return [dict(row._mapping) for row in rows]


def feed_listing(conn: Connection) -> list[dict[str, Any]]:
    """Every feed, by title, with how many episodes the catalog has of it, how many of
    those are done (their newest job), and its newest episode's date."""
    newest = _newest_jobs()
    counts = (
        select(
            EPISODES.c.feed_id,
            func.count().label("episodes"),
            func.sum(case((JOBS.c.status == JobStatus.DONE.value, 1), else_=0)).label("done"),
            func.max(EPISODES.c.published_at).label("newest_episode"),
        )
        .outerjoin(newest, newest.c.episode_key == EPISODES.c.episode_key)
        .outerjoin(JOBS, JOBS.c.id == newest.c.job_id)
        .group_by(EPISODES.c.feed_id)
        .subquery("counts")
    )
    query = (
        select(
            FEEDS.c.id,
            FEEDS.c.feed_key,
            FEEDS.c.title,
            FEEDS.c.url,
            func.coalesce(counts.c.episodes, 0).label("episodes"),
            func.coalesce(counts.c.done, 0).label("done"),
            counts.c.newest_episode,
        )
        .outerjoin(counts, counts.c.feed_id == FEEDS.c.id)
        .order_by(func.lower(func.coalesce(FEEDS.c.title, FEEDS.c.url)), FEEDS.c.id)
    )
    return [dict(row._mapping) for row in conn.execute(query).all()]
