"""The vocabulary prompt: the proper names a feed already spells, for Whisper.

Whisper tiny.en turns names it has not heard into words it has ("Gale Crater" becomes
"Caniro Crater"), and those errors reach titles and search. The feed spells them right:
its title, the episode's ``podcast:person`` names and the episode's title. With
``asr.vocabulary_prompt`` set, :func:`vocabulary` joins them into one short string that
the transcribe stage hands to faster-whisper: as ``initial_prompt`` (conditions the
first 30-second window only, because podmill decodes with
``condition_on_previous_text=False``) or as ``hotwords`` (put before every window).
docs/quality.md ("ASR choice") has the measurements and the default.

The string ends without punctuation, on purpose: measured with tiny.en, a prompt
ending in a full stop (or a comma) made Whisper write the first sentence and then skip
the rest of the first 30-s window, as if the prompt had closed what came before; the
same names without the final mark did not (docs/quality.md, ASR choice).

Pure and cheap: no model, no I/O. The string is deterministic for the same metadata.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from podmill.domain import Episode

# Bump when the string built from the same metadata changes: it is in the fingerprint
# whenever the prompt is on (pipeline/fingerprint.py).
VERSION = "1"

# About 60-80 Whisper tokens: far under the 223 a prompt may hold, so a long episode
# title never crowds out the window's own previous text, and short enough that Whisper
# does not start repeating the prompt into silence.
MAX_CHARS = 240

_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# stripped from both ends of every item: the prompt never ends in punctuation
_MARKS = " ,;:.!?\u2026"


def _clean(text: str | None) -> str:
    return _SPACE.sub(" ", _CONTROL.sub(" ", text or "")).strip(_MARKS)


def _key(text: str) -> str:
    return " " + " ".join(re.findall(r"\w+", text.casefold())) + " "


def vocabulary(
    feed_title: str | None,
    person_names: Iterable[str],
    episode_title: str | None,
    *,
    max_chars: int = MAX_CHARS,
) -> str:
    """The prompt for one episode: ``"Feed title, Person One, Person Two, Episode title"``.

    Whitespace is collapsed. An item whose words are already in a kept item (the same
    person twice, an episode title equal to the feed's) is left out; one that holds a
    kept item's words (the episode title "Talking to Ada Lovelace") replaces it. Items
    are kept by priority, names first (what Whisper gets wrong), then the feed's title,
    then the episode's, while the whole fits in ``max_chars``; an item that does not fit
    is left out whole, never cut, except that a first item longer than ``max_chars`` is
    cut at a word. They are written in the feed's order: feed title, names, episode
    title, with no mark after the last (the module doc says why). Empty when there is
    nothing to say.
    """
    feed = _clean(feed_title)
    names = [_clean(n) for n in person_names]
    episode = _clean(episode_title)
    # (position in the output, text), in priority order
    candidates = [(1, n) for n in names] + [(0, feed), (2, episode)]
    kept: list[tuple[int, int, str]] = []
    for order, (position, text) in enumerate(candidates):
        key = _key(text)
        if not key.strip() or any(key in _key(other) for _, _, other in kept):
            continue  # nothing to say, or its words are there already
        # kept items whose words this one holds (a name in the episode's title) go
        absorbed = [k for k in kept if _key(k[2]) in key]
        rest = [k for k in kept if k not in absorbed]
        if _length([*rest, (position, order, text)]) > max_chars:
            if kept:
                continue
            text = _cut(text, max_chars)
            if not text:
                continue
        kept = [*rest, (position, order, text)]
    if not kept:
        return ""
    kept.sort()
    return ", ".join(text for _, _, text in kept)


def _length(items: list[tuple[int, int, str]]) -> int:
    """The prompt's length with these items: ``", "`` between them."""
    return sum(len(t) for _, _, t in items) + 2 * (len(items) - 1)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    cut = head.rsplit(" ", 1)[0] if " " in head else text[:limit]
    return cut[:limit].rstrip(_MARKS)


def episode_vocabulary(episode: Episode, *, max_chars: int = MAX_CHARS) -> str:
    """:func:`vocabulary` of an episode's feed title, ``podcast:person`` names and title."""
    return vocabulary(
        episode.feed_title,
        (p.name for p in episode.persons),
        episode.title,
        max_chars=max_chars,
    )
