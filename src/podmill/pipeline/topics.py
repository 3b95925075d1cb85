"""Extractive topic tree: TextTiling-style boundaries on sentence-window embeddings,
centrality summaries of whole sentences, and phrase or keyphrase titles. Pure functions
over numpy arrays; deterministic for the same input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from podmill.pipeline import keyphrases, keypoints, titles
from podmill.sentences import Sentence, at_boundary, complete, dehedge
from podmill.settings import TopicSettings


@dataclass(frozen=True)
class Span:
    """A run of sentences ``[first, last)`` that forms one topic."""

    first: int
    last: int


def window_texts(sentences: Sequence[Sentence], size: int) -> list[str]:
    """Each sentence with its neighbours, centred (``size`` sentences per window)."""
    half = max(0, size // 2)
    texts = []
    for i in range(len(sentences)):
        lo, hi = max(0, i - half), min(len(sentences), i + half + 1)
        texts.append(" ".join(s.text for s in sentences[lo:hi]))
    return texts


def gap_scores(windows: np.ndarray, block: int) -> np.ndarray:
    """Cosine similarity of the blocks before and after each gap ``g`` (between g-1 and g).

    Index 0 is unused (no gap before the first sentence); length = number of sentences.
    """
    n = len(windows)
    scores = np.ones(n, dtype=np.float64)
    for g in range(1, n):
        left = windows[max(0, g - block) : g].mean(axis=0)
        right = windows[g : g + block].mean(axis=0)
        denom = float(np.linalg.norm(left) * np.linalg.norm(right)) or 1.0
        scores[g] = float(left @ right) / denom
    return scores


def depth_scores(scores: np.ndarray) -> np.ndarray:
    """TextTiling depth: how far a gap sits below the peaks on both sides.

    Zero everywhere but at valleys (local minima), the only places a boundary can go.
    """
    n = len(scores)
    depth = np.zeros(n, dtype=np.float64)
    for g in range(1, n):
        if (g > 1 and scores[g] > scores[g - 1]) or (g < n - 1 and scores[g] > scores[g + 1]):
            continue
        left_peak = scores[g]
        i = g - 1
        while i >= 1 and scores[i] >= left_peak:
            left_peak = scores[i]
            i -= 1
        right_peak = scores[g]
        j = g + 1
        while j < n and scores[j] >= right_peak:
            right_peak = scores[j]
            j += 1
        depth[g] = (left_peak - scores[g]) + (right_peak - scores[g])
    return depth


def choose_boundaries(
    sentences: Sequence[Sentence],
    depth: np.ndarray,
    *,
    begin: int,
    end: int,
    min_seconds: float,
    max_parts: int,
    cutoff: float,
) -> list[int]:
    """Gaps inside ``(begin, end)``, deepest first, that keep every part long enough."""
    if max_parts < 2 or end - begin < 2:
        return []
    # Only valleys (local minima of the gap score) can be boundaries, as in TextTiling.
    order = sorted(
        (g for g in range(begin + 1, end) if _is_valley(depth, g)), key=lambda g: (-depth[g], g)
    )
    chosen: list[int] = []
    for g in order:
        if depth[g] < cutoff or len(chosen) + 1 >= max_parts:
            break
        cuts = sorted([*chosen, g])
        edges = [begin, *cuts, end]
        if all(_long_enough(sentences, a, b, min_seconds) for a, b in zip(edges, edges[1:])):
            chosen.append(g)
    return sorted(chosen)


def _is_valley(depth: np.ndarray, g: int) -> bool:
    return bool(depth[g] > 0)  # depth_scores leaves non-valleys at zero


def refine(vectors: np.ndarray, g: int, begin: int, end: int, reach: int = 2) -> int:
    """Move a boundary up to ``reach`` sentences so that each nearby sentence sits with
    the side it resembles (windows blur a boundary by about a sentence each way)."""
    lo, hi = max(begin + 1, g - reach), min(end - 1, g + reach)
    left = vectors[max(begin, lo - 4) : lo]
    right = vectors[hi + 1 : min(end, hi + 5)]
    if len(left) == 0 or len(right) == 0:
        return g
    lc, rc = _unit(left.mean(axis=0)), _unit(right.mean(axis=0))
    near = vectors[lo - 1 : hi + 1]  # sentences lo-1 .. hi
    to_left, to_right = near @ lc, near @ rc
    best, best_score = g, -np.inf
    for c in range(lo, hi + 1):
        k = c - (lo - 1)
        score = float(to_left[:k].sum() + to_right[k:].sum())
        if score > best_score + 1e-9 or (abs(score - best_score) <= 1e-9 and c == g):
            best, best_score = c, score
    return best


def _long_enough(sentences: Sequence[Sentence], first: int, last: int, min_seconds: float) -> bool:
    if last - first < 2:
        return False
    start = 0.0 if first == 0 else sentences[first].start
    end = sentences[last - 1].end
    return end - start >= min_seconds


def depth_cutoff(depth: np.ndarray) -> float:
    """TextTiling's liberal cutoff (mean - std/2 over valleys), never below a small floor."""
    valleys = depth[depth > 0]
    if len(valleys) == 0:
        return math.inf
    return max(0.02, float(valleys.mean() - valleys.std() / 2))


def max_topics(duration: float, density: float) -> int:
    """Outline size grows with the square root of length: ~3 for 3 min, ~15 for an hour."""
    return max(1, math.ceil(density * math.sqrt(max(duration, 0.0) / 60.0)))


def segment_l1(
    sentences: Sequence[Sentence],
    windows: np.ndarray,
    vectors: np.ndarray,
    duration: float,
    settings: TopicSettings,
) -> list[Span]:
    """L1 topics covering every sentence (``windows``: window vectors, ``vectors``:
    sentence vectors)."""
    n = len(sentences)
    if n < 4:
        return [Span(0, n)] if n else []
    depth = depth_scores(gap_scores(windows, settings.block_windows))
    cuts = choose_boundaries(
        sentences,
        depth,
        begin=0,
        end=n,
        min_seconds=settings.min_topic_seconds,
        max_parts=max_topics(duration, settings.topic_density),
        cutoff=depth_cutoff(depth[1:]),
    )
    edges = _refined([0, *cuts, n], sentences, vectors, settings.min_topic_seconds)
    return [Span(a, b) for a, b in zip(edges, edges[1:])]


def _refined(
    edges: list[int], sentences: Sequence[Sentence], vectors: np.ndarray, min_seconds: float
) -> list[int]:
    out = list(edges)
    for i in range(1, len(out) - 1):
        moved = refine(vectors, out[i], out[i - 1], out[i + 1])
        trial = [*out[:i], moved, *out[i + 1 :]]
        if all(
            _long_enough(sentences, a, b, min_seconds)
            for a, b in zip(trial[i - 1 : i + 1], trial[i : i + 2])
        ):
            out = trial
    return out


def coherence(windows: np.ndarray, span: Span) -> float:
    """Mean similarity of a topic's windows to their centroid (1 = one idea throughout)."""
    part = windows[span.first : span.last]
    centroid = _unit(part.mean(axis=0))
    return float((part @ centroid).mean())


def should_split(
    sentences: Sequence[Sentence], windows: np.ndarray, span: Span, settings: TopicSettings
) -> tuple[bool, str]:
    """Whether ``decide`` sends a topic to ``subsegment``, with the reason."""
    length = sentences[span.last - 1].end - sentences[span.first].start
    if span.last - span.first < 4 or length < 2 * settings.min_subtopic_seconds:
        return False, f"too short to split ({length:.0f}s, {span.last - span.first} sentences)"
    if length > settings.long_topic_seconds:
        return True, f"long ({length:.0f}s > {settings.long_topic_seconds:.0f}s)"
    score = coherence(windows, span)
    if score < settings.coherence_threshold:
        return True, f"mixed (coherence {score:.2f} < {settings.coherence_threshold:.2f})"
    return False, f"coherent ({score:.2f}) and {length:.0f}s long"


def segment_l2(
    sentences: Sequence[Sentence],
    windows: np.ndarray,
    vectors: np.ndarray,
    span: Span,
    settings: TopicSettings,
) -> list[Span]:
    """Sub-topics of one L1 topic: at least two when any valid split exists."""
    depth = depth_scores(gap_scores(windows, max(2, settings.block_windows // 2)))
    length = sentences[span.last - 1].end - sentences[span.first].start
    limit = max(2, min(8, int(length // settings.min_subtopic_seconds)))
    inner = depth[span.first + 1 : span.last]

    def cuts_within(max_parts: int, cutoff: float) -> list[int]:
        return choose_boundaries(
            sentences,
            depth,
            begin=span.first,
            end=span.last,
            min_seconds=settings.min_subtopic_seconds,
            max_parts=max_parts,
            cutoff=cutoff,
        )

    cuts = cuts_within(limit, depth_cutoff(inner))
    if not cuts:  # decide asked for a split: take the deepest gap that keeps both parts valid
        cuts = cuts_within(2, -math.inf)
    edges = _refined(
        [span.first, *cuts, span.last], sentences, vectors, settings.min_subtopic_seconds
    )
    return [Span(a, b) for a, b in zip(edges, edges[1:])]


@dataclass
class NodeText:
    title: str
    summary: str
    key_points: list[str]
    keywords: list[str]


def summarise(
    sentences: Sequence[Sentence],
    sentence_vectors: np.ndarray,
    span: Span,
    embed: Callable[[Sequence[str]], Any],
    settings: TopicSettings,
    *,
    background: np.ndarray | None = None,
) -> NodeText:
    """Title, summary (the most central whole sentences, in order, without their
    opening fillers) and key points (central + diverse, never filler).

    ``background``: the episode's centroid, which titles of its parts steer away from.
    The title comes from ``settings.titles`` (:mod:`podmill.pipeline.titles`).
    """
    part = sentence_vectors[span.first : span.last]
    texts = [s.text for s in sentences[span.first : span.last]]
    centroid = _unit(part.mean(axis=0))
    central = part @ centroid
    count = max(1, min(settings.summary_sentences, math.ceil(len(texts) / 3)))
    by_centrality = sorted(range(len(texts)), key=lambda i: (-central[i], i))
    summary_idx = sorted(_whole_first(sentences, span, by_centrality, count))
    # Filler ("Yeah.", "So you can start.") is never a key point, however central, and a
    # key point starts where a sentence starts.
    shown = [_shorten(dehedge(text), 25) for text in texts]
    filler = {i for i, text in enumerate(shown) if not keypoints.is_key_point(text)}
    partial = {i for i in range(len(texts)) if not at_boundary(sentences, span.first + i)}
    if len(partial) == len(texts):
        partial = set()  # no sentence ends with punctuation: nothing to tell apart
    skip = set(summary_idx) | filler | partial
    points_idx = _mmr(part, central, settings.key_points, exclude=skip)
    if not points_idx:
        points_idx = [i for i in summary_idx if i not in filler]
    phrases = keyphrases.rank(texts, centroid, embed, background=background)
    if titles.resolve(settings.titles) == "phrases":
        title = titles.title(texts, part, centroid, embed, background=background)
        fallback = titles.title_case(phrases[0]) if phrases else ""
    else:
        title = keyphrases.title_from(phrases)
        fallback = ""
    return NodeText(
        title=title or fallback or _shorten(texts[by_centrality[0]], 8),
        summary=" ".join(dehedge(texts[i]) for i in summary_idx),
        key_points=[shown[i] for i in sorted(points_idx)],
        keywords=phrases,
    )


def _whole_first(
    sentences: Sequence[Sentence], span: Span, by_centrality: list[int], count: int
) -> list[int]:
    """The ``count`` most central sentences of ``span`` (indices into it), whole ones
    first: those that start and end a sentence, then those that start one; a unit cut
    mid-sentence (at a pause, a speaker change or the length cap) only when no other is
    left, as in a transcript without punctuation."""

    def tier(i: int) -> int:
        k = span.first + i
        return 0 if complete(sentences, k) else 1 if at_boundary(sentences, k) else 2

    position = {i: n for n, i in enumerate(by_centrality)}
    tiers = {i: tier(i) for i in by_centrality}
    ranked = sorted(by_centrality, key=lambda i: (tiers[i], position[i]))
    allowed = max(tiers[ranked[0]], 1) if ranked else 0
    return [i for i in ranked if tiers[i] <= allowed][:count]


def centroid(vectors: np.ndarray) -> np.ndarray:
    return _unit(vectors.mean(axis=0))


def most_central(sentences: Sequence[Sentence], vectors: np.ndarray, span: Span) -> str:
    """The span's most central whole sentence (:func:`_whole_first`), without fillers."""
    part = vectors[span.first : span.last]
    central = part @ _unit(part.mean(axis=0))
    by_centrality = sorted(range(len(part)), key=lambda i: (-central[i], i))
    (best,) = _whole_first(sentences, span, by_centrality, 1)
    return dehedge(sentences[span.first + best].text)


def _mmr(vectors: np.ndarray, relevance: np.ndarray, k: int, exclude: set[int]) -> list[int]:
    pool = [i for i in range(len(vectors)) if i not in exclude]
    chosen: list[int] = []
    while pool and len(chosen) < k:

        def score(i: int) -> tuple[float, int]:
            redundancy = max((float(vectors[i] @ vectors[j]) for j in chosen), default=0.0)
            return (0.6 * float(relevance[i]) - 0.4 * redundancy, -i)

        best = max(pool, key=score)
        chosen.append(best)
        pool.remove(best)
    return chosen


def _shorten(text: str, max_words: int) -> str:
    words = text.split()
    if len(words) <= max_words:
        return text
    return " ".join(words[:max_words]).rstrip(",;:") + "…"


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector)) or 1.0
    return vector / norm
