"""Split a word-timed transcript into sentences, the unit the topic stages work on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from podmill.domain import Transcript, Word

_ENDINGS = (".", "?", "!", "…", '."', '?"', '!"', ".”", "?”", "!”")
_ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "etc.", "e.g.", "i.e.", "jr.", "sr."}
MAX_WORDS = 40  # transcripts without punctuation still get sentence-sized units
MAX_PAUSE = 2.0  # a long silence ends a sentence even without punctuation


@dataclass(frozen=True)
class Sentence:
    index: int
    text: str
    start: float
    end: float
    word_start: int
    word_end: int  # exclusive

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_sentences(transcript: Transcript) -> list[Sentence]:
    words = transcript.words
    sentences: list[Sentence] = []
    begin = 0
    for i, word in enumerate(words):
        last = i == len(words) - 1
        if last or _ends_sentence(word, words[i + 1], i - begin + 1):
            sentences.append(_make(len(sentences), words, begin, i + 1))
            begin = i + 1
    return sentences


def _ends_sentence(word: Word, following: Word, length: int) -> bool:
    text = word.text.strip()
    if text.lower() not in _ABBREVIATIONS and text.endswith(_ENDINGS):
        return True
    if following.speaker != word.speaker:
        return True
    return length >= MAX_WORDS or following.start - word.end >= MAX_PAUSE


def _make(index: int, words: list[Word], begin: int, end: int) -> Sentence:
    span = words[begin:end]
    return Sentence(
        index=index,
        text=join_words(w.text for w in span),
        start=span[0].start,
        end=span[-1].end,
        word_start=begin,
        word_end=end,
    )


_NO_SPACE_BEFORE = ("-", "'", "’", ",", ".", "?", "!", "%", ":", ";", ")")


def join_words(words: Iterable[str]) -> str:
    """Words back into text: Whisper splits "self-substantial" as "self" + "-substantial"."""
    return join_words_at(words)[0]


def join_words_at(words: Iterable[str]) -> tuple[str, list[int]]:
    """:func:`join_words`' text, and where in it each word begins (a blank word begins
    where the next one would): the viewer marks a word of a sentence by these offsets."""
    text = ""
    offsets: list[int] = []
    for raw in words:
        word = raw.strip()
        if not word:
            offsets.append(len(text))
            continue
        if text and not word.startswith(_NO_SPACE_BEFORE) and not text.endswith(("-", "(")):
            text += " "
        offsets.append(len(text))
        text += word
    return text, offsets


def sentences_from_dicts(data: list[dict[str, Any]]) -> list[Sentence]:
    return [Sentence(**d) for d in data]
