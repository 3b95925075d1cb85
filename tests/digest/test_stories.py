"""Story clustering: average linkage as scipy computes it, the show penalty, pairwise F1."""

from __future__ import annotations

import numpy as np
import pytest

from podmill.digest.stories import central, cluster, pairwise_f1, story_vectors


def unit(rng: np.random.Generator, n: int, centres: int, noise: float) -> np.ndarray:
    base = rng.normal(size=(centres, 32))
    x = base[rng.integers(0, centres, n)] + rng.normal(size=(n, 32)) * noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def naive(x: np.ndarray, threshold: float, groups: list[int], penalty: float) -> list[int]:
    """Average linkage by the definition: mean pairwise (penalised) similarity."""
    sim = x.astype(np.float64) @ x.T.astype(np.float64)
    g = np.array(groups)
    sim -= penalty * (g[:, None] == g[None, :])
    clusters = [[i] for i in range(len(x))]
    while len(clusters) > 1:
        pairs = [
            (sim[np.ix_(a, b)].mean(), ia, ib)
            for ia, a in enumerate(clusters)
            for ib, b in enumerate(clusters)
            if ia < ib
        ]
        value, ia, ib = max(pairs)
        if value < threshold:
            break
        clusters[ia] = clusters[ia] + clusters.pop(ib)
    labels = [0] * len(x)
    for label, rows in enumerate(sorted(clusters, key=min)):
        for row in rows:
            labels[row] = label
    return labels


@pytest.mark.parametrize("seed", range(3))
def test_matches_the_definition_with_and_without_the_show_penalty(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = unit(rng, 20, 5, 0.8)
    groups = rng.integers(0, 4, 20).tolist()
    for threshold in (0.2, 0.4, 0.6):
        assert cluster(x, threshold, groups=groups, same_group_penalty=0.2) == naive(
            x, threshold, groups, 0.2
        )
        assert cluster(x, threshold) == naive(x, threshold, [0] * 20, 0.0)


def test_matches_scipy_average_linkage() -> None:
    hierarchy = pytest.importorskip("scipy.cluster.hierarchy")
    rng = np.random.default_rng(7)
    x = unit(rng, 120, 15, 0.7)
    for threshold in (0.3, 0.5, 0.7):
        ours = cluster(x, threshold)
        z = hierarchy.linkage(x.astype(np.float64), method="average", metric="cosine")
        theirs = hierarchy.fcluster(z, t=1 - threshold, criterion="distance")
        # Same partition (label numbers differ): every pair together in both or neither.
        assert pairwise_f1(ours, theirs.tolist()).f1 == pytest.approx(1.0)


def test_a_show_penalty_keeps_one_shows_topics_apart() -> None:
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([0.8, 0.6, 0.0])  # cosine 0.8 with a
    x = np.stack([a, b]).astype(np.float32)
    assert cluster(x, 0.7, groups=["show", "other"]) == [0, 0]
    assert cluster(x, 0.7, groups=["show", "show"], same_group_penalty=0.2) == [0, 1]
    assert cluster(x, 0.5, groups=["show", "show"], same_group_penalty=0.2) == [0, 0]


def test_chaining_does_not_merge_two_stories() -> None:
    # a ~ m and m ~ b, but a and b are unrelated: single linkage would join all three.
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    m = (a + b) / np.linalg.norm(a + b)  # cosine 0.707 with both
    x = np.stack([a, m, b]).astype(np.float32)
    labels = cluster(x, 0.6)
    assert len(set(labels)) == 2


def test_central_and_story_vectors() -> None:
    x = np.array([[1, 0], [0.9, 0.436], [0.6, 0.8]], dtype=np.float32)
    row, means = central(x, [0, 1, 2])
    assert row == 1 and len(means) == 3
    mixed = story_vectors(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert np.allclose(mixed, [[2**-0.5, 2**-0.5]])
    assert np.allclose(story_vectors(np.array([[0.0, 2.0]]), np.zeros((1, 2))), [[0, 1]])


def test_pairwise_f1() -> None:
    perfect = pairwise_f1(["x", "x", None, "y", "y"], ["s", "s", None, "t", "t"])
    assert (perfect.precision, perfect.recall, perfect.f1) == (1.0, 1.0, 1.0)
    merged = pairwise_f1(["x", "x", "x", "x"], ["s", "s", "t", "t"])
    assert (merged.true_pairs, merged.predicted_pairs, merged.gold_pairs) == (2, 6, 2)
    assert merged.precision == pytest.approx(1 / 3) and merged.recall == 1.0
    nothing = pairwise_f1([None, None, None], ["s", "s", None])
    assert (nothing.precision, nothing.recall, nothing.f1) == (1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="3 predicted labels for 2 gold"):
        pairwise_f1([1, 2, 3], [1, 2])
