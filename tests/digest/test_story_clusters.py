"""Planted same-story topics across shows are clustered (pairwise F1 >= 0.8).

The test corpus (tests/fixtures/corpus, docs/corpus.md) has three feeds and 20+
episodes processed by the real pipeline (``podmill run``: publisher transcripts and
espeak-ng audio through Whisper, extractive topic trees, MiniLM index). Some topics
tell the same story in different shows (a labelled story id per topic); the rest are
the shows' own. ``podmill digest --format json`` over all of it gives story clusters;
each labelled topic takes the story of the L1 node that overlaps it most in its
episode (a node in no story: alone), and pairs of labelled topics are scored.
"""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from podmill.cli import app
from podmill.digest.stories import pairwise_f1

from support.corpus import ProcessedCorpus


def corpus_digest(processed: ProcessedCorpus) -> dict[str, Any]:
    oldest = max(e.days_ago for e in processed.corpus.episodes)
    result = CliRunner().invoke(
        app,
        [
            "digest", "--since", f"{int(oldest) + 2}d", "--format", "json",
            "--data-dir", str(processed.data_dir),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.exception
    return json.loads(result.stdout)


def test_planted_stories_are_clustered(processed_corpus: ProcessedCorpus) -> None:
    doc = corpus_digest(processed_corpus)
    assert doc["stats"]["episodes"] == len(processed_corpus.corpus.episodes)
    story_of = {
        (t["episode_key"], t["node_id"]): story["id"]
        for story in doc["stories"]
        for t in story["topics"]
    }
    predicted: list[str | None] = []
    gold: list[str | None] = []
    for episode in processed_corpus.corpus.episodes:
        key = processed_corpus.episode_keys[episode.guid]
        nodes = processed_corpus.tree(episode.guid)["root"]["children"]
        for topic in episode.topics:
            best = max(nodes, key=lambda n: topic.overlap(n["start"], n["end"]))
            predicted.append(story_of.get((key, best["id"])))
            gold.append(topic.story)
    scores = pairwise_f1(predicted, gold)
    detail = [(g, p) for g, p in zip(gold, predicted) if g or p]
    assert scores.f1 >= 0.8, (scores, detail)
    assert all(s["episodes"] >= 2 for s in doc["stories"])
