"""Hybrid search on SQLite and Postgres: keyword and meaning both find things, fused
with RRF; filters by feed and date; deleted rows vanish; new rows are found at once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from podmill.search import keyword, store
from podmill.search.searcher import EmptyQuery, Searcher, fuse
from podmill.search.store import Filters
from podmill.storage.db import make_engine, upgrade
from search.conftest import load_corpus


def _searcher(engine: Any, tmp_path: Path, embed: Any) -> Searcher:
    return Searcher(engine, tmp_path / "data", embed=embed, auto_rebuild="off")


def test_keyword_and_meaning_find_the_right_topic(engine: Any, tmp_path: Path, embed: Any) -> None:
    searcher = _searcher(engine, tmp_path, embed)
    # shares words with the text
    hits = searcher.search("property tax rebate", limit=3)
    assert (hits[0].episode_key, hits[0].node_id) == ("city001taxx", "1")
    assert "keyword" in hits[0].matched and "vector" in hits[0].matched
    assert "«" in hits[0].snippet and "»" in hits[0].snippet
    # shares no content word with the text: found by meaning alone
    hits = searcher.search("robot exploring the red planet", limit=3)
    assert {h.episode_key for h in hits} == {"sci0001mars"}
    assert "1" in {h.node_id for h in hits}
    assert all(h.level > 0 for h in hits)  # the place in the episode, not the episode
    assert all(h.matched == ["vector"] for h in hits)
    assert "«" not in hits[0].snippet and hits[0].snippet  # the lead of the text
    # every hit names where it is
    top = hits[0].to_json()
    assert top["episode_title"] == "Rovers and telescopes"
    assert top["end"] > top["start"] >= 0
    assert top["kind"] in ("node", "passage") and top["level"] in (0, 1)
    assert top["feed_title"] == "Science Hour"


def test_filters_feed_and_dates(
    engine: Any, loaded: tuple[str, dict[str, int]], tmp_path: Path, embed: Any
) -> None:
    searcher = _searcher(engine, tmp_path, embed)
    feeds = loaded[1]
    hits = searcher.search("water", Filters(feed_id=feeds["home"]), limit=20)
    assert hits and {h.episode_key for h in hits} <= {"home001toma", "home002coff"}
    hits = searcher.search(
        "water",
        Filters(since=datetime(2026, 11, 4, tzinfo=UTC), until=datetime(2026, 11, 17, tzinfo=UTC)),
        limit=20,
    )
    assert hits and {h.episode_key for h in hits} <= {"home001toma", "sci0002vacc", "city002flood"}
    assert searcher.search("water", Filters(since=datetime(2027, 1, 1, tzinfo=UTC))) == []


def test_overlapping_hits_are_deduplicated(engine: Any, tmp_path: Path, embed: Any) -> None:
    hits = _searcher(engine, tmp_path, embed).search("sourdough starter yeast", limit=10)
    seen = [(h.episode_key, h.kind, h.start, h.end) for h in hits]
    assert len(seen) == len(set(seen))
    for i, (key, kind, start, end) in enumerate(seen):
        for key2, kind2, start2, end2 in seen[:i]:
            if key == key2 and kind == kind2 == "passage":
                shared = min(end, end2) - max(start, start2)
                assert shared <= 0.5 * min(end - start, end2 - start2), seen


def _inside(passage: dict[str, Any], node: dict[str, Any]) -> bool:
    middle = (passage["start"] + passage["end"]) / 2
    return passage["episode_key"] == node["episode_key"] and node["start"] <= middle < node["end"]


def test_a_topic_and_a_passage_inside_it_are_one_hit(
    engine: Any, tmp_path: Path, embed: Any
) -> None:
    searcher = _searcher(engine, tmp_path, embed)
    # both the "Mars rover" topic and its first passage match these words
    hits = searcher.search("Perseverance rover Jezero crater", limit=10)
    top = hits[0]
    assert (top.episode_key, top.kind, top.title) == ("sci0001mars", "passage", "Mars rover")
    assert len(top.doc_ids) >= 2  # it stands for the topic too
    assert top.matched == ["keyword", "vector"]
    for query in ["property tax rebate", "sourdough starter yeast", "river flooding basements"]:
        shown = [h.to_json() for h in searcher.search(query, limit=20)]
        passages = [h for h in shown if h["kind"] == "passage"]
        nodes = [h for h in shown if h["kind"] == "node" and h["level"] > 0]
        assert not [(n, p) for n in nodes for p in passages if _inside(p, n)], query
        scores = [h["score"] for h in shown]
        assert scores == sorted(scores, reverse=True), query
        # a longer list only adds hits after the shorter one's
        assert [h.to_json() for h in searcher.search(query, limit=2)] == shown[:2], query


def test_snippets_are_the_same_on_sqlite_and_postgres(
    postgres_url: str, corpus: list[Any], tmp_path: Path, embed: Any
) -> None:
    """The same corpus in both databases: every document's snippet for a query, and the
    hits' snippets, are equal (one window rule, the same markers and ellipses)."""
    sqlite_url = f"sqlite:///{tmp_path / 'podmill.db'}"
    shown: dict[str, Any] = {}
    for url in (sqlite_url, postgres_url):
        upgrade(url)
        load_corpus(url, corpus)
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(store.DOCS.c.id, store.DOCS.c.episode_key, store.DOCS.c.doc_key)
                ).all()
                place = {r.id: (r.episode_key, r.doc_key) for r in rows}
                by_query = {}
                for query in QUERIES:
                    terms = keyword.query_terms(query)
                    marked = keyword.highlights(conn, terms, list(place))
                    by_query[query] = {place[i]: text for i, text in marked.items()}
            searcher = Searcher(engine, tmp_path / "data", embed=embed, auto_rebuild="off")
            hits = {
                q: [(h.episode_key, h.start, h.snippet) for h in searcher.search(q)]
                for q in QUERIES
            }
        finally:
            engine.dispose()
        shown[url] = (by_query, hits)
    (sqlite_docs, sqlite_hits), (pg_docs, pg_hits) = shown[sqlite_url], shown[postgres_url]
    for query in QUERIES:
        assert sqlite_docs[query], query  # every query matches words somewhere
        assert sqlite_docs[query] == pg_docs[query], query
        common = {h[:2] for h in sqlite_hits[query]} & {h[:2] for h in pg_hits[query]}
        assert common, query
        assert [h for h in sqlite_hits[query] if h[:2] in common] == [
            h for h in pg_hits[query] if h[:2] in common
        ], query
    cut = [t for docs in sqlite_docs.values() for t in docs.values() if t.startswith("… ")]
    assert cut and all(len(t.split()) <= keyword.SNIPPET_WORDS + 2 for t in cut)


QUERIES = [
    "property tax rebate",
    "rovers drilling rock",  # inflected: the databases' stemming marks "rover", "drills"
    "flooded basements",
    "sleeping adults",
    "telescope mirror",
    "Sourdough",
]


def test_the_snippet_window_holds_the_most_matches() -> None:
    words = [f"w{n}" for n in range(60)]
    words[40], words[44], words[10] = "«tax»", "«rebate»", "«tax»"
    text = keyword.snippet(" ".join(words))
    # both different terms (not the lone earlier "tax"), a quarter window of lead-in
    assert text.startswith("… w34 w35") and "«tax»" in text and "«rebate»" in text
    assert text.endswith(" …") and len(text.split()) == keyword.SNIPPET_WORDS + 2
    assert keyword.snippet("short «text»\n with a match") == "short «text» with a match"
    words[40], words[44] = "w40", "w44"
    assert keyword.snippet(" ".join(words)).startswith("… w4 w5")
    plain = [f"w{n}" for n in range(30)]  # no match: the lead, as a hit found by meaning
    assert keyword.snippet(" ".join(plain)) == keyword.lead(" ".join(plain))
    assert keyword.snippet(" ".join(["«x»", *words[:40]])).startswith("«x» w0")


def test_new_and_removed_documents_are_seen_at_once(
    engine: Any, corpus: list[Any], tmp_path: Path, embed: Any
) -> None:
    searcher = _searcher(engine, tmp_path, embed)
    searcher.rebuild()  # a generation; what follows is only in the database
    with engine.begin() as conn:
        store.replace_episode(conn, "home002coff", "fp", [])
    hits = searcher.search("grind the coffee beans", limit=10)
    assert "home002coff" not in {h.episode_key for h in hits}
    coffee = next(ep for ep in corpus if ep.key == "home002coff")
    with engine.begin() as conn:
        store.replace_episode(conn, "home002coff", "fp2", coffee.docs)
    hits = searcher.search("grind the coffee beans", limit=3)
    assert hits[0].episode_key == "home002coff" and hits[0].node_id == "1"


def test_bad_queries_are_clear_errors(engine: Any, tmp_path: Path, embed: Any) -> None:
    searcher = _searcher(engine, tmp_path, embed)
    with pytest.raises(EmptyQuery, match="empty query"):
        searcher.search("   ")
    with pytest.raises(EmptyQuery, match="limit is 500"):
        searcher.search("x" * 501)
    # query syntax of either database is just text here
    hits = searcher.search('rover" OR NEAR( -- title:mars * ^', limit=2)
    assert hits[0].episode_key == "sci0001mars" and "keyword" in hits[0].matched
    # a subject the corpus lacks: nothing, rather than the least far thing
    assert searcher.search("quantum chromodynamics lattice", limit=5) == []


def test_rrf_rewards_agreement() -> None:
    scores = fuse([[1, 2, 3], [3, 4]])
    assert max(scores, key=scores.__getitem__) == 3  # high in both beats first in one
    assert scores[1] == pytest.approx(1 / 61)


def test_a_row_that_committed_after_the_build_is_found(
    engine: Any, corpus: list[Any], tmp_path: Path, embed: Any
) -> None:
    """Postgres draws ids before commit: a row can land below the generation's
    high-water mark after the build read the table. Its vector must still be searched."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: its ids are in commit order")
    searcher = _searcher(engine, tmp_path, embed)
    with engine.begin() as conn:  # the id a slow transaction drew, not committed yet
        late_id = conn.execute(select(func.max(store.DOCS.c.id))).scalar_one() - 3
        conn.execute(store.DOCS.delete().where(store.DOCS.c.id == late_id))
    generation = searcher.rebuild()
    assert late_id < generation.high_water and late_id not in set(generation.ids)
    coffee = next(ep for ep in corpus if ep.key == "home002coff")
    with engine.begin() as conn:  # ... commits now
        row = coffee.docs[1].row("home002coff", "late") | {"doc_key": "n:late", "id": late_id}
        conn.execute(store.DOCS.insert().values(**row))
    query = "pour over coffee grind"
    with engine.connect() as conn:
        assert late_id in searcher.vector_ranking(conn, embed([query])[0], None, 100)
    hits = searcher.search(query, limit=5)
    # a topic row: shown as the passage inside it, which stands for it too
    late = [h for h in hits if late_id in h.doc_ids]
    assert late and "vector" in late[0].matched


def test_very_common_words_are_left_out_of_the_keyword_ranking(engine: Any) -> None:
    rows = [
        {
            "episode_key": "bulk",
            "fingerprint": "fp",
            "doc_key": f"p:{n}",
            "kind": "passage",
            "node_id": "1",
            "level": 1,
            "start_seconds": float(n),
            "end_seconds": float(n + 1),
            "title": "weather",
            "body": "weather report " + ("zeppelin" if n % 500 == 0 else "today"),
            "vector": None,
        }
        for n in range(keyword.COMMON_DOCS + 100)
    ]
    # one more "weather" document, long (so it ranks low), in a catalogued episode
    rows.append(
        rows[0]
        | {"episode_key": "home002coff", "doc_key": "p:late", "body": "weather " + "x " * 80}
    )
    with engine.begin() as conn:
        conn.execute(store.DOCS.insert(), rows)
    with engine.connect() as conn:
        assert keyword.selective_terms(conn, ["weather", "zeppelin"]) == ["zeppelin"]
        assert keyword.selective_terms(conn, ["weather", "report"]) == ["weather"]  # rarest
        assert keyword.selective_terms(conn, ["weather"]) == ["weather"]
        ranked = keyword.keyword_ranking(conn, ["weather", "zeppelin"], Filters(), 50)
        # a filter whose one match ranks below the headroom: the database join finds it
        only = Filters(since=datetime(2026, 11, 19, tzinfo=UTC))
        filtered = keyword.keyword_ranking(conn, ["weather"], only, 10, {"home002coff"})
    assert len(ranked) == 5  # only the zeppelin rows: thousands of weather rows unranked
    assert len(filtered) == 1
