"""Story clusters: topics of different episodes about the same subject, grouped.

Average-linkage agglomerative clustering on cosine similarity, stopped when the two
closest clusters are on average less similar than the threshold. Average linkage,
not single linkage (connected components of the "similar" graph): one topic that is a
bit like two stories would chain them into one; here every member of a merged cluster
has to be close, on average, to every member of the other. The threshold was tuned on
a labelled set (bench/digest_threshold.py, docs/digest.md).

Two choices on top, both measured on the labelled set and on the test corpus
(docs/digest.md):

- A topic is represented by its index vector ("title. summary", from ``index.npz``)
  plus the vector of its summary alone, normalised (:func:`story_vectors`): extractive
  titles are keyphrase lists ("Processors count and Analysts expect") that pull
  unrelated topics together; the summary carries the story.
- Topics of the same show are ``SAME_FEED_PENALTY`` less alike: one show's topics
  share hosts, vocabulary and framing without being one story. Stories are what
  *different* shows tell; a show's own follow-up still joins when it is clearly closer.

Pure functions over numpy arrays: no I/O, no model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

# Tuned with bench/digest_threshold.py on bench/data/stories (docs/digest.md).
DEFAULT_THRESHOLD = 0.45
SAME_FEED_PENALTY = 0.2


def story_vectors(index_vectors: Any, summary_vectors: Any) -> Any:
    """Unit vectors of ``index + summary`` per row (either alone where the other is 0)."""
    import numpy as np

    mixed = np.asarray(index_vectors, dtype=np.float32) + np.asarray(
        summary_vectors, dtype=np.float32
    )
    norms = np.linalg.norm(mixed, axis=1, keepdims=True)
    return mixed / np.clip(norms, 1e-12, None)


def cluster(
    vectors: Any,
    threshold: float = DEFAULT_THRESHOLD,
    groups: Sequence[Hashable] | None = None,
    same_group_penalty: float = SAME_FEED_PENALTY,
) -> list[int]:
    """A cluster label per row of ``vectors`` (unit vectors, so dot = cosine); rows of
    the same ``groups`` value (a feed) count ``same_group_penalty`` less similar.

    Labels are numbered in order of each cluster's first row, so the result does not
    depend on the order merges happen in.
    """
    import numpy as np

    n = len(vectors)
    if n == 0:
        return []
    x = np.asarray(vectors, dtype=np.float32)
    sim = x @ x.T
    if groups is not None:
        if len(groups) != n:
            raise ValueError(f"{len(groups)} groups for {n} vectors")
        codes = {g: i for i, g in enumerate(dict.fromkeys(groups))}
        g = np.array([codes[v] for v in groups])
        sim[g[:, None] == g[None, :]] -= same_group_penalty
    np.fill_diagonal(sim, -np.inf)
    sizes = np.ones(n, dtype=np.float32)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    # Each row's most similar other cluster, kept up to date, so a merge costs O(n)
    # instead of a search of the whole matrix.
    best = np.argmax(sim, axis=1)
    best_sim = sim[np.arange(n), best]
    while len(members) > 1:
        i = int(np.argmax(best_sim))
        j = int(best[i])
        if not best_sim[i] >= threshold:  # also stops on -inf / nan
            break
        # Average linkage (UPGMA): the mean similarity between the members of two
        # clusters is the size-weighted mean of the merged halves' rows.
        merged = (sizes[i] * sim[i] + sizes[j] * sim[j]) / (sizes[i] + sizes[j])
        merged[i] = merged[j] = -np.inf
        sim[i, :] = merged
        sim[:, i] = merged
        sim[j, :] = -np.inf
        sim[:, j] = -np.inf
        sizes[i] += sizes[j]
        members[i].extend(members.pop(j))
        best_sim[j] = -np.inf
        # Rows whose best partner was i or j look again; the others only need to know
        # whether the merged cluster beats their current best.
        stale = np.flatnonzero((best == i) | (best == j))
        for k in [i, *stale.tolist()]:
            if k != j:
                best[k] = int(np.argmax(sim[k]))
                best_sim[k] = sim[k, best[k]]
        better = merged > best_sim
        better[[i, j]] = False
        best[better] = i
        best_sim[better] = merged[better]
    labels = [0] * n
    for label, rows in enumerate(sorted(members.values(), key=min)):
        for row in rows:
            labels[row] = label
    return labels


def central(vectors: Any, rows: Sequence[int]) -> tuple[int, list[float]]:
    """The row of ``rows`` most similar on average to the others, and each row's mean
    similarity to the others (1.0 for a cluster of one)."""
    import numpy as np

    x = np.asarray(vectors, dtype=np.float32)[list(rows)]
    if len(rows) == 1:
        return rows[0], [1.0]
    sim = x @ x.T
    means = (sim.sum(axis=1) - np.diag(sim)) / (len(rows) - 1)
    return rows[int(np.argmax(means))], [float(m) for m in means]


@dataclass(frozen=True)
class PairScores:
    """Pairwise precision, recall and F1 of a clustering against gold labels."""

    precision: float
    recall: float
    f1: float
    true_pairs: int
    predicted_pairs: int
    gold_pairs: int


def pairwise_f1(
    predicted: Sequence[Hashable | None], gold: Sequence[Hashable | None]
) -> PairScores:
    """Pairwise scores: a pair of items is positive when both share a label. ``None``
    is an item alone (a singleton topic, or a topic in no reported story)."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predicted labels for {len(gold)} gold labels")

    def own(labels: Sequence[Hashable | None]) -> list[Hashable]:
        return [("alone", i) if label is None else label for i, label in enumerate(labels)]

    pred, true = own(predicted), own(gold)

    def pairs(counts: Counter[Any]) -> int:
        return sum(c * (c - 1) // 2 for c in counts.values())

    both = pairs(Counter(zip(pred, true)))
    n_pred, n_gold = pairs(Counter(pred)), pairs(Counter(true))
    precision = both / n_pred if n_pred else 1.0
    recall = both / n_gold if n_gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PairScores(precision, recall, f1, both, n_pred, n_gold)
