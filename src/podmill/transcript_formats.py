"""Write a :class:`Transcript` as SRT, WebVTT, plain text or JSON artifacts.

Cues follow subtitle practice: at most ~7 seconds and ~84 characters (two lines of 42),
split at word boundaries using word times. Speakers appear as WebVTT voice tags on every
cue, and as a ``Name:`` prefix in SRT and text where the speaker changes, which is what
:func:`podmill.feeds.transcripts.parse_transcript` reads back.

Every transcript is written through :func:`prepare`, whatever its source (recogniser,
publisher JSON, WebVTT, SRT, HTML or text): it makes times monotonic and checks the
invariant a player relies on — word starts never go backwards, no word or cue ends
before it starts, and cues are in order and never overlap.
"""

from __future__ import annotations

import itertools
import json
import re
import textwrap
from dataclasses import dataclass, replace

from podmill.domain import Segment, Transcript, Word

MAX_CUE_SECONDS = 7.0
MAX_CUE_CHARS = 84
MAX_LINE_CHARS = 42


# A token that is only closing punctuation ("podcast ." in hand-edited captions, a ","
# entry in word-level JSON) belongs to the word before it.
CLOSING_PUNCTUATION = re.compile(r"^[.,;:!?…)\]\"'”’»]+$")


def join_closing_punctuation(tokens: list[str]) -> list[str]:
    """Tokens with each closing-punctuation-only token glued to the one before it."""
    joined: list[str] = []
    for token in tokens:
        if joined and CLOSING_PUNCTUATION.match(token):
            joined[-1] += token
        else:
            joined.append(token)
    return joined


def tidy_text(text: str) -> str:
    """One space between words and none before closing punctuation (``"Hi , Bob ."`` →
    ``"Hi, Bob."``): what removed caption tags and word-level JSON leave behind."""
    return " ".join(join_closing_punctuation(text.split()))


class TranscriptTimingError(RuntimeError):
    """A transcript about to be written breaks the timing invariant: a podmill bug."""


def normalise(transcript: Transcript) -> Transcript:
    """The transcript with monotonic times, ready to write.

    Segments are put in start order (stable); words keep their order. Word starts are
    made non-decreasing, each word ends no later than the next one starts (and not
    before its own start), and segment bounds are moved to the nearest values that hold
    their words without overlapping their neighbours. Times already in order are kept.
    """
    segments = sorted(transcript.segments, key=lambda s: s.start)
    # A segment without words takes part as one item, so it cannot overlap either.
    items: list[list[float]] = []
    for segment in segments:
        spans = [(w.start, w.end) for w in segment.words] or [(segment.start, segment.end)]
        items.extend([start, end] for start, end in spans)
    cursor = float("-inf")
    for item in items:
        item[0] = cursor = max(item[0], cursor)
    for item, following in itertools.zip_longest(items, items[1:]):
        limit = following[0] if following else float("inf")
        item[1] = max(item[0], min(item[1], limit))

    timed: list[tuple[Segment, list[Word], float, float]] = []
    at = 0
    for segment in segments:
        count = len(segment.words) or 1
        spans = items[at : at + count]
        at += count
        words = [
            w if (w.start, w.end) == (s, e) else replace(w, start=s, end=e)
            for w, (s, e) in zip(segment.words, spans, strict=False)
        ]
        timed.append((segment, words, spans[0][0], spans[-1][1]))
    # A segment starts at or before its first word and ends at or after its last; within
    # that, its own bounds are kept where they do not cross a neighbour's.
    result: list[Segment] = []
    previous_end = float("-inf")
    for i, (segment, words, first, last) in enumerate(timed):
        start = min(max(segment.start, previous_end), first)
        if i + 1 < len(timed):
            following, _, next_first, _ = timed[i + 1]
            end = max(min(segment.end, max(following.start, last), next_first), last)
        else:
            end = max(segment.end, last)
        result.append(Segment(start, end, segment.text, words, segment.speaker))
        previous_end = end
    duration = max([transcript.duration, *(s.end for s in result)])
    return replace(transcript, duration=duration, segments=result)


def check_timing(transcript: Transcript) -> None:
    """Raise :class:`TranscriptTimingError` naming the first break of the invariant."""
    previous: Word | None = None
    for word in transcript.words:
        if word.end < word.start:
            raise TranscriptTimingError(f"word {word.text!r} ends before it starts: {word}")
        if previous is not None and word.start < previous.start:
            raise TranscriptTimingError(
                f"word {word.text!r} at {word.start} s starts before {previous.text!r} "
                f"at {previous.start} s"
            )
        previous = word
    for before, after in itertools.pairwise(cues(transcript)):
        if after.start < before.end or before.end < before.start:
            raise TranscriptTimingError(
                f"cue {before.start}-{before.end} s ({before.text[:40]!r}) overlaps or "
                f"precedes cue {after.start}-{after.end} s ({after.text[:40]!r})"
            )


def prepare(transcript: Transcript) -> Transcript:
    """:func:`normalise`, then :func:`check_timing`: what every writer is given."""
    prepared = normalise(transcript)
    check_timing(prepared)
    return prepared


@dataclass(frozen=True)
class Cue:
    """One subtitle: a time span, its words' text and who speaks."""

    start: float
    end: float
    text: str
    speaker: str | None
    words: tuple[Word, ...] = ()


def cues(transcript: Transcript) -> list[Cue]:
    """The transcript's segments as subtitle-sized cues, in order."""
    result: list[Cue] = []
    for segment in transcript.segments:
        result.extend(_segment_cues(segment))
    return result


def _segment_cues(segment: Segment) -> list[Cue]:
    words = [w for w in segment.words if w.text.strip()]
    text = tidy_text(segment.text)
    if not words:
        if not text:
            return []
        return [Cue(segment.start, max(segment.end, segment.start), text, segment.speaker)]
    if segment.end - segment.start <= MAX_CUE_SECONDS and len(text) <= MAX_CUE_CHARS:
        return [
            Cue(segment.start, max(segment.end, segment.start), text, segment.speaker, tuple(words))
        ]
    groups: list[list[Word]] = [[]]
    for word in words:
        group = groups[-1]
        if group:
            chars = len(_join(group)) + 1 + len(word.text.strip())
            if chars > MAX_CUE_CHARS or word.end - group[0].start > MAX_CUE_SECONDS:
                groups.append([])
        groups[-1].append(word)
    result = []
    for i, group in enumerate(groups):
        # The segment's own bounds hold at its edges; inside, cues meet at word bounds.
        start = min(segment.start, group[0].start) if i == 0 else group[0].start
        end = max(segment.end, group[-1].end) if i == len(groups) - 1 else group[-1].end
        result.append(Cue(start, max(end, start), _join(group), segment.speaker, tuple(group)))
    return result


def _join(words: list[Word] | tuple[Word, ...]) -> str:
    return tidy_text(" ".join(w.text.strip() for w in words))


def _stamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _wrap(text: str) -> str:
    if len(text) <= MAX_LINE_CHARS:
        return text
    # Two balanced lines read better than one full line and a stub.
    width = max(MAX_LINE_CHARS, (len(text) + 1) // 2)
    while True:
        lines = textwrap.wrap(text, width=width, break_long_words=False, break_on_hyphens=False)
        if len(lines) <= 2:
            return "\n".join(lines)
        width += 4


def to_srt(t: Transcript) -> str:
    """SubRip text; a ``Name:`` prefix marks each change of speaker."""
    blocks = []
    previous: str | None = None
    for index, cue in enumerate(cues(t), start=1):
        text = tidy_text(cue.text)
        if cue.speaker and cue.speaker != previous:
            text = f"{cue.speaker}: {text}"
        previous = cue.speaker or previous
        timing = f"{_stamp(cue.start, ',')} --> {_stamp(cue.end, ',')}"
        blocks.append(f"{index}\n{timing}\n{_wrap(text)}\n")
    return "\n".join(blocks)


def _escape_vtt(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(t: Transcript, *, word_timestamps: bool = False) -> str:
    """WebVTT; each cue with a speaker carries a ``<v Name>`` voice tag.

    ``word_timestamps`` adds WebVTT inline timestamps (``<00:00:01.250>``) before each
    word after the first, so word times survive a round trip exactly (to the ms).
    """
    blocks = ["WEBVTT\n"]
    for cue in cues(t):
        if word_timestamps and cue.words:
            body = _timed_body(cue)
        else:
            body = _wrap(_escape_vtt(tidy_text(cue.text)))
        if cue.speaker:
            body = f"<v {_escape_vtt(cue.speaker)}>{body}"
        blocks.append(f"{_stamp(cue.start, '.')} --> {_stamp(cue.end, '.')}\n{body}\n")
    return "\n".join(blocks)


def _timed_body(cue: Cue) -> str:
    """Cue text with an inline timestamp at each word's start, and at its end where a
    pause follows, so that every word's start and end survive a round trip."""
    parts: list[str] = []
    for i, word in enumerate(cue.words):
        if i > 0 or word.start > cue.start:
            parts.append(f"<{_stamp(word.start, '.')}>")
        parts.append(_escape_vtt(word.text.strip()))
        follows = cue.words[i + 1].start if i + 1 < len(cue.words) else cue.end
        if word.end < follows:
            parts.append(f"<{_stamp(word.end, '.')}>")
        parts.append(" ")
    return "".join(parts).strip()


def to_txt(t: Transcript) -> str:
    """Readable text: one paragraph per speaker turn when speakers are known, else one per
    segment; ``Name:`` starts each turn."""
    paragraphs: list[tuple[str | None, list[str]]] = []
    has_speakers = any(s.speaker for s in t.segments)
    for segment in t.segments:
        text = tidy_text(segment.text)
        if not text:
            continue
        if has_speakers and paragraphs and paragraphs[-1][0] == segment.speaker:
            paragraphs[-1][1].append(text)
        else:
            paragraphs.append((segment.speaker, [text]))
    lines = [(f"{speaker}: " if speaker else "") + " ".join(texts) for speaker, texts in paragraphs]
    return "\n\n".join(lines) + ("\n" if lines else "")


def to_json(t: Transcript) -> str:
    """The artifact form: ``Transcript.to_dict`` as indented UTF-8 JSON."""
    return json.dumps(t.to_dict(), indent=2, ensure_ascii=False)


# The Podcasting 2.0 JSON transcript format ("application/json" in podcast:transcript):
# https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/examples/transcripts/transcripts.md
PODCAST_JSON_VERSION = "1.0.0"


def podcast_transcript(t: Transcript) -> dict[str, object]:
    """The Podcasting 2.0 JSON transcript: ``{"version", "segments": [{"speaker"?,
    "startTime", "endTime", "body"}]}``, one segment per subtitle cue (the cues of SRT
    and WebVTT, so the three agree); ``speaker`` only where it is known."""
    segments: list[dict[str, object]] = []
    for cue in cues(t):
        segment: dict[str, object] = {} if cue.speaker is None else {"speaker": cue.speaker}
        segment.update(
            startTime=round(cue.start, 3), endTime=round(cue.end, 3), body=tidy_text(cue.text)
        )
        segments.append(segment)
    return {"version": PODCAST_JSON_VERSION, "segments": segments}


def to_podcast_json(t: Transcript) -> str:
    """:func:`podcast_transcript` as indented UTF-8 JSON."""
    return json.dumps(podcast_transcript(t), indent=2, ensure_ascii=False)
