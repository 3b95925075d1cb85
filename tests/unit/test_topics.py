"""Topic segmentation and summaries on controlled inputs."""

from __future__ import annotations

import numpy as np
import pytest

from podmill.pipeline import keyphrases, topics
from podmill.sentences import Sentence
from podmill.settings import TopicSettings


def _sentences(n: int, seconds: float = 6.0) -> list[Sentence]:
    return [
        Sentence(i, f"sentence {i}.", i * seconds, (i + 1) * seconds - 0.5, i * 5, i * 5 + 5)
        for i in range(n)
    ]


def _clustered(sizes: list[int], dim: int = 16, noise: float = 0.15, seed: int = 0) -> np.ndarray:
    """Unit vectors around one random direction per cluster, clusters in sequence."""
    rng = np.random.default_rng(seed)
    rows = []
    for size in sizes:
        centre = rng.normal(size=dim)
        for _ in range(size):
            v = centre / np.linalg.norm(centre) + noise * rng.normal(size=dim)
            rows.append(v / np.linalg.norm(v))
    return np.array(rows, dtype=np.float32)


def test_boundaries_fall_at_cluster_changes() -> None:
    vectors = _clustered([12, 10, 14])
    sentences = _sentences(36)
    spans = topics.segment_l1(sentences, vectors, vectors, 216.0, TopicSettings())
    assert [s.first for s in spans] == [0, 12, 22]
    assert spans[-1].last == 36


def test_min_topic_length_is_respected() -> None:
    vectors = _clustered([12, 2, 12])  # a 12-second blip in the middle
    sentences = _sentences(26)
    spans = topics.segment_l1(sentences, vectors, vectors, 156.0, TopicSettings())
    for span in spans:
        length = sentences[span.last - 1].end - (
            0 if span.first == 0 else sentences[span.first].start
        )
        assert length >= TopicSettings().min_topic_seconds


def test_one_idea_stays_one_topic() -> None:
    vectors = _clustered([30], noise=0.05)
    spans = topics.segment_l1(_sentences(30), vectors, vectors, 180.0, TopicSettings())
    assert len(spans) == 1


def test_topic_count_grows_with_sqrt_of_length() -> None:
    assert topics.max_topics(180, 2.0) == 4
    assert topics.max_topics(3600, 2.0) == 16
    assert topics.max_topics(10, 2.0) == 1


def test_decide_splits_long_or_mixed_topics() -> None:
    settings = TopicSettings()
    mixed = _clustered([5, 5, 5, 5])  # four unrelated threads woven into one "topic"
    sentences = _sentences(20)
    split, reason = topics.should_split(sentences, mixed, topics.Span(0, 20), settings)
    assert split and "mixed" in reason
    pure = _clustered([20], noise=0.05)
    split, reason = topics.should_split(sentences, pure, topics.Span(0, 20), settings)
    assert not split and "coherent" in reason
    long = _sentences(40, seconds=8.0)
    split, reason = topics.should_split(
        long, _clustered([40], noise=0.05), topics.Span(0, 40), settings
    )
    assert split and "long" in reason


def test_subsegments_tile_their_parent() -> None:
    vectors = _clustered([8, 8, 8])
    sentences = _sentences(24)
    parts = topics.segment_l2(sentences, vectors, vectors, topics.Span(0, 24), TopicSettings())
    assert parts[0].first == 0 and parts[-1].last == 24
    assert all(a.last == b.first for a, b in zip(parts, parts[1:]))
    assert len(parts) >= 2


def test_deterministic() -> None:
    vectors = _clustered([12, 10, 14], seed=3)
    sentences = _sentences(36)
    runs = {
        tuple(topics.segment_l1(sentences, vectors, vectors, 216.0, TopicSettings()))
        for _ in range(3)
    }
    assert len(runs) == 1


def test_keyphrase_candidates_skip_stopwords_and_numbers() -> None:
    counts, surfaces = keyphrases.candidates(
        ["We talked about the Mars rover and the rover's ninety cameras, you know."]
    )
    assert "mars rover" in counts and surfaces["mars rover"] == "Mars rover"
    assert not any(w in keyphrases.STOPWORDS for k in counts for w in k.split())
    assert not any("ninety" in k for k in counts)


@pytest.mark.slow
def test_summary_and_title_with_the_real_embedder() -> None:
    from podmill.ml.embed import get_embedder

    embed = get_embedder().embed
    texts = [
        "Grind your coffee beans right before brewing.",
        "A burr grinder gives an even grind size.",
        "Water for coffee should be just off the boil.",
        "Pour over brewing takes about three minutes.",
        "Fresh roasted coffee beans make the biggest difference.",
        "Espresso needs a very fine grind.",
    ]
    sentences = [Sentence(i, t, i * 5.0, i * 5.0 + 4, i, i + 1) for i, t in enumerate(texts)]
    vectors = embed(texts)
    node = topics.summarise(sentences, vectors, topics.Span(0, 6), embed, TopicSettings())
    assert "coffee" in node.title.lower() or "grind" in node.title.lower()
    # The summary is made of whole transcript sentences (2 of 6: a third, rounded up).
    picked = [t for t in texts if t in node.summary]
    assert len(picked) == 2 and " ".join(picked) == node.summary
    assert 1 <= len(node.key_points) <= TopicSettings().key_points
    assert node.title not in texts  # a title is a phrase, not a transcript sentence
