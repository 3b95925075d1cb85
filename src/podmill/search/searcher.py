"""Hybrid search: keyword ranking (database FTS) and vector ranking (embeddings) fused
with reciprocal rank fusion, filtered, deduplicated, with highlighted snippets.

One :class:`Searcher` per process (the CLI makes one per command, the API one per
app); it is thread-safe. Its vector side is the live generation
(:mod:`podmill.search.vectors`) plus an exact scan of the rows the generation lacks,
kept as a small in-memory cache that follows the table.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, make_url

from podmill.errors import PodmillError
from podmill.search import keyword, store, vectors
from podmill.search.store import Filters
from podmill.search.vectors import Generation

log = logging.getLogger(__name__)

RRF_K = 60  # the constant of Cormack et al. (2009): damps the weight of the top ranks
MIN_CANDIDATES = 50  # per ranking, before fusion
# Rows outside the generation, searched exactly; past this many the searcher builds a
# new generation (the CLI at once, a server in a background thread).
AUTO_REBUILD_ROWS = 20_000
# A generation also misses a row whose id is below its high-water mark but which
# committed after the build read the table (Postgres draws ids before commit; SQLite
# has one writer, so its ids are in commit order). Such a row was being written while
# the build ran: for a while after a build, the searcher also scans this many ids below
# the mark for rows the generation lacks.
LATE_COMMIT_IDS = 1000
LATE_COMMIT_SECONDS = 600.0
MAX_QUERY_CHARS = 500
# Nearest neighbours always exist; below this cosine they are not about the query
# (MiniLM: unrelated sentences score about -0.1..0.1, a paraphrase 0.3 and up), so a
# query about something the corpus lacks finds nothing rather than the least far thing.
MIN_SIMILARITY = 0.2


class EmptyQuery(PodmillError):
    pass


@dataclass
class Hit:
    """One search result: where in which episode, and why it matched."""

    episode_key: str
    episode_title: str
    node_id: str
    level: int
    start: float
    end: float
    score: float
    snippet: str
    kind: str  # node | passage
    title: str  # the node's title (a passage's: its node's)
    feed_id: int | None
    feed_title: str | None
    published_at: datetime | None
    matched: list[str] = field(default_factory=list)  # keyword, vector
    doc_id: int = 0
    # the rows this hit stands for: its own first, then topics it was shown for
    doc_ids: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "episode_key": self.episode_key,
            "episode_title": self.episode_title,
            "node_id": self.node_id,
            "level": self.level,
            "start": round(self.start, 2),
            "end": round(self.end, 2),
            "score": round(self.score, 6),
            "snippet": self.snippet,
            "kind": self.kind,
            "title": self.title,
            "feed_id": self.feed_id,
            "feed_title": self.feed_title,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "matched": self.matched,
        }


def index_folder(data_dir: Path, database_url: str) -> Path:
    """Where the vector generations of this database live: one folder per database, so
    two databases sharing a data directory never read each other's index."""
    shown = make_url(database_url).render_as_string(hide_password=True)
    return data_dir / "search" / f"db-{hashlib.sha256(shown.encode()).hexdigest()[:12]}"


def fuse(rankings: list[list[int]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion: each ranking adds ``1 / (k + rank)`` (rank from 1)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, 1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (k + rank)
    return scores


@dataclass
class _Delta:
    """The rows the generation lacks: ids, episode keys and vectors, id order."""

    high_water: int
    ids: Any
    keys: list[str]
    vectors: Any


class Searcher:
    """Hybrid search over ``search_docs`` of ``engine``'s database."""

    def __init__(
        self,
        engine: Engine,
        data_dir: Path,
        *,
        embed: Callable[[list[str]], Any] | None = None,
        auto_rebuild: str = "sync",  # sync | background | off
        nprobe: int = vectors.DEFAULT_NPROBE,
        ivf_min_docs: int = vectors.IVF_MIN_DOCS,
        exact_below: int = vectors.EXACT_SUBSET_DOCS,
        min_similarity: float = MIN_SIMILARITY,
    ) -> None:
        self.engine = engine
        self.folder = index_folder(data_dir, engine.url.render_as_string(hide_password=False))
        self._embed = embed
        self.auto_rebuild = auto_rebuild
        self.nprobe = nprobe
        self.ivf_min_docs = ivf_min_docs
        self.exact_below = exact_below
        self.min_similarity = min_similarity
        vectors.limit_blas_threads()
        self._lock = threading.Lock()
        self._rebuild_lock = threading.Lock()
        self._generation: Generation | None = None
        self._delta: _Delta | None = None

    # ----------------------------------------------------------------- generation

    def generation(self) -> Generation | None:
        """The live generation (re-read when ``CURRENT`` names a new one)."""
        for _attempt in range(3):
            name = vectors.current_name(self.folder)
            current = self._generation
            if name is None or (current is not None and current.name == name):
                return current
            try:
                loaded, _meta = vectors.load(self.folder, name)
            except FileNotFoundError:
                continue  # pruned between reading CURRENT and opening it: read again
            with self._lock:
                if self._generation is None or self._generation.name != loaded.name:
                    self._generation = loaded
            return loaded
        return self._generation

    def rebuild(self) -> Generation:
        """Build a generation from every row's vector, save it aside, swap it in."""
        with self._rebuild_lock:
            built_at = time.time()
            with self.engine.connect() as conn:
                ids, keys, matrix = store.vectors_of(conn)
            high_water = int(ids[-1]) if len(ids) else 0
            generation = vectors.build(
                ids, keys, matrix, high_water, ivf_min_docs=self.ivf_min_docs, built_at=built_at
            )
            vectors.save(generation, self.folder, {"database": self.engine.dialect.name})
            with self._lock:
                self._generation = generation
            return generation

    def _delta_rows(self, conn: Connection, generation: Generation | None) -> _Delta:
        import numpy as np

        high_water = generation.high_water if generation is not None else 0
        floor = high_water
        recent = generation is not None and time.time() - generation.built_at < LATE_COMMIT_SECONDS
        if recent and conn.dialect.name == "postgresql":
            floor = high_water - LATE_COMMIT_IDS
        wanted = np.array(store.ids_above(conn, floor), dtype=np.int64)
        if floor < high_water and len(wanted):
            wanted = wanted[~np.isin(wanted, generation.recent_ids(LATE_COMMIT_IDS))]
        cached = self._delta
        if cached is not None and cached.high_water != high_water:
            cached = None
        if cached is not None and np.array_equal(cached.ids, wanted):
            return cached
        if cached is not None:
            keep = np.isin(cached.ids, wanted)
            ids, keys = cached.ids[keep], [k for k, ok in zip(cached.keys, keep) if ok]
            matrix = cached.vectors[keep]
        else:
            ids, keys, matrix = np.zeros(0, np.int64), [], np.zeros((0, 0), np.float32)
        missing = wanted[~np.isin(wanted, ids)]
        new_ids, new_keys, new_matrix = store.vectors_of(conn, missing.tolist())
        if len(new_ids):
            ids = np.concatenate([ids, new_ids])
            keys = keys + new_keys
            matrix = np.concatenate([matrix, new_matrix]) if len(matrix) else new_matrix
        order = np.argsort(ids, kind="stable")
        delta = _Delta(high_water, ids[order], [keys[i] for i in order], matrix[order])
        self._delta = delta
        return delta

    # --------------------------------------------------------------------- search

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A connection whose statements all read one snapshot: a query's rankings and
        rows agree even while an episode's rows are being replaced."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            else:
                conn.begin()  # an engine made with immediate=True emits its BEGIN here
                if not conn.connection.dbapi_connection.in_transaction:
                    # pysqlite opens no transaction for reads: each SELECT would see
                    # the latest commit. A deferred BEGIN holds one WAL snapshot.
                    conn.exec_driver_sql("BEGIN")
            yield conn

    def embed_query(self, query: str) -> Any:
        if self._embed is None:
            from podmill.ml.embed import embed

            self._embed = embed
        return self._embed([query])[0]

    def search(self, query: str, filters: Filters | None = None, limit: int = 10) -> list[Hit]:
        """The ``limit`` best hits for ``query`` (RRF of keyword and vector rankings)."""
        query = query.strip()
        if not query:
            raise EmptyQuery('empty query: give words to search for, e.g. "climate policy"')
        if len(query) > MAX_QUERY_CHARS:
            raise EmptyQuery(
                f"query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}"
            )
        filters = filters or Filters()
        terms = keyword.query_terms(query)
        qvec = self.embed_query(query)
        depth = max(MIN_CANDIDATES, limit * 5)
        with self._snapshot() as conn:
            allowed = store.allowed_episodes(conn, filters) if filters.active else None
            by_keyword = keyword.keyword_ranking(conn, terms, filters, depth, allowed)
            # twice as deep: the generation may still name rows replaced since it was
            # built; ranks count only live rows, so answers do not move when it swaps
            by_vector = self.vector_ranking(conn, qvec, allowed, 2 * depth)
            rows = store.candidate_rows(conn, list({*by_keyword, *by_vector}), filters)
            by_keyword = [i for i in by_keyword if i in rows]
            by_vector = [i for i in by_vector if i in rows][:depth]
            fused = fuse([by_keyword, by_vector])
            ordered = sorted(fused, key=lambda i: (-fused[i], *_place(rows[i])))
            groups = [[r.id for r in g] for g in _dedupe([rows[i] for i in ordered], limit)]
            chosen_ids = [g[0] for g in groups]
            full = store.hit_rows(conn, chosen_ids)
            snippets = keyword.highlights(conn, terms, chosen_ids)
        in_keyword, in_vector = set(by_keyword), set(by_vector)
        hits = []
        for group in groups:
            r = full[group[0]]
            # a passage shown for a topic too: the place ranks where the better one did,
            # found by every ranking that found either
            hits.append(
                Hit(
                    episode_key=r.episode_key,
                    episode_title=r.episode_title or "",
                    node_id=r.node_id,
                    level=r.level,
                    start=r.start_seconds,
                    end=r.end_seconds,
                    score=max(fused[i] for i in group),
                    snippet=snippets.get(r.id) or keyword.lead(r.body or r.title),
                    kind=r.kind,
                    title=r.title,
                    feed_id=r.feed_id,
                    feed_title=r.feed_title,
                    published_at=r.published_at,
                    matched=[
                        m
                        for m, found in (("keyword", in_keyword), ("vector", in_vector))
                        if found.intersection(group)
                    ],
                    doc_id=r.id,
                    doc_ids=group,
                )
            )
        return hits

    def vector_ranking(
        self, conn: Connection, qvec: Any, allowed: set[str] | None, k: int
    ) -> list[int]:
        """Ids of the ``k`` nearest documents of the ``allowed`` episodes (every one
        when ``None``), best first."""
        import numpy as np

        generation = self.generation()
        delta = self._delta_rows(conn, generation)
        found_ids, found_scores = [], []
        if generation is not None and len(generation):
            mask = generation.mask_for(allowed) if allowed is not None else None
            ids, scores = generation.search(
                qvec, k, mask=mask, nprobe=self.nprobe, exact_below=self.exact_below
            )
            found_ids.append(ids)
            found_scores.append(scores)
        if len(delta.ids):
            rows = np.arange(len(delta.ids))
            if allowed is not None:
                rows = rows[[key in allowed for key in delta.keys]]
            ids, scores = vectors.top(delta.ids[rows], delta.vectors[rows] @ qvec, k)
            found_ids.append(ids)
            found_scores.append(scores)
        self._maybe_rebuild(len(delta.ids))
        if not found_ids:
            return []
        ids, scores = vectors.top(np.concatenate(found_ids), np.concatenate(found_scores), k)
        return [int(i) for i in ids[scores >= self.min_similarity]]

    def _maybe_rebuild(self, delta_rows: int) -> None:
        if delta_rows < AUTO_REBUILD_ROWS or self.auto_rebuild == "off":
            return
        if self._rebuild_lock.locked():
            return  # one is under way
        if self.auto_rebuild == "background":
            threading.Thread(target=self._rebuild_quietly, daemon=True).start()
        else:
            self.rebuild()

    def _rebuild_quietly(self) -> None:
        try:
            self.rebuild()
        except Exception:  # a failed rebuild leaves the live generation; searches go on
            log.exception("search index rebuild failed")


def _place(row: Any) -> tuple[str, float, str, str]:
    """Ties in score go by place, not row id: an episode indexed again gets new ids."""
    return (row.episode_key, row.start_seconds, row.kind, row.node_id)


def _dedupe(rows: list[Any], limit: int) -> list[list[Any]]:
    """One hit per place, best first, at most ``limit``: each a group of rows whose
    first row is the one shown and the rest the rows it stands for.

    - A passage that mostly repeats a better-ranked passage of the same episode (over
      half of the shorter span shared: the windows overlap by design) is dropped.
    - A topic (or sub-topic) and a passage inside it (same episode, the passage's middle
      within the topic's span: the rule that gave the passage its topic) are one place:
      the passage is shown (it has the exact time; its ``title`` is its topic's), in the
      better rank of the two. A topic with no passage among the hits is shown itself.
    - An episode (L0) hit is dropped when something inside that episode matched too:
      the place in the episode is the answer.

    The whole ranking is grouped before it is cut, so a longer ``limit`` only adds hits
    after the shorter one's."""
    specific = {r.episode_key for r in rows if r.kind == "passage" or r.level > 0}
    groups: list[list[Any]] = []
    for row in rows:
        if row.kind == "node" and row.level == 0:
            if row.episode_key not in specific:
                groups.append([row])
            continue
        if row.kind == "node":
            home = next((g for g in groups if g[0].kind == "passage" and _inside(g[0], row)), None)
            if home is not None:
                home.append(row)
            else:
                groups.append([row])
            continue
        if any(g[0].kind == "passage" and _repeats(row, g[0]) for g in groups):
            continue
        topics = [g for g in groups if g[0].kind == "node" and _inside(row, g[0])]
        if not topics:
            groups.append([row])
            continue
        first = topics[0]
        first.insert(0, row)  # the passage takes the better-ranked topic's place
        for other in topics[1:]:  # a sub-topic of it, say: the same place too
            first.extend(other)
            groups.remove(other)
    return groups[:limit]


def _inside(passage: Any, node: Any) -> bool:
    """A passage lies in a topic node: same episode, its middle within the node's span."""
    if passage.episode_key != node.episode_key or node.level == 0:
        return False
    middle = (passage.start_seconds + passage.end_seconds) / 2
    return node.start_seconds <= middle < node.end_seconds


def _repeats(row: Any, better: Any) -> bool:
    if row.kind != "passage" or better.kind != "passage" or row.episode_key != better.episode_key:
        return False
    shared = min(row.end_seconds, better.end_seconds) - max(row.start_seconds, better.start_seconds)
    shorter = min(row.end_seconds - row.start_seconds, better.end_seconds - better.start_seconds)
    return shared > 0.5 * max(shorter, 1e-6)
