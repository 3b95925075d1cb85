"""The few writes and reads the pipeline runner needs, as plain functions on a ``Session``.

None of these commit: the caller owns the transaction (``with factory.begin() as s:``).
Inserts that can race (two requests for the same feed, episode or job) are single
``INSERT … ON CONFLICT`` statements, so they are safe on SQLite and Postgres alike.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from podmill.domain import Episode
from podmill.storage.artifacts import StoredArtifact
from podmill.storage.db import dialect_insert
from podmill.storage.models import (
    ArtifactRow,
    Base,
    EpisodeRow,
    FeedRow,
    utcnow,
)


def _insert(session: Session, model: type[Base]) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_*`` on both supported databases."""
    return dialect_insert(session.get_bind().dialect.name, model)


def upsert_feed(
    session: Session, *, feed_key: str, url: str, title: str | None, podcast_guid: str | None
) -> int:
    """Insert or update the feed with ``feed_key``; returns its id.

    A ``None`` title or guid keeps the stored value (a later fetch may lack them).
    """
    now = utcnow()
    stmt = _insert(session, FeedRow).values(
        feed_key=feed_key, url=url, title=title, podcast_guid=podcast_guid, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["feed_key"],
        set_={
            "url": stmt.excluded.url,
            "title": func.coalesce(stmt.excluded.title, FeedRow.title),
            "podcast_guid": func.coalesce(stmt.excluded.podcast_guid, FeedRow.podcast_guid),
            "updated_at": now,
        },
    )
    return session.execute(stmt.returning(FeedRow.id)).scalar_one()


def ensure_feed(session: Session, *, feed_key: str, url: str, title: str | None) -> int:
    """The id of the feed with ``feed_key``, inserted when there is none; an existing
    row keeps its URL and title (a missing title is filled in). What a finished job
    projects: it never moves a feed that a submit or the catalog wrote."""
    stmt = _insert(session, FeedRow).values(
        feed_key=feed_key, url=url, title=title, updated_at=utcnow()
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["feed_key"],
        set_={"title": func.coalesce(FeedRow.title, stmt.excluded.title)},
    )
    return session.execute(stmt.returning(FeedRow.id)).scalar_one()


def insert_feed(
    session: Session,
    *,
    feed_key: str,
    identity: str,
    url: str,
    title: str | None,
    podcast_guid: str | None,
) -> int | None:
    """Add a catalog feed; its id, or ``None`` (and nothing changed) when a feed with
    ``feed_key`` exists already. Unlike :func:`upsert_feed` it never touches an
    existing row: a document that claims another feed's identity must not move it."""
    stmt = (
        _insert(session, FeedRow)
        .values(
            feed_key=feed_key,
            identity=identity,
            url=url,
            title=title,
            podcast_guid=podcast_guid,
            updated_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["feed_key"])
        .returning(FeedRow.id)
    )
    return session.execute(stmt).scalar_one_or_none()


def refresh_feed(session: Session, feed_id: int, *, title: str | None, identity: str) -> None:
    """What a poll of catalog feed ``feed_id`` may change: its title (``None`` keeps it),
    and its identity only where the row has none yet (rows older than migration 0009).
    Never its URL or key."""
    session.execute(
        update(FeedRow)
        .where(FeedRow.id == feed_id)
        .values(
            title=func.coalesce(title, FeedRow.title),
            identity=func.coalesce(FeedRow.identity, identity),
            updated_at=utcnow(),
        )
    )


def episode_metadata(episode: Episode) -> dict[str, Any]:
    """The feed metadata that has no column of its own (stored as ``metadata_json``)."""
    return {
        "description": episode.description,
        "mime_type": episode.mime_type,
        "enclosure_length": episode.enclosure_length,
        "transcripts": [asdict(t) for t in episode.transcripts],
        "chapters_url": episode.chapters_url,
        "chapters": [asdict(c) for c in episode.chapters],
        "persons": [asdict(p) for p in episode.persons],
    }


def _episode_values(episode: Episode, feed_id: int | None) -> dict[str, Any]:
    """The catalog columns of ``episode`` (a published time without a zone is UTC)."""
    published = episode.published
    if published is not None and published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    return {
        "episode_key": episode.episode_key,
        "feed_id": feed_id,
        "guid": episode.guid,
        "title": episode.title,
        "audio_url": episode.audio_url,
        "published_at": published,
        "metadata_json": episode_metadata(episode),
        "updated_at": utcnow(),
    }


def upsert_episode(session: Session, episode: Episode, *, feed_id: int | None) -> int:
    """Insert or update the catalog row for ``episode``; returns its id.

    Media facts (duration, audio checksum) are left alone: see :func:`update_episode_media`.
    A ``None`` feed_id keeps the stored feed. A published time without a zone is UTC.
    """
    now = utcnow()
    stmt = _insert(session, EpisodeRow).values(**_episode_values(episode, feed_id))
    stmt = stmt.on_conflict_do_update(
        index_elements=["episode_key"],
        set_={
            "feed_id": func.coalesce(stmt.excluded.feed_id, EpisodeRow.feed_id),
            "guid": stmt.excluded.guid,
            "title": stmt.excluded.title,
            "audio_url": stmt.excluded.audio_url,
            "published_at": stmt.excluded.published_at,
            "metadata_json": stmt.excluded.metadata_json,
            "updated_at": now,
        },
    )
    return session.execute(stmt.returning(EpisodeRow.id)).scalar_one()


def ensure_episode(session: Session, episode: Episode, *, feed_id: int | None) -> int:
    """The id of ``episode``'s catalog row, inserted when there is none; an existing row
    is left as a submit or the catalog wrote it, except that a row without a feed is
    linked to ``feed_id``."""
    stmt = _insert(session, EpisodeRow).values(**_episode_values(episode, feed_id))
    stmt = stmt.on_conflict_do_update(
        index_elements=["episode_key"],
        set_={"feed_id": func.coalesce(EpisodeRow.feed_id, stmt.excluded.feed_id)},
    )
    return session.execute(stmt.returning(EpisodeRow.id)).scalar_one()


def update_episode_media(
    session: Session, episode_key: str, *, duration_seconds: float | None, audio_sha256: str | None
) -> None:
    """Record what the fetch stage learned about the audio."""
    result = session.execute(
        update(EpisodeRow)
        .where(EpisodeRow.episode_key == episode_key)
        .values(duration_seconds=duration_seconds, audio_sha256=audio_sha256, updated_at=utcnow())
    )
    if result.rowcount == 0:
        raise LookupError(f"no episode {episode_key!r} in the catalog (upsert_episode first)")


def record_artifact(
    session: Session, episode_key: str, fingerprint: str, stored: StoredArtifact, kind: str
) -> None:
    """Point the database at an artifact file (replacing an earlier one of that kind)."""
    now = utcnow()
    row = {"path": stored.relpath, "sha256": stored.sha256, "size_bytes": stored.size}
    stmt = _insert(session, ArtifactRow).values(
        episode_key=episode_key, fingerprint=fingerprint, kind=kind, created_at=now, **row
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["episode_key", "fingerprint", "kind"], set_={**row, "created_at": now}
    )
    session.execute(stmt)


def episode_row(session: Session, episode_key: str) -> dict[str, Any] | None:
    """The catalog row for ``episode_key`` as a dict of its columns, or ``None``."""
    row = session.scalars(select(EpisodeRow).where(EpisodeRow.episode_key == episode_key)).first()
    if row is None:
        return None
    return {column.key: getattr(row, column.key) for column in EpisodeRow.__table__.columns}


def _check_status(status: str, allowed: tuple[str, ...], what: str) -> None:
    if status not in allowed:
        raise ValueError(f"unknown {what} status {status!r}; expected one of {', '.join(allowed)}")
