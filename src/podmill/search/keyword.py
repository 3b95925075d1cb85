"""Keyword search in the database: SQLite FTS5 (bm25, ``highlight``) or Postgres full
text (``ts_rank_cd``, ``ts_headline``). One shape for both: :func:`keyword_ranking`
returns doc ids best first; :func:`highlights` returns highlighted snippets, cut by one
rule (:func:`snippet`) whichever database marked the words.

A query becomes an OR of its words (stop words dropped): a natural-language question
rarely has every word in the passage that answers it; the ranking functions reward
passages with more and rarer matches. Words are reduced to letters and digits, so no
user input reaches either database's query syntax.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, column, func, literal_column, select, table, text

from podmill.search.store import DOCS, EPISODES, Filters

MARK_START, MARK_END = "«", "»"
SNIPPET_WORDS = 24
# Migration 0006's stored tsvector column (Postgres), which its GIN index covers.
PG_TSVECTOR = "search_docs.search_tsv"
# Title matches count double: a topic titled with the query's words is about it.
SQLITE_BM25 = "bm25(search_fts, 2.0, 1.0)"
SQLITE_RANK = "bm25(2.0, 1.0)"  # the same, as FTS5's rank function
FTS = table("search_fts", column("rowid"))  # the FTS5 table of migration 0006
# A term in more documents than this is left out of the keyword ranking when the query
# has rarer ones (docs/search.md: at 200,000 documents, p95 119 -> 13 ms).
COMMON_DOCS = 2000
# A filtered keyword ranking first reads this many times the candidates it needs.
FILTER_HEADROOM = 8

STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves said say says talk talked talking discuss
    discussed episode podcast""".split()
)


def query_terms(query: str) -> list[str]:
    """The query's searchable words, lowercased, stop words dropped, first seen first."""
    words = re.findall(r"[^\W_]+", query.lower())
    seen: dict[str, None] = {}
    for word in words:
        if word not in STOP_WORDS:
            seen.setdefault(word, None)
    return list(seen)


def _sqlite_match(terms: Sequence[str]) -> str:
    return " OR ".join(f'"{t}"' for t in terms)


def _pg_tsquery(terms: Sequence[str]) -> str:
    return " | ".join(terms)


def selective_terms(conn: Connection, terms: Sequence[str]) -> list[str]:
    """The terms worth ranking by: those in at most :data:`COMMON_DOCS` documents (all
    of them when none is; else the rarest). Ranking costs time per matching row, and a
    term in thousands of rows adds little to bm25 (low IDF) but thousands of weak
    candidates; meaning is the vector side's job. Counting stops at the threshold, and
    every term is counted in one statement (one round trip)."""
    if len(terms) == 1:
        return list(terms)
    counts = _doc_frequencies(conn, terms)
    kept = [t for t in terms if counts[t] <= COMMON_DOCS]
    return kept or [min(terms, key=counts.__getitem__)]


def _doc_frequencies(conn: Connection, terms: Sequence[str]) -> dict[str, int]:
    parts, params = [], {"cap": COMMON_DOCS + 1}
    for n, term in enumerate(terms):
        if conn.dialect.name == "sqlite":
            sql = f"SELECT 1 FROM search_fts WHERE search_fts MATCH :t{n} LIMIT :cap"
            params[f"t{n}"] = _sqlite_match([term])
        else:
            sql = (
                f"SELECT 1 FROM search_docs WHERE {PG_TSVECTOR} @@ "
                f"to_tsquery('english', :t{n}) LIMIT :cap"
            )
            params[f"t{n}"] = _pg_tsquery([term])
        parts.append(f"(SELECT count(*) FROM ({sql}) AS m{n}) AS c{n}")
    row = conn.execute(text("SELECT " + ", ".join(parts)), params).one()
    return {term: int(row[n]) for n, term in enumerate(terms)}


def keyword_ranking(
    conn: Connection,
    terms: Sequence[str],
    filters: Filters,
    limit: int,
    allowed: set[str] | None = None,
) -> list[int]:
    """Ids of the ``limit`` best keyword matches that pass ``filters``, best first.

    With a filter, the unfiltered ranking is read with headroom (:data:`FILTER_HEADROOM`
    × ``limit``) and the allowed episodes (``allowed``, the filter's episode keys) kept;
    only when that leaves under a quarter of ``limit`` does the database join every
    match to ``episodes`` (a selective filter: a tenant with few shows).
    """
    if not terms:
        return []
    terms = selective_terms(conn, terms)
    if not filters.active:
        return _ranked(conn, terms, limit)
    if allowed is not None:
        wide = _ranked(conn, terms, limit * FILTER_HEADROOM)
        owners = dict(
            conn.execute(select(DOCS.c.id, DOCS.c.episode_key).where(DOCS.c.id.in_(wide))).all()
        )
        kept = [i for i in wide if owners.get(i) in allowed]
        # a quarter of the depth is plenty for the fusion (the page shows ten hits)
        if len(kept) >= limit // 4 or len(wide) < limit * FILTER_HEADROOM:
            return kept[:limit]
    query, params = _ranking_query(conn, terms)
    query = query.join(EPISODES, EPISODES.c.episode_key == DOCS.c.episode_key).where(
        filters.condition()
    )
    return list(conn.execute(query.limit(limit), params).scalars())


def _ranked(conn: Connection, terms: Sequence[str], limit: int) -> list[int]:
    if conn.dialect.name == "sqlite":
        # FTS5 orders by its own ``rank`` column inside the module, without joining or
        # sorting every match in SQL.
        sql = text(
            "SELECT rowid FROM search_fts WHERE search_fts MATCH :match "
            f"AND rank MATCH '{SQLITE_RANK}' ORDER BY rank LIMIT :limit"
        )
        return list(conn.execute(sql, {"match": _sqlite_match(terms), "limit": limit}).scalars())
    query, params = _ranking_query(conn, terms)
    return list(conn.execute(query.limit(limit), params).scalars())


def _ranking_query(conn: Connection, terms: Sequence[str]) -> tuple[Any, dict[str, str]]:
    if conn.dialect.name == "sqlite":
        query = (
            select(DOCS.c.id)
            .select_from(DOCS)
            .join(FTS, FTS.c.rowid == DOCS.c.id)
            .where(literal_column("search_fts").op("MATCH")(bindparam("match")))
            .order_by(literal_column(SQLITE_BM25), DOCS.c.id)
        )
        return query, {"match": _sqlite_match(terms)}
    tsvector = literal_column(PG_TSVECTOR)
    tsquery = func.to_tsquery(literal_column("'english'"), bindparam("tsquery"))
    query = (
        select(DOCS.c.id)
        .where(tsvector.op("@@")(tsquery))
        .order_by(func.ts_rank_cd(tsvector, tsquery).desc(), DOCS.c.id)
    )
    return query, {"tsquery": _pg_tsquery(terms)}


def highlights(conn: Connection, terms: Sequence[str], ids: Sequence[int]) -> dict[int, str]:
    """Snippets of the docs in ``ids`` that match ``terms``, matches marked «like this».
    Docs that match no term (found by meaning alone) are absent: see :func:`lead`.

    The database says which words match (its own stemming: FTS5 ``highlight`` or
    ``ts_headline`` with ``HighlightAll``, over the whole text); :func:`snippet` cuts the
    window, the same for both, so SQLite and Postgres show the same snippet."""
    if not terms or not ids:
        return {}
    id_list = ", ".join(str(int(i)) for i in ids)  # ints: safe to inline
    if conn.dialect.name == "sqlite":
        sql = text(
            f"SELECT rowid AS id, highlight(search_fts, 1, '{MARK_START}', '{MARK_END}') "
            f"AS body, highlight(search_fts, 0, '{MARK_START}', '{MARK_END}') AS title "
            f"FROM search_fts WHERE search_fts MATCH :match AND rowid IN ({id_list})"
        )
        rows = conn.execute(sql, {"match": _sqlite_match(terms)}).all()
    else:
        options = f"StartSel={MARK_START}, StopSel={MARK_END}, HighlightAll=true"
        sql = text(
            "SELECT id, ts_headline('english', body, q, :options) AS body, "
            "ts_headline('english', title, q, :options) AS title "
            "FROM search_docs, to_tsquery('english', :tsquery) AS q "
            f"WHERE id IN ({id_list}) AND {PG_TSVECTOR} @@ q"
        )
        rows = conn.execute(sql, {"tsquery": _pg_tsquery(terms), "options": options}).all()
    return {r.id: snippet(_best(r.body or "", r.title or "")) for r in rows}


def _best(body: str, title: str) -> str:
    # A match only in the title leaves the body unmarked: show the title's.
    if MARK_START in body or MARK_START not in title:
        return body
    return title


def snippet(marked: str, words: int = SNIPPET_WORDS) -> str:
    """The ``words``-word window of ``marked`` (a text with its matches «marked») that
    holds the most different matched words (then the most matches; the first such),
    starting up to a quarter of the window before its first match; "… " before and
    " …" after where text was cut. One rule for every database."""
    parts = marked.split()  # also folds the newlines between a node's summary and points
    if len(parts) <= words:
        return " ".join(parts)
    found = [_MARKED.findall(part) for part in parts]
    best, best_score = 0, (-1, -1)
    for begin in range(len(parts) - words + 1):
        inside = [m.lower() for f in found[begin : begin + words] for m in f]
        score = (len(set(inside)), len(inside))
        if score > best_score:
            best, best_score = begin, score
    hits = [i for i in range(best, best + words) if found[i]]
    if hits:
        first, last = hits[0], hits[-1]
        lead_in = min(words // 4, words - (last - first + 1))
        best = max(0, min(first - lead_in, len(parts) - words))
    shown = " ".join(parts[best : best + words])
    return ("… " if best > 0 else "") + shown + (" …" if best + words < len(parts) else "")


_MARKED = re.compile(f"{MARK_START}([^{MARK_END}]*){MARK_END}")


def lead(body: str, words: int = SNIPPET_WORDS) -> str:
    """The first ``words`` words of ``body`` (the snippet of a hit found by meaning)."""
    parts = body.split()  # also folds the newlines between a node's summary and points
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")


def strip_marks(snippet: str) -> str:
    return snippet.replace(MARK_START, "").replace(MARK_END, "")
