"""The vector index is swapped while queries run: no query fails, none sees a partial
index. Readers (threads, two searchers) query without pause while a writer replaces an
episode's rows and builds new generations, in this process and with
``podmill index rebuild`` in another; every answer must equal the quiet answer."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from podmill.search import store, vectors
from podmill.search.searcher import Searcher
from podmill.storage.db import make_engine

from support.cli import run_cli

QUERIES = ["grind the coffee beans", "rover on Mars", "property tax rebate", "water the plants"]


def _signature(hits: list[Any]) -> list[tuple[str, str, str, float, float]]:
    # Row ids change when an episode is indexed again; what a user sees must not.
    return [(h.episode_key, h.kind, h.node_id, h.start, h.score) for h in hits]


def test_queries_during_repeated_swaps_never_fail_or_see_a_partial_index(
    loaded: tuple[str, dict[str, int]], corpus: list[Any], tmp_path: Path, embed: Any
) -> None:
    url = loaded[0]
    data = tmp_path / "data"
    engine = make_engine(url)
    cache: dict[str, Any] = {}
    lock = threading.Lock()

    def cached_embed(texts: list[str]) -> Any:  # the model is exercised elsewhere
        with lock:
            if texts[0] not in cache:
                cache[texts[0]] = embed(texts)
            return cache[texts[0]]

    def searcher() -> Searcher:
        return Searcher(engine, data, embed=cached_embed, auto_rebuild="off", ivf_min_docs=1)

    first = searcher()
    first.rebuild()
    expected = {q: _signature(first.search(q, limit=8)) for q in QUERIES}
    assert all(expected.values())

    stop = threading.Event()
    failures: list[str] = []
    seen: set[str] = set()
    answered = [0]

    def read(reader: Searcher) -> None:
        while not stop.is_set():
            for query in QUERIES:
                try:
                    got = _signature(reader.search(query, limit=8))
                except Exception as exc:  # any failure is the test's failure
                    failures.append(f"{query}: {exc!r}")
                    continue
                if got != expected[query]:
                    failures.append(f"{query}: {got} != {expected[query]}")
                generation = reader.generation()
                if generation is not None:
                    seen.add(generation.name)
                answered[0] += 1

    second = searcher()
    readers = [threading.Thread(target=read, args=(r,)) for r in (first, first, second)]
    for thread in readers:
        thread.start()
    try:
        coffee = next(ep for ep in corpus if ep.key == "home002coff")
        for round_ in range(4):
            with engine.begin() as conn:  # the episode indexed again: new row ids
                store.replace_episode(conn, coffee.key, f"fp{round_}", coffee.docs)
            time.sleep(0.3)  # queries meanwhile: the generation names the replaced rows
            builder = Searcher(
                engine, data, embed=cached_embed, ivf_min_docs=1 if round_ % 2 else 10**9
            )
            builder.rebuild()
        if url.startswith("sqlite"):  # another process swaps (seconds of imports: once)
            result = run_cli("index", "rebuild", "--vectors-only", "--db", url, "--data-dir", data)
            assert result.code == 0, result.stderr
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=60)
        engine.dispose()
    assert failures == []
    assert answered[0] > 20
    assert len(seen) >= 3  # the readers did cross swaps
    # pruned: the live generation and one before it
    folder = first.folder
    live = vectors.current_name(folder)
    assert live is not None and (folder / live / "meta.json").is_file()
    assert len([p for p in folder.glob("gen-*") if p.is_dir()]) <= vectors.KEEP_GENERATIONS


def test_a_build_that_died_is_never_read(
    loaded: tuple[str, dict[str, int]], tmp_path: Path, embed: Any
) -> None:
    engine = make_engine(loaded[0])
    try:
        reader = Searcher(engine, tmp_path / "data", embed=embed, auto_rebuild="off")
        live = reader.rebuild()
        # a build killed halfway: its folder is there, CURRENT never named it
        (reader.folder / "gen-9-9.tmp").mkdir()
        (reader.folder / "gen-9-9.tmp" / "ids.npy").write_bytes(b"\x93NUMPY half")
        # CURRENT names a generation another process has just pruned
        (reader.folder / "CURRENT").write_text("gen-0-0")
        fresh = Searcher(engine, tmp_path / "data", embed=embed, auto_rebuild="off")
        assert fresh.search("rover on Mars", limit=3)  # exact scan of every row
        (reader.folder / "CURRENT").write_text(live.name)
        assert fresh.generation() is not None and fresh.generation().name == live.name
    finally:
        engine.dispose()
