"""What a digest is made of: the episodes published in a window, each with its finished
artifact set (topic tree and node vectors) read from the data directory.

The database says which episodes exist, when they were published and in which feed;
the artifact files hold the trees. A caller decides which episodes may be seen (the
API passes the tenant's entitlement clause, ``podmill.platform.visible_episodes``) and
where an episode's artifact set is (``artifact_dir``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from podmill.digest.window import Window
from podmill.domain import TopicNode
from podmill.storage.artifacts import Artifact, ArtifactStore, read_set_bytes, read_set_json
from podmill.storage.models import EpisodeRow, FeedRow

EPISODES = EpisodeRow.__table__
FEEDS = FeedRow.__table__

# A digest over more episodes than this keeps the newest (~5,000 topics: the
# clustering holds an n x n similarity matrix, 100 MB there).
MAX_EPISODES = 500


@dataclass
class Topic:
    """An L1 topic (or an L2 sub-topic) of one episode, with its embedding row."""

    episode_key: str
    node_id: str
    level: int
    title: str
    summary: str
    start: float
    end: float
    vector: Any  # the index stage's vector of "title. summary"
    children: list[Topic] = field(default_factory=list)
    story_vector: Any = None  # what stories are clustered on (stories.story_vectors)

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass
class DigestEpisode:
    """One episode of the window with its finished topic tree."""

    episode_key: str
    title: str
    feed_id: int | None
    feed_title: str | None
    published: datetime
    duration: float
    audio_sha256: str | None
    summary: str
    topics: list[Topic]


def published_at() -> Any:
    """When an episode counts as new: its feed's publication time, else when podmill
    first saw it (a local file has no publication date)."""
    return func.coalesce(EPISODES.c.published_at, EPISODES.c.created_at)


def episode_rows(
    conn: Connection,
    window: Window,
    *,
    feed_ids: Sequence[int] | None = None,
    visible: Any = None,
    limit: int = MAX_EPISODES,
) -> list[Any]:
    """Catalog rows of the episodes published in ``window``, newest first."""
    when = published_at()
    query = (
        select(
            EPISODES.c.episode_key,
            EPISODES.c.title,
            EPISODES.c.feed_id,
            EPISODES.c.duration_seconds,
            EPISODES.c.audio_sha256,
            when.label("published"),
            FEEDS.c.title.label("feed_title"),
        )
        .outerjoin(FEEDS, FEEDS.c.id == EPISODES.c.feed_id)
        .where(when >= window.since, when < window.until)
        .order_by(when.desc(), EPISODES.c.id.desc())
        .limit(limit)
    )
    if feed_ids:
        query = query.where(EPISODES.c.feed_id.in_(list(feed_ids)))
    if visible is not None:
        query = query.where(visible)
    return list(conn.execute(query).all())


def feed_choices(
    conn: Connection, wanted: Sequence[str], visible: Any = None, *, prefix: str = "--"
) -> list[int]:
    """Feed ids for ``--feed`` values: a feed id, feed key, URL, or (case-insensitive)
    title. An unknown value is an error listing the feeds there are."""
    from podmill.digest.window import WindowError

    query = select(FEEDS.c.id, FEEDS.c.feed_key, FEEDS.c.url, FEEDS.c.title)
    if visible is not None:
        query = query.where(FEEDS.c.id.in_(select(EPISODES.c.feed_id).where(visible)))
    feeds = conn.execute(query.order_by(FEEDS.c.id)).all()
    chosen: list[int] = []
    for value in wanted:
        text = value.strip()
        hits = [
            f.id
            for f in feeds
            if text in (str(f.id), f.feed_key, f.url)
            or (f.title or "").casefold() == text.casefold()
        ]
        if not hits:
            known = "; ".join(f"{f.id} {f.title or f.url}" for f in feeds[:20]) or "none"
            raise WindowError(f"{prefix}feed {value!r}: no such feed (feeds: {known})")
        chosen.extend(hits)
    return sorted(set(chosen))


def load_episode(row: Any, folder: Path) -> DigestEpisode:
    """The episode of catalog ``row`` with the tree and vectors of artifact set ``folder``."""
    data = read_set_json(folder, Artifact.TOPICS)
    root = TopicNode.from_dict(data["root"])
    vectors = _node_vectors(folder, root)
    topics = []
    for node in root.children:
        topic = _topic(row.episode_key, node, vectors)
        topic.children = [_topic(row.episode_key, c, vectors) for c in node.children]
        topics.append(topic)
    duration = row.duration_seconds or data.get("duration") or root.end
    return DigestEpisode(
        episode_key=row.episode_key,
        title=row.title or root.title,
        feed_id=row.feed_id,
        feed_title=row.feed_title,
        published=row.published,
        duration=float(duration or 0.0),
        audio_sha256=row.audio_sha256,
        summary=root.summary,
        topics=topics,
    )


def collect(
    conn: Connection,
    window: Window,
    artifact_dir: Callable[[str], Path | None],
    *,
    feed_ids: Sequence[int] | None = None,
    visible: Any = None,
    limit: int = MAX_EPISODES,
) -> tuple[list[DigestEpisode], int]:
    """The window's processed episodes, newest first, and how many in the window are
    not processed yet (no finished artifact set)."""
    episodes: list[DigestEpisode] = []
    pending = 0
    for row in episode_rows(conn, window, feed_ids=feed_ids, visible=visible, limit=limit):
        folder = artifact_dir(row.episode_key)
        if folder is None:
            pending += 1
            continue
        episodes.append(load_episode(row, folder))
    add_story_vectors([t for ep in episodes for t in ep.topics])
    return episodes, pending


def add_story_vectors(topics: Sequence[Topic]) -> None:
    """Set each topic's ``story_vector``: its index vector plus its summary's own
    embedding (stories.story_vectors). Summaries are embedded in one batch, once per
    process (a server making every tenant's weekly digest sees the same ones)."""
    import numpy as np

    from podmill.digest.stories import story_vectors
    from podmill.ml.embed import DIMENSION, embed

    usable = [t for t in topics if t.vector is not None]
    if not usable:
        return
    texts = [t.summary.strip() for t in usable]
    missing = sorted({t for t in texts if t and t not in _SUMMARY_CACHE})
    if missing:
        if len(_SUMMARY_CACHE) + len(missing) > _SUMMARY_CACHE_SIZE:
            _SUMMARY_CACHE.clear()
        _SUMMARY_CACHE.update(zip(missing, embed(missing)))
    zero = np.zeros(DIMENSION, dtype=np.float32)
    summaries = np.stack([_SUMMARY_CACHE[t] if t else zero for t in texts])
    mixed = story_vectors(np.stack([t.vector for t in usable]), summaries)
    for topic, vector in zip(usable, mixed):
        topic.story_vector = vector


_SUMMARY_CACHE: dict[str, Any] = {}
_SUMMARY_CACHE_SIZE = 20_000  # ~30 MB of vectors


def newest_finished_set(data_dir: Path) -> Callable[[str], Path | None]:
    """``artifact_dir`` for the CLI: an episode's newest finished set, whatever its
    fingerprint (the server prefers its own fingerprint: ``Platform.artifact_dir``)."""
    store = ArtifactStore(data_dir)

    def find(key: str) -> Path | None:
        fingerprint = store.newest_finished(key)
        return None if fingerprint is None else store.episode_dir(key, fingerprint)

    return find


def any_episodes(conn: Connection, visible: Any = None) -> bool:
    query = select(EPISODES.c.id).limit(1)
    if visible is not None:
        query = query.where(visible)
    return conn.execute(query).first() is not None


def _topic(key: str, node: TopicNode, vectors: dict[str, Any]) -> Topic:
    return Topic(
        episode_key=key,
        node_id=node.id,
        level=node.level,
        title=node.title,
        summary=node.summary,
        start=node.start,
        end=node.end,
        vector=vectors.get(node.id),
    )


def _node_vectors(folder: Path, root: TopicNode) -> dict[str, Any]:
    """Node id → unit vector of "title. summary", from the index stage's ``index.npz``
    (only its ``ids``/``vectors`` arrays are read: other arrays may sit beside them);
    nodes it lacks are embedded here (an artifact set from before the index stage)."""
    import numpy as np

    vectors: dict[str, Any] = {}
    if (folder / Artifact.INDEX).is_file():
        data = read_set_bytes(folder, Artifact.INDEX)
        with np.load(io.BytesIO(data), allow_pickle=False) as index:
            ids = [str(i) for i in index["ids"]]
            matrix = index["vectors"]
        vectors = {node_id: matrix[row] for row, node_id in enumerate(ids)}
    missing = [n for n in root.walk() if n.level > 0 and n.id not in vectors]
    if missing:
        from podmill.ml.embed import embed

        fresh = embed([f"{n.title}. {n.summary}" for n in missing])
        vectors.update({n.id: fresh[i] for i, n in enumerate(missing)})
    return vectors
