"""Split a word-timed transcript into sentences, the unit the topic stages work on."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
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


# --------------------------------------------------------------- summaries' sentences

# Closing quotes and brackets may follow the full stop: 'he said "no."' ends a sentence.
_TRAILING = "\"'”’)]"


def ends_sentence(text: str) -> bool:
    """Whether ``text`` ends as a sentence does (a full stop, question or exclamation
    mark, or an ellipsis, before any closing quotes)."""
    return text.rstrip().rstrip(_TRAILING).endswith((".", "?", "!", "…"))


def starts_sentence(text: str) -> bool:
    """Whether ``text`` opens as a sentence does: its first letter is not lower case
    ("and then we left" continues a sentence cut at a pause or at :data:`MAX_WORDS`)."""
    for char in text:
        if char.isalpha():
            return not char.islower()
        if char.isdigit():
            return True
    return False


def complete(sentences: Sequence[Sentence], index: int) -> bool:
    """Whether ``sentences[index]`` is a whole sentence: it starts where the one before
    it ended a sentence (or the transcript starts), starts as a sentence and ends as one.
    The splitter also cuts at speaker changes, long pauses and :data:`MAX_WORDS`, and a
    unit cut there is part of a sentence: a summary or a lead never starts with one."""
    text = sentences[index].text
    after_end = index == 0 or ends_sentence(sentences[index - 1].text)
    return after_end and starts_sentence(text) and ends_sentence(text)


def at_boundary(sentences: Sequence[Sentence], index: int) -> bool:
    """Whether ``sentences[index]`` starts a sentence (it may end without punctuation)."""
    after_end = index == 0 or ends_sentence(sentences[index - 1].text)
    return after_end and starts_sentence(sentences[index].text)


# Spoken fillers that open a sentence without adding to it. Words that can start a real
# sentence ("So many people…", "You know what he said", "I mean it") are fillers only
# with their comma; interjections ("Um", "Uh") are fillers either way.
_FILLER = re.compile(
    r"""^(?:
        (?:(?:and|but)\s+)?
        (?:so|yeah|yes|yep|well|okay|ok|oh|right|alright|like|now|anyway|anyways
           |basically|honestly|actually|and|but)\s*,
      | (?:um+|uh+|erm+|er|ah+|hmm+|mm+|mhm|uh-huh)\b[,.]?
      | (?:i\s+mean|you\s+know|you\s+see|i\s+guess|i\s+think|kind\s+of|sort\s+of)\s*,
    )\s*""",
    re.IGNORECASE | re.VERBOSE,
)


def dehedge(text: str) -> str:
    """``text`` without the fillers it opens with ("So, yeah, I mean, the council
    voted." → "The council voted."), its first letter upper case. Only a sentence that
    still has words after them is changed: "Yeah." stays "Yeah." (and is never a key
    point: :mod:`podmill.pipeline.keypoints`)."""
    rest = text.strip()
    changed = False
    while True:
        match = _FILLER.match(rest)
        if not match or match.end() == 0:
            break
        remainder = rest[match.end() :]
        if sum(c.isalnum() for c in remainder) < 2:
            break
        rest, changed = remainder, True
    if not changed:
        return text.strip()
    return rest[:1].upper() + rest[1:]
