"""Extractive titles from noun phrases and named entities (``topics.titles``).

``keyphrases`` (the titler without the ``phrases`` extra) joins the top two keyword
n-grams with "and": every title is "A and B", and the n-grams run across phrase
boundaries ("Americans ask and country"). ``phrases`` titles a node with a phrase its
speakers said: spaCy's noun chunks and named entities (:mod:`podmill.ml.phrases`),

1. trimmed of leading articles, possessives and fillers ("the city council" -> "city
   council"), 1-6 words with a noun in them;
2. ranked by **centrality** (cosine to the node's centroid, as keyphrases are) minus
   half their similarity to the episode's centroid (**distinctiveness**: sibling
   topics get different titles), nudged towards repeated phrases, named entities and
   2-4 words;
3. title-cased ("Protected Bike Lanes"; small words and words with capitals kept).

"A and B" only when the node really joins two things (:func:`joins`): the runner-up is
nearly as good as the best and unlike it, and the node's sentences fall into two
unlike groups, one nearer to each phrase. Otherwise the title is the best phrase alone.

``auto`` resolves to ``phrases`` where the extra is installed, else ``keyphrases``; the
resolved choice goes into the fingerprint and the job's settings (:func:`resolve`), so
trees made by different titlers never share a fingerprint.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from podmill.pipeline import keyphrases

MAX_WORDS = 6
CONTRAST = 0.5  # as keyphrases.rank: similarity to the whole episode costs half
POOL = 40
# The join rule (:func:`joins`; tests/unit/test_titles_leads.py).
JOIN_RATIO = 0.65
JOIN_REDUNDANT = 0.45
JOIN_SHARE = 0.25
JOIN_HALVES = 0.30

SMALL_WORDS = frozenset(
    "a an and as at but by for from in into nor of on or per the to vs via with".split()
)
# Nouns too vague to name a topic on their own ("a lot", "the thing", "this episode").
GENERIC = frozenset(
    """thing things stuff lot lots kind sort way ways bit bunch couple point points time
    times part parts people person guy guys folks question questions idea ideas yeah
    something everything anything nothing someone everyone episode show podcast today
    day days year years week weeks minute minutes second seconds moment end start
    number fact case reason example place side""".split()
)


def resolve(choice: str) -> str:
    """``phrases`` or ``keyphrases``: ``auto`` is ``phrases`` where the ``phrases`` extra
    is installed. An explicit choice is kept (``phrases`` without the extra fails where
    the titles are made, with one line naming the extra)."""
    if choice != "auto":
        return choice
    from podmill.ml import phrases

    return "phrases" if phrases.installed() else "keyphrases"


@dataclass(frozen=True)
class Candidate:
    text: str  # the commonest surface form
    score: float  # centrality - contrast * episode similarity + priors
    centrality: float
    vector: Any


def title(
    texts: Sequence[str],
    sentence_vectors: np.ndarray,
    centroid: np.ndarray,
    embed: Callable[[Sequence[str]], Any],
    *,
    background: np.ndarray | None = None,
) -> str:
    """The node's title from its phrases ("" when it has none)."""
    ranked = rank(texts, centroid, embed, background=background)
    if not ranked:
        return ""
    best = ranked[0]
    second = runner_up(ranked)
    if second is not None and joins(best, second, sentence_vectors):
        return f"{title_case(best.text)} and {title_case(second.text)}"
    return title_case(best.text)


def rank(
    texts: Sequence[str],
    centroid: np.ndarray,
    embed: Callable[[Sequence[str]], Any],
    *,
    background: np.ndarray | None = None,
) -> list[Candidate]:
    """The node's candidate phrases, best first."""
    from podmill.ml import phrases as phrase_model

    counts: Counter[str] = Counter()
    surfaces: dict[str, Counter[str]] = {}
    entities: set[str] = set()
    for found in phrase_model.extract(texts):
        for phrase in found:
            if not usable(phrase.words, phrase.content):
                continue
            key = _key(phrase.words)
            counts[key] += 1
            surfaces.setdefault(key, Counter())[phrase.text] += 1
            if phrase.entity:
                entities.add(key)
    if not counts:
        return []
    # Repeated and longer phrases make the shortlist the embedder then ranks.
    shortlist = sorted(counts, key=lambda k: (-(counts[k] * (1 + 0.3 * k.count(" "))), k))
    shortlist = shortlist[:POOL]
    shown = [_surface(surfaces[k]) for k in shortlist]
    vectors = np.asarray(embed(shown))
    centrality = vectors @ centroid
    score = centrality.copy()
    if background is not None:
        score = score - CONTRAST * (vectors @ background)
    for i, key in enumerate(shortlist):
        n = key.count(" ") + 1
        score[i] += 0.05 * math.log1p(counts[key] - 1) + _length_prior(n)
        if key in entities:
            score[i] += 0.02
    order = sorted(range(len(shortlist)), key=lambda i: (-score[i], shortlist[i]))
    return [Candidate(shown[i], float(score[i]), float(centrality[i]), vectors[i]) for i in order]


def usable(words: Sequence[str], content: Sequence[bool]) -> bool:
    """A phrase may title a node: 1-:data:`MAX_WORDS` words, a noun among them that is
    neither a stop word nor a vague one ("lot", "thing")."""
    if not words or len(words) > MAX_WORDS:
        return False
    meaningful = [
        w
        for w, noun in zip(words, content)
        if noun and w not in keyphrases.STOPWORDS and w not in GENERIC and len(w) > 1
    ]
    return bool(meaningful)


def _length_prior(n: int) -> float:
    # 2-4 words name a subject best; one word is often too vague, 5-6 a clause.
    return {1: -0.03, 2: 0.02, 3: 0.02, 4: 0.01}.get(n, -0.02)


def runner_up(ranked: Sequence[Candidate]) -> Candidate | None:
    """The best candidate after the first that shares no word with it."""
    words = _stems(ranked[0].text)
    for candidate in ranked[1:]:
        if not words & _stems(candidate.text):
            return candidate
    return None


def joins(best: Candidate, second: Candidate, sentence_vectors: np.ndarray) -> bool:
    """Whether the node is about both phrases ("A and B"). The node's sentences are
    split by which of the two phrases each is nearer to; the title joins them only
    when

    - the second scores at least :data:`JOIN_RATIO` of the first (both are central),
    - the phrases are unlike each other (cosine under :data:`JOIN_REDUNDANT`),
    - each has at least :data:`JOIN_SHARE` of the sentences, and
    - the two groups of sentences are unlike each other (their centroids' cosine under
      :data:`JOIN_HALVES`): the node has two subjects, not one named twice. On the
      benchmark's single-subject topics the groups' cosine is 0.46-0.75; on nodes made
      of two of those topics' halves, 0.00-0.25 (docs/quality.md).
    """
    if best.score <= 0 or second.score < JOIN_RATIO * best.score:
        return False
    if float(best.vector @ second.vector) >= JOIN_REDUNDANT or len(sentence_vectors) < 2:
        return False
    nearer_best = (sentence_vectors @ best.vector) >= (sentence_vectors @ second.vector)
    share = float(nearer_best.mean())
    if min(share, 1.0 - share) < JOIN_SHARE:
        return False
    halves = float(
        _unit(sentence_vectors[nearer_best].mean(axis=0))
        @ _unit(sentence_vectors[~nearer_best].mean(axis=0))
    )
    return halves < JOIN_HALVES


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / (float(np.linalg.norm(vector)) or 1.0)


def title_case(phrase: str) -> str:
    """Title case that keeps what the speaker capitalised: lower-case words get a capital
    ("bike lanes" -> "Bike Lanes"), small words stay small inside ("Cup of Coffee"),
    "iPhone" and "NASA" stay as they are."""
    words = phrase.split()
    out = []
    for i, word in enumerate(words):
        if word != word.lower() or (0 < i < len(words) - 1 and word in SMALL_WORDS):
            out.append(word)
        else:
            out.append("-".join(part[:1].upper() + part[1:] for part in word.split("-")))
    return " ".join(out)


def _key(words: Sequence[str]) -> str:
    return " ".join(_fold(w.replace("’", "'")) for w in words)


def _fold(word: str) -> str:
    # Crude plural folding (as keyphrases._stems): "bike lane" and "bike lanes" are one.
    return word[:-1] if word.endswith("s") and len(word) > 3 and not word.endswith("ss") else word


def _stems(phrase: str) -> set[str]:
    return {
        _fold(w)
        for w in phrase.lower().split()
        if w not in keyphrases.STOPWORDS and w not in SMALL_WORDS
    }


def _surface(forms: Counter[str]) -> str:
    return sorted(forms.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
