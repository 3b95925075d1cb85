"""Write a :class:`Transcript` as SRT, WebVTT, plain text or JSON artifacts.

Cues follow subtitle practice: at most ~7 seconds and ~84 characters (two lines of 42),
split at word boundaries using word times. Speakers appear as WebVTT voice tags on every
cue, and as a ``Name:`` prefix in SRT and text where the speaker changes, which is what
:func:`podmill.feeds.transcripts.parse_transcript` reads back.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass

from podmill.domain import Segment, Transcript, Word

MAX_CUE_SECONDS = 7.0
MAX_CUE_CHARS = 84
MAX_LINE_CHARS = 42


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
    text = " ".join(segment.text.split())
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
    return " ".join(w.text.strip() for w in words)


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
        text = " ".join(cue.text.split())
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
            body = _wrap(_escape_vtt(" ".join(cue.text.split())))
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
        text = " ".join(segment.text.split())
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
