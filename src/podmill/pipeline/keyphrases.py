"""Keyphrases for titles: candidate n-grams ranked by embedding similarity, with diversity."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

STOPWORDS = frozenset(
    """
a about above after again against all almost also although always am among an and another any
anybody anyone anything anyway are aren't around as at away back be became because become been
before being below between both but by can can't cannot could couldn't did didn't do does doesn't
doing don't done down during each either else enough even ever every everybody everyone
everything few first for from further get gets getting give given go goes going gone gonna got
gotta had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him
himself his how how's however i i'd i'll i'm i've if in into is isn't it it's its itself just kind
know knew last least less let let's like likely lot lots made make makes making many may maybe me
might mine more most mostly much must mustn't my myself need needs never new next no nobody none
nor not nothing now of off often oh ok okay on once one ones only onto or other others otherwise
our ours ourselves out over own part perhaps pretty probably put quite rather re really right
said same say saying says see seem seems seen several shall shan't she she'd she'll she's should
shouldn't since so some somebody someone something sometimes somewhat sort still such sure take
takes taking tell than that that's the their theirs them themselves then there there's these they
they'd they'll they're they've thing things think this those though through thus to today too
took toward towards try trying two uh um under until up upon us use used using very via want wants
was wasn't way ways we we'd we'll we're we've well went were weren't what what's whatever when
when's where where's whether which while who who's whom whose why why's will with within without
won't would wouldn't yeah yes yet you you'd you'll you're you've your yours yourself yourselves
actually basically literally around across along else's every first next mean means stuff
guess ah hmm mm mhm huh alright anyways
episode show today welcome thanks thank great good bad big little long come comes came
look looking looks lets start started keep kept find found mr mrs ms dr
""".split()
)

NUMBER_WORDS = frozenset(
    """zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty
ninety hundred thousand million billion billions millions thousands hundreds second third
fourth fifth half""".split()
)

_TOKEN = re.compile(r"[A-Za-z][A-Za-z'\-]*[A-Za-z]|[A-Za-z]")


def candidates(texts: Sequence[str], max_n: int = 2) -> tuple[Counter[str], dict[str, str]]:
    """Count candidate phrases (lower case) and remember each one's commonest surface form."""
    counts: Counter[str] = Counter()
    surfaces: dict[str, Counter[str]] = {}
    for text in texts:
        tokens = _TOKEN.findall(text)
        for n in range(1, max_n + 1):
            for i in range(len(tokens) - n + 1):
                gram = tokens[i : i + n]
                lower = [t.lower() for t in gram]
                if any(t in STOPWORDS or t in NUMBER_WORDS for t in lower):
                    continue
                if n == 1 and len(lower[0]) < 4:
                    continue
                if any(len(t) < 2 for t in lower):
                    continue
                key = " ".join(lower)
                counts[key] += 1
                surfaces.setdefault(key, Counter())[" ".join(gram)] += 1
    best = {k: _surface(v) for k, v in surfaces.items()}
    return counts, best


def _surface(forms: Counter[str]) -> str:
    # Most frequent form; ties broken alphabetically, so the result is deterministic.
    return sorted(forms.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def rank(
    texts: Sequence[str],
    centroid: Any,
    embed: Callable[[Sequence[str]], Any],
    *,
    top: int = 5,
    pool: int = 40,
    diversity: float = 0.3,
    background: Any = None,
    contrast: float = 0.5,
) -> list[str]:
    """Top phrases: similar to the node's centroid, different from each other (MMR).

    With ``background`` (the whole episode's centroid), phrases that describe the whole
    episode rather than this part of it lose ``contrast`` times their similarity to it,
    so sibling topics get distinct titles ("podcast" does not name every topic of a
    podcast about podcasting)."""
    import numpy as np

    counts, surfaces = candidates(texts)
    if not counts:
        return []
    # Prefer repeated and longer phrases for the shortlist the model then ranks.
    shortlist = sorted(counts, key=lambda k: (-(counts[k] * (1 + 0.5 * k.count(" "))), k))[:pool]
    vectors = embed([surfaces[k] for k in shortlist])
    # Relevance to the node, nudged towards phrases the speakers repeat.
    relevance = vectors @ centroid + 0.05 * np.log1p([counts[k] - 1 for k in shortlist])
    if background is not None:
        relevance = relevance - contrast * (vectors @ background)
    chosen: list[int] = []
    while len(chosen) < min(top, len(shortlist)):
        best, best_score = -1, -np.inf
        for i in range(len(shortlist)):
            if i in chosen or _overlaps(shortlist[i], [shortlist[j] for j in chosen]):
                continue
            redundancy = max((float(vectors[i] @ vectors[j]) for j in chosen), default=0.0)
            score = (1 - diversity) * float(relevance[i]) - diversity * redundancy
            if score > best_score:
                best, best_score = i, score
        if best < 0:
            break
        chosen.append(best)
    return [surfaces[shortlist[i]] for i in chosen]


def _overlaps(phrase: str, chosen: list[str]) -> bool:
    words = _stems(phrase)
    return any(words & _stems(other) for other in chosen)


def _stems(phrase: str) -> set[str]:
    # Crude plural folding is enough to keep "podcast" and "podcasts" from both
    # appearing in one title.
    return {w[:-1] if w.endswith("s") and len(w) > 3 else w for w in phrase.lower().split()}


def title_from(phrases: Sequence[str]) -> str:
    """A short title from the top one or two phrases."""
    if not phrases:
        return ""
    first = _capitalise(phrases[0])
    if len(phrases) > 1:
        return f"{first} and {phrases[1]}"
    return first


def _capitalise(phrase: str) -> str:
    return phrase[:1].upper() + phrase[1:]
