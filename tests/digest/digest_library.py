"""A small library of processed episodes for the digest tests (``conftest.py`` makes
its fixtures), written the way the pipeline writes them: catalog rows in a migrated
database (SQLite or Postgres), and per episode a finished artifact set (topics.json,
index.npz with real MiniLM vectors of "title. summary", manifest.json). The full
pipeline on the test corpus is tests/digest/test_story_clusters.py."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

from podmill.domain import Episode
from podmill.ml.embed import get_embedder
from podmill.settings import Settings
from podmill.storage import repo
from podmill.storage.artifacts import ArtifactStore
from podmill.storage.db import make_engine, session_factory, upgrade

FINGERPRINT = "d1ge57d1ge57d1ge"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


@dataclass
class Library:
    """Processed episodes in a data directory and database."""

    settings: Settings
    engine: Engine
    keys: dict[str, str] = field(default_factory=dict)  # title -> episode_key

    def add(
        self,
        feed: str | None,
        title: str,
        published: datetime | None,
        topics: list[tuple[str, str, float, float]],
        *,
        summary: str | None = None,
        audio_sha256: str | None = None,
        children: dict[int, list[tuple[str, str, float, float]]] | None = None,
        processed: bool = True,
    ) -> str:
        """An episode of ``feed`` with L1 ``topics`` (title, summary, start, end) and
        optional L2 ``children`` per topic index; ``processed=False``: catalog only."""
        key = _key(feed or "", title, str(published))
        self.keys[title] = key
        duration = max(end for _, _, _, end in topics)
        sessions = session_factory(self.engine)
        with sessions.begin() as session:
            feed_id = None
            if feed is not None:
                feed_id = repo.upsert_feed(
                    session,
                    feed_key=_key("feed", feed),
                    url=f"https://example.org/{_key(feed)}.xml",
                    title=feed,
                    podcast_guid=None,
                )
            episode = Episode(key, title, f"https://example.org/{key}.mp3", published=published)
            repo.upsert_episode(session, episode, feed_id=feed_id)
            repo.update_episode_media(
                session, key, duration_seconds=duration, audio_sha256=audio_sha256
            )
        if processed:
            self._artifacts(key, title, summary, topics, children or {}, duration)
        return key

    def _artifacts(
        self,
        key: str,
        title: str,
        summary: str | None,
        topics: list[tuple[str, str, float, float]],
        children: dict[int, list[tuple[str, str, float, float]]],
        duration: float,
    ) -> None:
        def node(node_id: str, level: int, t: tuple[str, str, float, float]) -> dict[str, Any]:
            return {
                "id": node_id, "level": level, "start": t[2], "end": t[3],
                "word_start": 0, "word_end": 0, "title": t[0], "summary": t[1],
                "key_points": [], "keywords": [], "children": [],
            }  # fmt: skip

        root = node("0", 0, (title, summary or " ".join(t[1] for t in topics), 0.0, duration))
        for i, topic in enumerate(topics):
            l1 = node(str(i + 1), 1, topic)
            l1["children"] = [
                node(f"{i + 1}.{j + 1}", 2, c) for j, c in enumerate(children.get(i, []))
            ]
            root["children"].append(l1)
        nodes = [root]
        for l1 in root["children"]:
            nodes += [l1, *l1["children"]]
        vectors = embed([f"{n['title']}. {n['summary']}" for n in nodes])
        buffer = io.BytesIO()
        np.savez(
            buffer,
            ids=np.array([n["id"] for n in nodes]),
            levels=np.array([n["level"] for n in nodes]),
            vectors=vectors,
        )
        store = ArtifactStore(self.settings.data_dir)
        store.write_json(key, FINGERPRINT, "topics.json", {"title": title, "duration": duration,
                                                           "root": root})  # fmt: skip
        store.write_bytes(key, FINGERPRINT, "index.npz", buffer.getvalue())
        store.write_manifest(key, FINGERPRINT, {"fingerprint": FINGERPRINT})  # as publish does


_VECTORS: dict[str, Any] = {}


def embed(texts: list[str]) -> Any:
    """Real MiniLM vectors, each text embedded once per test session (the tests reuse
    the same few texts, and the model is what takes the time)."""
    missing = sorted({t for t in texts if t not in _VECTORS})
    if missing:
        _VECTORS.update(zip(missing, get_embedder().embed(missing)))
    return np.stack([_VECTORS[t] for t in texts])


def make_library(data_dir: Path, db_url: str) -> Iterator[Library]:
    upgrade(db_url)
    settings = Settings(data_dir=data_dir, db=db_url)
    engine = make_engine(db_url)
    try:
        yield Library(settings, engine)
    finally:
        engine.dispose()


# Two stories told by several shows, and topics of their own (texts written for these tests).
STORM = [
    ("Solar storm and satellites", "The strongest geomagnetic storm in twenty years "
     "disturbed GPS and pushed low orbit satellites down with extra drag."),
    ("Auroras and the power grid", "A severe solar storm lit up auroras far south and grid "
     "operators watched transformers for currents induced by the geomagnetic storm."),
    ("Geomagnetic storm", "Space weather forecasters said the solar storm was the biggest in "
     "two decades, with satellite operators and GPS users hit hardest."),
]  # fmt: skip
CABLES = [
    ("Undersea cables cut", "Three undersea internet cables were cut in the same stretch of "
     "sea, probably by a ship dragging its anchor, and traffic was rerouted."),
    ("Internet cable repairs", "Repair ships are on the way to fix the severed subsea "
     "internet cables; a dragged anchor is the suspected cause of the cuts."),
]  # fmt: skip
OTHER = [
    ("Sourdough starter", "Feed the starter daily and bake when it has doubled in size."),
    ("Marathon training", "Increase weekly distance slowly and rest before race day."),
    ("Jazz saxophone", "An interview with a saxophonist about improvisation and touring."),
    ("Tomato garden", "Tomatoes want full sun and deep, infrequent watering."),
    ("Chess final", "The chess championship was decided in rapid tiebreak games."),
]  # fmt: skip


def timed(
    items: list[tuple[str, str]], length: float = 300.0
) -> list[tuple[str, str, float, float]]:
    """Back-to-back topics of ``length`` seconds each."""
    return [(t, s, i * length, (i + 1) * length) for i, (t, s) in enumerate(items)]


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)
