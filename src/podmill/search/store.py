"""The ``search_docs`` rows: replacing an episode's documents, reading rows and vectors,
and the filters (feed, date range, entitlement) as one SQL condition on ``episodes``.

The database is the truth for search; the in-memory vector index
(:mod:`podmill.search.vectors`) is a cache of these rows' vectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, true
from sqlalchemy.orm import Session

from podmill.search.documents import SearchDoc
from podmill.storage.models import EpisodeRow, FeedRow, SearchDocRow, utcnow

DOCS = SearchDocRow.__table__
EPISODES = EpisodeRow.__table__
FEEDS = FeedRow.__table__

# Where a document is: its row, episode, kind and span (a candidate; a hit shows more).
_PLACE = (
    DOCS.c.id,
    DOCS.c.episode_key,
    DOCS.c.kind,
    DOCS.c.node_id,
    DOCS.c.level,
    DOCS.c.start_seconds,
    DOCS.c.end_seconds,
)


def replace_episode(
    session: Session | Connection, episode_key: str, fingerprint: str, docs: Sequence[SearchDoc]
) -> None:
    """Make ``docs`` the episode's search documents (whatever fingerprint was indexed
    before), in the caller's transaction: searchers see the old set or the new one."""
    session.execute(delete(DOCS).where(DOCS.c.episode_key == episode_key))
    if docs:
        now = utcnow()
        session.execute(
            insert(DOCS), [{**d.row(episode_key, fingerprint), "created_at": now} for d in docs]
        )


@dataclass(frozen=True)
class Filters:
    """Which episodes a search may return. ``visible`` is a SQL condition on
    ``episodes`` (a tenant's entitlement, :func:`podmill.platform.visible_episodes`)."""

    feed_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    visible: Any = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.feed_id, self.since, self.until, self.visible))

    def condition(self) -> Any:
        """The condition on ``episodes`` (``true()`` with no filter)."""
        parts = []
        if self.feed_id is not None:
            parts.append(EPISODES.c.feed_id == self.feed_id)
        if self.since is not None:
            parts.append(EPISODES.c.published_at >= self.since)
        if self.until is not None:
            parts.append(EPISODES.c.published_at < self.until)
        if self.visible is not None:
            parts.append(self.visible)
        return and_(*parts) if parts else true()


def allowed_episodes(conn: Connection, filters: Filters) -> set[str]:
    """Keys of the episodes the filters let through."""
    rows = conn.execute(select(EPISODES.c.episode_key).where(filters.condition()))
    return set(rows.scalars())


def doc_count(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(DOCS)).scalar_one()


def max_id(conn: Connection) -> int:
    return conn.execute(select(func.coalesce(func.max(DOCS.c.id), 0))).scalar_one()


def ids_above(conn: Connection, floor: int) -> list[int]:
    """Ids of rows above ``floor``, sorted (cheap: a primary-key range)."""
    return list(
        conn.execute(select(DOCS.c.id).where(DOCS.c.id > floor).order_by(DOCS.c.id)).scalars()
    )


def vectors_of(conn: Connection, ids: Iterable[int] | None = None, chunk: int = 900) -> Any:
    """``(ids, episode_keys, vectors)`` for the given ids (all rows when ``None``), in id
    order; rows without a vector are left out."""
    import numpy as np

    columns = select(DOCS.c.id, DOCS.c.episode_key, DOCS.c.vector).where(DOCS.c.vector.is_not(None))
    rows: list[Any] = []
    if ids is None:
        rows = conn.execute(columns.order_by(DOCS.c.id)).all()
    else:
        wanted = sorted(ids)
        for begin in range(0, len(wanted), chunk):  # SQLite caps bound parameters
            part = wanted[begin : begin + chunk]
            rows.extend(conn.execute(columns.where(DOCS.c.id.in_(part))).all())
        rows.sort(key=lambda r: r.id)
    found_ids = np.array([r.id for r in rows], dtype=np.int64)
    keys = [r.episode_key for r in rows]
    if rows:
        vectors = np.frombuffer(b"".join(r.vector for r in rows), dtype=np.float32)
        vectors = vectors.reshape(len(rows), -1)
    else:
        vectors = np.zeros((0, 0), dtype=np.float32)
    return found_ids, keys, vectors


def candidate_rows(conn: Connection, ids: Sequence[int], filters: Filters) -> dict[int, Any]:
    """Where the candidates ``ids`` are (episode, kind, span), for those that exist and
    pass ``filters``. A deleted row (its episode was indexed again) is simply absent:
    the vector index may still name it until the next generation."""
    if not ids:
        return {}
    query = select(*_PLACE).where(DOCS.c.id.in_(list(ids)))
    if filters.active:
        query = query.join(EPISODES, EPISODES.c.episode_key == DOCS.c.episode_key).where(
            filters.condition()
        )
    return {r.id: r for r in conn.execute(query).all()}


def hit_rows(conn: Connection, ids: Sequence[int]) -> dict[int, Any]:
    """Everything a hit shows: the row, its episode and feed."""
    if not ids:
        return {}
    query = (
        select(
            *_PLACE,
            DOCS.c.title,
            DOCS.c.body,
            EPISODES.c.title.label("episode_title"),
            EPISODES.c.feed_id,
            EPISODES.c.published_at,
            FEEDS.c.title.label("feed_title"),
        )
        .select_from(
            DOCS.outerjoin(EPISODES, EPISODES.c.episode_key == DOCS.c.episode_key).outerjoin(
                FEEDS, FEEDS.c.id == EPISODES.c.feed_id
            )
        )
        .where(DOCS.c.id.in_(list(ids)))
    )
    return {r.id: r for r in conn.execute(query).all()}
