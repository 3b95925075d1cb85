"""Search latency and index build rate at 10k and 200k synthetic documents, with a
brute-force baseline in the same run.

The corpus is synthetic but shaped like real search documents: vectors cluster around
topics (each document is its topic's centre plus noise, cosine ~0.6 to the centre, as
MiniLM passages of one subject are), and each document's text mixes its topic's words
with Zipf-distributed common words. Every query is a perturbed copy of one document's
vector and three of its topic words plus a common word.

Measured, per size:

- index build: rows written through ``store.replace_episode`` (a finished job's own
  write, with the FTS index) in documents/s; the vector generation (k-means IVF) in
  documents/s;
- vector search: the IVF generation vs the exact scan of every vector (brute force),
  p50/p95 and their ratio, and the IVF's recall@10 against the exact answer;
- keyword search alone (FTS5 bm25 / Postgres ts_rank_cd);
- hybrid search (``Searcher.search``: keyword + vector + RRF + rows + snippets) with the
  IVF generation and with an exact-only generation (the baseline), and hybrid with a
  one-feed filter.

Query embedding is measured apart (the real int8 MiniLM on the query strings): the
searches get the query vectors from a table, so the numbers are the index's.

    python bench/search.py [--sizes 10000,200000] [--queries 200] [--db sqlite|postgres]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, make_url

from podmill.domain import Episode
from podmill.search import keyword, store
from podmill.search.documents import SearchDoc
from podmill.search.searcher import Searcher
from podmill.search.store import Filters
from podmill.storage import db, repo

PG_ADMIN = os.environ.get("PODMILL_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DIM = 384
DOCS_PER_EPISODE = 20
DOCS_PER_TOPIC = 50
FEEDS = 10


def vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    """Pronounceable pseudo-words (none is an English stop word)."""
    onsets = [*"bdfgklmnprstvz", "br", "st", "tr", "gl", "pl", "sk"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ou"]
    words: set[str] = set()
    while len(words) < size:
        n = int(rng.integers(2, 4))
        words.add("".join(str(rng.choice(onsets)) + str(rng.choice(vowels)) for _ in range(n)))
    return sorted(words)


def corpus(n: int, seed: int = 7) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    topics = max(1, n // DOCS_PER_TOPIC)
    words = vocabulary(rng, 6000)
    common, content = words[:1000], words[1000:]
    topic_words = rng.integers(0, len(content), size=(topics, 8))
    centres = rng.standard_normal((topics, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    topic_of = rng.integers(0, topics, size=n)
    noise = rng.standard_normal((n, DIM)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    vecs = centres[topic_of] + 1.3 * noise  # cosine to the centre about 0.6
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    zipf = 1.0 / np.arange(1, len(common) + 1)
    zipf /= zipf.sum()
    texts, titles = [], []
    for i in range(n):
        own = [content[j] for j in rng.choice(topic_words[topic_of[i]], 5)]
        filler = [common[j] for j in rng.choice(len(common), 20, p=zipf)]
        body = own + filler
        rng.shuffle(body)
        texts.append(" ".join(body))
        titles.append(" ".join(own[:3]))
    return {
        "vectors": vecs.astype(np.float32),
        "texts": texts,
        "titles": titles,
        "topic_of": topic_of,
        "topic_words": topic_words,
        "content": content,
        "common": common,
        "rng": rng,
    }


def fill(url: str, data: dict[str, Any]) -> float:
    """Write every document through ``store.replace_episode``; returns seconds."""
    engine = db.make_engine(url)
    sessions = db.session_factory(engine)
    n = len(data["texts"])
    start_day = datetime(2026, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    with sessions.begin() as session:
        feed_ids = [
            repo.upsert_feed(
                session,
                feed_key=f"f{f}",
                url=f"http://b.invalid/{f}",
                title=f"Feed {f}",
                podcast_guid=None,
            )
            for f in range(FEEDS)
        ]
    for e, begin in enumerate(range(0, n, DOCS_PER_EPISODE)):
        key = f"ep{e:08d}"
        docs = [
            SearchDoc(
                doc_key=f"p:{i - begin}",
                kind="passage",
                node_id="1",
                level=1,
                start=30.0 * (i - begin),
                end=30.0 * (i - begin) + 30,
                title=data["titles"][i],
                body=data["texts"][i],
                vector=data["vectors"][i],
            )
            for i in range(begin, min(n, begin + DOCS_PER_EPISODE))
        ]
        with sessions.begin() as session:
            repo.upsert_episode(
                session,
                Episode(key, f"Episode {e}", None, published=start_day + timedelta(hours=e)),
                feed_id=feed_ids[e % FEEDS],
            )
            store.replace_episode(session, key, "bench", docs)
    seconds = time.perf_counter() - started
    engine.dispose()
    return seconds


def queries(data: dict[str, Any], count: int) -> list[tuple[str, Any]]:
    rng = data["rng"]
    found = []
    for _ in range(count):
        i = int(rng.integers(0, len(data["texts"])))
        v = data["vectors"][i] + 0.6 * rng.standard_normal(DIM).astype(np.float32) / np.sqrt(DIM)
        v /= np.linalg.norm(v)
        own = [data["content"][j] for j in rng.choice(data["topic_words"][data["topic_of"][i]], 3)]
        text = " ".join([*own, data["common"][int(rng.integers(20, 200))]])
        found.append((text, v.astype(np.float32)))
    return found


def timed(fn: Any, items: list[Any]) -> list[float]:
    out = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - started) * 1000)
    return out


def pct(values: list[float]) -> str:
    q = statistics.quantiles(values, n=20)
    return f"p50 {statistics.median(values):7.2f} ms  p95 {q[18]:7.2f} ms"


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def database(kind: str, folder: Path) -> tuple[str, Any]:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'podmill.db'}", None
    schema = f"podmill_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(PG_ADMIN).update_query_dict({"options": f"-csearch_path={schema}"})

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()

    return url.render_as_string(hide_password=False), drop


def run(size: int, count: int, kind: str) -> None:
    print(f"\n== {size:,} documents, {kind} ==")
    data = corpus(size)
    qs = queries(data, count)
    table = {text: vec for text, vec in qs}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url, drop = database(kind, folder)
        try:
            db.upgrade(url)
            seconds = fill(url, data)
            print(f"rows + FTS written      {size / seconds:9.0f} docs/s  ({seconds:.1f} s)")
            engine = db.make_engine(url)
            searcher = Searcher(
                engine,
                folder / "data",
                embed=lambda t: np.stack([table[x] for x in t]),
                auto_rebuild="off",
                min_similarity=-1.0,
            )
            started = time.perf_counter()
            generation = searcher.rebuild()
            build = time.perf_counter() - started
            kind_ = "IVF" if generation.centroids is not None else "exact"
            print(
                f"vector generation       {size / build:9.0f} docs/s  ({build:.1f} s, {kind_}"
                + (
                    f", {len(generation.centroids)} lists"
                    if generation.centroids is not None
                    else ""
                )
                + ")"
            )
            vecs = [v for _, v in qs]
            exact = timed(lambda v: generation.exact(v, 50), vecs)
            ivf = timed(lambda v: generation.search(v, 50, nprobe=searcher.nprobe), vecs)
            recall = np.mean(
                [
                    len(
                        set(generation.search(v, 10, nprobe=searcher.nprobe)[0])
                        & set(generation.exact(v, 10)[0])
                    )
                    / 10
                    for v in vecs
                ]
            )
            print(f"vector, brute force     {pct(exact)}")
            ratio = p95(exact) / p95(ivf)
            print(f"vector, {kind_:15} {pct(ivf)}   {ratio:5.1f}x at p95, recall@10 {recall:.3f}")
            terms = [keyword.query_terms(t) for t, _ in qs]
            with engine.connect() as conn:
                kw = timed(lambda t: keyword.keyword_ranking(conn, t, Filters(), 50), terms)
            print(f"keyword alone           {pct(kw)}")
            texts = [t for t, _ in qs]
            for t in texts[:5]:  # warm the caches
                searcher.search(t)
            hybrid = timed(lambda t: searcher.search(t, limit=10), texts)
            feed = Filters(feed_id=1)
            hybrid_feed = timed(lambda t: searcher.search(t, feed, limit=10), texts)
            exact_searcher = Searcher(
                engine,
                folder / "exact",
                embed=searcher._embed,
                auto_rebuild="off",
                min_similarity=-1.0,
                ivf_min_docs=10**12,
            )
            exact_searcher.rebuild()
            hybrid_exact = timed(lambda t: exact_searcher.search(t, limit=10), texts)
            print(f"hybrid, brute force     {pct(hybrid_exact)}")
            ratio = p95(hybrid_exact) / p95(hybrid)
            print(f"hybrid, {kind_:15} {pct(hybrid)}   {ratio:5.1f}x at p95")
            print(f"hybrid, one feed (1/{FEEDS}) {pct(hybrid_feed)}")
            engine.dispose()
        finally:
            if drop is not None:
                drop()


def embed_latency(count: int) -> None:
    from podmill.ml.embed import embed

    embed(["warm up"])
    texts = [f"what did they say about topic number {i} last week" for i in range(count)]
    print(f"\nquery embedding (MiniLM int8, one query) {pct(timed(lambda t: embed([t]), texts))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,200000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    for size in (int(s) for s in args.sizes.split(",")):
        run(size, args.queries, args.db)
    embed_latency(50)


if __name__ == "__main__":
    main()
