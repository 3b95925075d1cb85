"""Episodes as a tenant sees them: the entitlement rule, listings, one episode with its
topic tree, transcripts, and where an episode's finished artifact set is.

A tenant sees the episodes of its subscriptions and of the jobs it requested
(:func:`visible_episodes`); another tenant's episode is not found.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, true

from podmill.domain import Episode
from podmill.platform.context import Part
from podmill.platform.errors import NotFound
from podmill.platform.tables import EPISODES, FEEDS, JOBS, POLLS, REQUESTS, SUBSCRIPTIONS
from podmill.platform.tenants import Tenant
from podmill.storage.artifacts import TRANSCRIPTS, Artifact


def visible_episodes(tenant: Tenant) -> Any:
    """The entitlement rule, as a condition on ``episodes``: the episodes of the
    tenant's subscriptions, and of the jobs it requested (search filters with it too).
    ``podmill view``'s reader of an embedded data dir sees every episode."""
    if tenant.sees_all:
        return true()
    subscribed = select(SUBSCRIPTIONS.c.feed_id).where(SUBSCRIPTIONS.c.tenant_id == tenant.id)
    requested = (
        select(JOBS.c.episode_key)
        .join(REQUESTS, REQUESTS.c.job_id == JOBS.c.id)
        .where(REQUESTS.c.tenant_id == tenant.id)
    )
    return or_(EPISODES.c.feed_id.in_(subscribed), EPISODES.c.episode_key.in_(requested))


def episode_from_row(row: Any) -> Episode:
    """The :class:`Episode` of an ``episodes`` row (joined to its feed's key and title)."""
    meta = row.metadata_json or {}
    return Episode.from_dict(
        {
            "episode_key": row.episode_key,
            "title": row.title,
            "audio_url": row.audio_url,
            "feed_key": getattr(row, "feed_key", None),
            "feed_title": getattr(row, "feed_title", None),
            "guid": row.guid,
            "published": row.published_at.isoformat() if row.published_at else None,
            "mime_type": meta.get("mime_type"),
            "enclosure_length": meta.get("enclosure_length"),
            "description": meta.get("description"),
            "transcripts": meta.get("transcripts") or [],
            "chapters_url": meta.get("chapters_url"),
            "chapters": meta.get("chapters") or [],
            "persons": meta.get("persons") or [],
        }
    )


def _like_escaped(text: str) -> str:
    """``text`` matched literally inside a LIKE pattern (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Episodes(Part):
    """The episodes a tenant may see, and their artifacts."""

    def episode_for_url(self, tenant: Tenant, url: str) -> tuple[Episode, int | None] | None:
        """The episode ``tenant`` may see whose enclosure is ``url`` (a feed item's
        audio). Knowing an enclosure URL is no entitlement: others' rows are not found."""
        with self.reader.connect() as conn:
            row = conn.execute(
                select(EPISODES, FEEDS.c.feed_key, FEEDS.c.title.label("feed_title"))
                .outerjoin(FEEDS, FEEDS.c.id == EPISODES.c.feed_id)
                .where(EPISODES.c.audio_url == url, visible_episodes(tenant))
                .order_by(EPISODES.c.id)
                .limit(1)
            ).first()
        return (episode_from_row(row), row.feed_id) if row else None

    def episode_by_key(self, tenant: Tenant, key: str) -> tuple[Episode, int | None]:
        with self.reader.connect() as conn:
            row = conn.execute(
                select(EPISODES, FEEDS.c.feed_key, FEEDS.c.title.label("feed_title"))
                .outerjoin(FEEDS, FEEDS.c.id == EPISODES.c.feed_id)
                .where(EPISODES.c.episode_key == key, visible_episodes(tenant))
            ).first()
        if row is None:
            raise NotFound(f"no episode {key!r} among this tenant's episodes")
        return episode_from_row(row), row.feed_id

    def episodes(
        self,
        tenant: Tenant,
        *,
        feed_id: int | None,
        since: datetime | None,
        status: str | None,
        limit: int,
        offset: int,
        title_contains: str | None = None,
    ) -> list[dict[str, Any]]:
        """The tenant's episodes, newest first, with the status of this server's job;
        ``title_contains`` keeps those whose title contains it (any case)."""
        job = JOBS.alias("job")
        ours = and_(
            job.c.episode_key == EPISODES.c.episode_key, job.c.fingerprint == self.fingerprint
        )
        newest_first = (EPISODES.c.published_at.desc().nulls_last(), EPISODES.c.id.desc())
        # The page is chosen first and only its rows are joined to their jobs, so the
        # cost does not grow with the number of episodes a tenant can see.
        page = select(EPISODES.c.id).where(visible_episodes(tenant))
        if feed_id is not None:
            page = page.where(EPISODES.c.feed_id == feed_id)
        if since is not None:
            page = page.where(EPISODES.c.published_at >= since)
        if title_contains:
            pattern = "%" + _like_escaped(title_contains.lower()) + "%"
            page = page.where(func.lower(EPISODES.c.title).like(pattern, escape="\\"))
        if status == "new":
            page = page.where(~exists().where(ours))
        elif status is not None:
            page = page.join(job, ours).where(job.c.status == status)
        chosen = page.order_by(*newest_first).limit(limit).offset(offset).subquery()
        query = (
            select(
                EPISODES.c.episode_key,
                EPISODES.c.title,
                EPISODES.c.feed_id,
                EPISODES.c.audio_url,
                EPISODES.c.published_at,
                EPISODES.c.duration_seconds,
                job.c.id.label("job_id"),
                func.coalesce(job.c.status, "new").label("status"),
            )
            .join(chosen, chosen.c.id == EPISODES.c.id)
            .outerjoin(job, ours)
            .order_by(*newest_first)
        )
        with self.reader.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query).all()]

    def library_feeds(self, tenant: Tenant) -> list[dict[str, Any]]:
        """The feeds of the tenant's library, by title: those it subscribes to and those
        of episodes it may see (every feed for ``sees_all``), each with the number of its
        episodes the tenant sees and when it was last polled (``None``: never, e.g. a
        feed ``podmill run`` fetched, whose ``updated_at`` says when). A last row with
        ``id`` ``None`` counts the episodes of no feed (local files), if any."""
        counts = (
            select(EPISODES.c.feed_id, func.count().label("episodes"))
            .where(visible_episodes(tenant))
            .group_by(EPISODES.c.feed_id)
            .subquery()
        )
        query = (
            select(
                FEEDS.c.id,
                FEEDS.c.feed_key,
                FEEDS.c.url,
                FEEDS.c.title,
                FEEDS.c.updated_at,
                func.coalesce(counts.c.episodes, 0).label("episodes"),
                POLLS.c.last_polled_at,
                POLLS.c.error_count,
                POLLS.c.last_error,
            )
            .outerjoin(counts, counts.c.feed_id == FEEDS.c.id)
            .outerjoin(POLLS, POLLS.c.feed_id == FEEDS.c.id)
            .order_by(func.lower(func.coalesce(FEEDS.c.title, FEEDS.c.url)), FEEDS.c.id)
        )
        if not tenant.sees_all:
            subscribed = select(SUBSCRIPTIONS.c.feed_id).where(
                SUBSCRIPTIONS.c.tenant_id == tenant.id
            )
            query = query.where(or_(counts.c.episodes > 0, FEEDS.c.id.in_(subscribed)))
        with self.reader.connect() as conn:
            feeds = [dict(r._mapping) for r in conn.execute(query).all()]
            unfiled = conn.execute(
                select(counts.c.episodes).where(counts.c.feed_id.is_(None))
            ).scalar()
        if unfiled:
            feeds.append({**dict.fromkeys(query.selected_columns.keys()), "episodes": unfiled})
        return feeds

    def episode(self, tenant: Tenant, key: str) -> dict[str, Any]:
        with self.reader.connect() as conn:
            row = conn.execute(
                select(EPISODES).where(EPISODES.c.episode_key == key, visible_episodes(tenant))
            ).first()
            if row is None:
                raise NotFound(f"no episode {key!r} among this tenant's episodes")
            jobs = conn.execute(
                select(JOBS.c.id, JOBS.c.fingerprint, JOBS.c.status)
                .where(JOBS.c.episode_key == key)
                .order_by(JOBS.c.id.desc())
            ).all()
        episode = {c: getattr(row, c) for c in row._fields if c not in ("id",)}
        current = next((j for j in jobs if j.fingerprint == self.fingerprint), None)
        folder = self.artifact_dir(key)
        tree = None
        if folder is not None:
            # checked: a damaged file raises ArtifactDamaged (the API's 409 and a re-run)
            tree = self.artifacts.read_json(key, folder.name, Artifact.TOPICS)
        episode.update(
            job_id=current.id if current else None,
            status=current.status if current else "new",
            fingerprint=folder.name if folder else None,
            topics=tree,
            transcript_formats=[
                f for f, name in TRANSCRIPTS.items() if folder and (folder / name).is_file()
            ],
        )
        return episode

    def transcript(self, tenant: Tenant, key: str, fmt: str) -> Path:
        self.episode_by_key(tenant, key)  # NotFound unless visible
        name = TRANSCRIPTS[fmt]
        folder = self.artifact_dir(key, name)
        if folder is None:
            raise NotFound(
                f"episode {key} has no transcript yet: GET /episodes/{key} shows its job status"
            )
        self.artifacts.read_checked(key, folder.name, name)  # ArtifactDamaged if damaged
        return folder / name

    def artifact_dir(self, key: str, name: str = Artifact.TOPICS) -> Path | None:
        """The finished artifact set of ``key`` that has ``name``: this server's, else the
        one published last (:meth:`ArtifactStore.newest_finished`)."""
        fingerprint = self.artifacts.newest_finished(key, prefer=self.fingerprint, having=name)
        return None if fingerprint is None else self.artifacts.episode_dir(key, fingerprint)
