"""Tune the digest's story-clustering threshold on a labelled set of topic texts.

``bench/data/stories/topics.jsonl``: 54 topic texts ("title. summary", the text the
index stage embeds for every node) written for this purpose (CC0): 12 news stories,
each told by 3-4 different shows in their own words, and 17 singletons, several of them
near misses (cycling tips beside the bike-lane vote, mortgages beside the rate hike,
Jupiter's moons beside the Mars rover). Every text is its own episode, so a story is
any cluster of two or more.

Embeds them with the real MiniLM (podmill.ml.embed) the way the digest does (the
index vector of "title. summary" plus the summary's own vector; a show's own topics
``SAME_FEED_PENALTY`` less alike), then sweeps the threshold and prints pairwise
precision, recall and F1 per threshold for what podmill.digest.stories does, and side
by side three baselines: without the show penalty, on the index vector alone, and
single linkage (connected components of the "similar enough" graph, which chains
stories together).

    python bench/digest_threshold.py [--data bench/data/stories/topics.jsonl]
        [--from 0.2] [--to 0.8] [--step 0.025]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from podmill.digest.stories import (
    DEFAULT_THRESHOLD,
    SAME_FEED_PENALTY,
    cluster,
    pairwise_f1,
    story_vectors,
)
from podmill.ml.embed import get_embedder

DATA = Path(__file__).parent / "data" / "stories" / "topics.jsonl"


def single_linkage(vectors: np.ndarray, threshold: float, shows: list[str]) -> list[int]:
    """Connected components of the graph with an edge where cosine (less the show
    penalty) >= threshold."""
    n = len(vectors)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    sim = vectors @ vectors.T
    for i in range(n):
        for j in range(i + 1, n):
            penalty = SAME_FEED_PENALTY if shows[i] == shows[j] else 0.0
            if sim[i, j] - penalty >= threshold:
                parent[find(i)] = find(j)
    return [find(i) for i in range(n)]


def as_stories(labels: list[int]) -> list[int | None]:
    """Clusters of one are not stories (the digest reports only clusters of 2+)."""
    sizes = {label: labels.count(label) for label in set(labels)}
    return [label if sizes[label] > 1 else None for label in labels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--from", dest="low", type=float, default=0.2)
    parser.add_argument("--to", dest="high", type=float, default=0.8)
    parser.add_argument("--step", type=float, default=0.025)
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    gold = [row["story"] for row in rows]
    shows = [row["show"] for row in rows]
    embedder = get_embedder()
    index = embedder.embed([row["text"] for row in rows])  # what index.npz holds
    summaries = embedder.embed([row["text"].split(". ", 1)[1] for row in rows])
    vectors = story_vectors(index, summaries)
    stories = len({g for g in gold if g is not None})
    singles = sum(g is None for g in gold)
    print(f"{len(rows)} topics: {stories} stories, {singles} singletons ({args.data})")
    print(
        f"{'threshold':>9}  {'P':>6} {'R':>6} {'F1':>6}   {'no penalty':>10} "
        f"{'index only':>10} {'single link':>11}"
    )
    best: tuple[float, float] = (-1.0, 0.0)

    def score(labels: list[int]) -> float:
        return pairwise_f1(as_stories(labels), gold).f1

    for threshold in np.arange(args.low, args.high + 1e-9, args.step):
        t = float(threshold)
        ours = pairwise_f1(as_stories(cluster(vectors, t, groups=shows)), gold)
        no_penalty = score(cluster(vectors, t))
        index_only = score(cluster(index, t, groups=shows))
        single = score(single_linkage(vectors, t, shows))
        mark = "  <- default" if abs(t - DEFAULT_THRESHOLD) < 1e-6 else ""
        print(
            f"{t:9.3f}  {ours.precision:6.3f} {ours.recall:6.3f} {ours.f1:6.3f}   "
            f"{no_penalty:10.3f} {index_only:10.3f} {single:11.3f}{mark}"
        )
        best = max(best, (ours.f1, t))
    print(f"best F1 {best[0]:.3f} at threshold {best[1]:.3f}")
    # The F1 plateau's width matters as much as its peak: a threshold in the middle of
    # the plateau survives a different writing style (extractive vs LLM summaries).
    plateau = [
        float(t)
        for t in np.arange(args.low, args.high + 1e-9, args.step)
        if score(cluster(vectors, float(t), groups=shows)) >= best[0] - 0.05
    ]
    print(f"within 0.05 of the best: {min(plateau):.3f} .. {max(plateau):.3f}")


if __name__ == "__main__":
    main()
