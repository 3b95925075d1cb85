"""What may be a key point: a statement with content, never filler.

Speech is full of "Yeah.", "Right?", "So you can start.", "Mm-hmm." and bare numbers; a
key point made of one of them says nothing. Every producer of key points (the
extractive summariser, the LLM's answers, the episode's roll-up of its topics) keeps
only what :func:`is_key_point` accepts, so the rule lives here and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from podmill.pipeline.keyphrases import NUMBER_WORDS, STOPWORDS

MIN_CONTENT_WORDS = 4  # distinct words outside the stop list and number words

# Letters only (any script), apostrophes inside a word kept: "don't" is one stop word,
# "mm-hmm" is two ("mm", "hmm"), "42" is none.
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def content_words(text: str) -> set[str]:
    """The distinct words of ``text`` that carry meaning (lower case)."""
    words = _WORD.findall(text.lower().replace("’", "'"))
    return {w for w in words if len(w) > 1 and w not in STOPWORDS and w not in NUMBER_WORDS}


def is_key_point(text: str) -> bool:
    """Whether ``text`` says enough to be a key point (not filler, a number or stop words)."""
    return len(content_words(text)) >= MIN_CONTENT_WORDS


def key_points(candidates: Iterable[str]) -> list[str]:
    """``candidates`` without filler, in order."""
    return [text for text in candidates if is_key_point(text)]
