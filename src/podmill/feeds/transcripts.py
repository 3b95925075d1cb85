"""Publisher transcripts (``podcast:transcript``) → a domain :class:`Transcript`.

Reads the formats the Podcasting 2.0 spec names: JSON, WebVTT, SRT, HTML and plain
text. The content decides the format when it carries a clear signature (a ``WEBVTT``
header, SRT timing arrows, a JSON ``segments`` list), because publishers often label
files with the wrong MIME type; otherwise the MIME type, then the URL's extension.

Each cue becomes a :class:`Segment`. Captions have no word times, so a cue's span is
shared among its words in proportion to their length: word times are then monotonic
and inside the cue, which is what the topic stages need. Rules are in ``docs/feeds.md``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from podmill.domain import Segment, Transcript, TranscriptLink, Word
from podmill.errors import TranscriptFormatError
from podmill.transcript_formats import (
    CLOSING_PUNCTUATION,
    join_closing_punctuation,
    normalise,
    tidy_text,
)

# Speaking rate used to estimate times when a transcript has none.
WORDS_PER_MINUTE = 150.0

# Format name → the MIME types that announce it (first is the canonical one).
FORMAT_MIME_TYPES: dict[str, tuple[str, ...]] = {
    "json": ("application/json", "application/x-json", "text/json"),
    "vtt": ("text/vtt", "text/webvtt", "application/vtt"),
    "srt": ("application/srt", "application/x-subrip", "text/srt", "text/x-srt", "text/subrip"),
    "html": ("text/html", "application/xhtml+xml"),
    "text": ("text/plain",),
}
FORMAT_EXTENSIONS = {
    ".json": "json",
    ".vtt": "vtt",
    ".webvtt": "vtt",
    ".srt": "srt",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
}
# choose_transcript: richer timing first (JSON may carry word times; HTML only turns).
FORMAT_PREFERENCE = ("json", "vtt", "srt", "html", "text")


def transcript_format(mime_type: str | None, url: str = "") -> str | None:
    """The format a link announces by MIME type, else by URL extension, else None."""
    mime = (mime_type or "").split(";")[0].strip().lower()
    for name, types in FORMAT_MIME_TYPES.items():
        if mime in types:
            return name
    return FORMAT_EXTENSIONS.get(_extension(url))


def rank_transcripts(
    links: Sequence[TranscriptLink], *, language: str | None = None
) -> list[TranscriptLink]:
    """Every link, in the order worth trying: JSON > WebVTT > SRT > HTML > plain text.

    The fetch stage tries them in this order and falls through to the next on a
    failed fetch, unreadable content or too little coverage (docs/feeds.md).
    ``rel="captions"`` is not held against a link: the spec uses it for time-coded
    caption files, which are exactly what podmill wants. With ``language``, links in
    that language (``en`` matches ``en-US``) come first, then links that state none.
    Ties keep the feed's order. Links of an unknown format come last.
    """

    def rank(indexed: tuple[int, TranscriptLink]) -> tuple[int, int, int]:
        index, link = indexed
        fmt = transcript_format(link.mime_type, link.url)
        format_rank = FORMAT_PREFERENCE.index(fmt) if fmt else len(FORMAT_PREFERENCE)
        return (_language_rank(link.language, language), format_rank, index)

    return [link for _, link in sorted(enumerate(links), key=rank)]


def choose_transcript(
    links: Sequence[TranscriptLink], *, language: str | None = None
) -> TranscriptLink | None:
    """The link tried first (see :func:`rank_transcripts`), or None without links."""
    ranked = rank_transcripts(links, language=language)
    return ranked[0] if ranked else None


def _language_rank(link_language: str | None, wanted: str | None) -> int:
    if not wanted:
        return 0
    if not link_language:
        return 1
    have = link_language.strip().lower().replace("_", "-")
    want = wanted.strip().lower().replace("_", "-")
    return 0 if have.split("-")[0] == want.split("-")[0] else 2


def parse_transcript(
    data: bytes,
    mime_type: str | None,
    *,
    url: str = "",
    duration: float | None = None,
    language: str = "en",
) -> Transcript:
    """Parse a publisher transcript into segments of timed words.

    ``mime_type`` is the type the feed declared (may be None or wrong); ``url`` helps
    guess the format by extension; ``duration`` (seconds, if known) bounds the last turn
    of an HTML transcript and spreads an untimed text transcript. ``Transcript.source``
    is ``feed:<mime>``, with " (times estimated)" when the file had no times.

    Raises :class:`TranscriptFormatError` for empty, binary or unreadable input.
    """
    where = f" from {url}" if url else ""
    text = _decode(data, where)
    fmt = _detect_format(text, mime_type, url)
    declared = (mime_type or "").split(";")[0].strip().lower()
    mime = declared if transcript_format(declared) == fmt else FORMAT_MIME_TYPES[fmt][0]
    reading = _READERS[fmt](text, duration, where)
    segments = [s for s in reading.segments if s.words]
    if not segments:
        raise TranscriptFormatError(
            f"transcript{where} ({mime}) contains no text; check the podcast:transcript link"
        )
    end = max(s.end for s in segments)
    transcript = Transcript(
        language=language,
        duration=max(end, duration or 0.0),
        segments=segments,
        source=f"feed:{mime}" + (" (times estimated)" if reading.estimated else ""),
        unreadable_cues=reading.unreadable_cues,
    )
    # Publishers' times overlap and run backwards (shared JSON spans, shuffled cues);
    # what podmill hands on is always monotonic.
    return normalise(transcript)


class _Reading(NamedTuple):
    segments: list[Segment]
    estimated: bool = False  # the file had no times; they were spread by word count
    unreadable_cues: int = 0  # cues dropped because their timing line could not be read


# --- decoding and format detection --------------------------------------------------


def _decode(data: bytes, where: str) -> str:
    if not data or not data.strip():
        raise TranscriptFormatError(
            f"transcript{where} is empty ({len(data)} bytes); the publisher's file has no text"
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", errors="replace")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            # Old caption tools write Windows-1252; every byte maps, so no error here.
            text = data.decode("cp1252", errors="replace")
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    controls = sum(1 for ch in text[:65536] if ord(ch) < 32 and ch not in "\n\t\f")
    if "\x00" in text or controls > len(text[:65536]) / 100:
        raise TranscriptFormatError(
            f"transcript{where} is not text (binary data, {len(data)} bytes); "
            "check that the podcast:transcript URL points at a transcript file"
        )
    return text


# Lenient on purpose: besides the spec's "00:01:02.500" / "00:01:02,500", caption tools
# write "1:02.5", "00:01,5", "0.860" (seconds only), hours past 99 and missing leading
# zeros. _seconds rejects minutes or seconds fields of 60 or more.
_TIMESTAMP = r"(?:(?:\d+:){1,2}\d+(?:[.,]\d*)?|\d+[.,]\d+)"
_TIMING_LINE = re.compile(rf"^\s*({_TIMESTAMP})\s*-->\s*({_TIMESTAMP})(?:\s+.*)?$")
_TIMING_ANYWHERE = re.compile(rf"^\s*{_TIMESTAMP}\s*-->\s*{_TIMESTAMP}", re.MULTILINE)


def _detect_format(text: str, mime_type: str | None, url: str) -> str:
    stripped = text.lstrip()
    if stripped.startswith("WEBVTT"):
        return "vtt"
    if stripped[:1] in ("{", "["):
        try:
            json.loads(stripped)
        except ValueError:
            pass
        else:
            return "json"
    declared = transcript_format(mime_type, url)
    if _TIMING_ANYWHERE.search(text[:20000]):
        # One reader serves both: a header-less file labelled WebVTT stays WebVTT.
        return "vtt" if declared == "vtt" else "srt"
    if declared in ("json", "vtt", "srt"):
        # Announced as a timed format but without its signature: read it as announced
        # so the error names the real problem.
        return declared
    if declared == "html" or re.search(r"<(p|cite|time|html|body|div|span)\b", stripped[:4000]):
        return "html"
    return "text"


# --- words from a timed span --------------------------------------------------------


def _tokens(text: str) -> list[str]:
    return join_closing_punctuation(text.split())


def _timed_words(text: str, start: float, end: float, speaker: str | None) -> list[Word]:
    """Words of ``text`` sharing ``[start, end]`` in proportion to their length."""
    tokens = _tokens(text)
    total = sum(len(t) for t in tokens)
    span = max(end - start, 0.0)
    words: list[Word] = []
    done = 0
    for token in tokens:
        word_start = start + span * done / total
        done += len(token)
        word_end = start + span * done / total
        words.append(Word(token, round(word_start, 3), round(word_end, 3), speaker=speaker))
    return words


def _segment(
    chunks: Sequence[tuple[float, str]], start: float, end: float, speaker: str | None
) -> Segment:
    """A segment from text chunks, each starting at a known time (inline timestamps)."""
    words: list[Word] = []
    for i, (chunk_start, chunk) in enumerate(chunks):
        chunk_end = chunks[i + 1][0] if i + 1 < len(chunks) else end
        words.extend(_timed_words(chunk, chunk_start, chunk_end, speaker))
    text = tidy_text(" ".join(chunk for _, chunk in chunks))
    return Segment(round(start, 3), round(end, 3), text, words, speaker)


# --- speakers -----------------------------------------------------------------------

# "Name:" at the start of a cue: 1-3 capitalised words (or a number, "Speaker 2"), so a
# sentence such as "So here's the thing: ..." is not mistaken for a speaker.
_NAME_PREFIX = re.compile(r"^([A-Z][\w'.\-]*(?: (?:[A-Z][\w'.\-]*|\d+)){0,2}):\s+(?=\S)")
_NOT_NAMES = frozenset(
    {
        "note", "notes", "update", "warning", "caution", "important", "example", "tip",
        "step", "chapter", "part", "episode", "season", "source", "sources", "link",
        "links", "http", "https", "edit", "ps", "nb", "re", "subject", "transcript",
    }
)  # fmt: skip


def split_speaker_prefix(text: str) -> tuple[str | None, str]:
    """``"Sarah: Hello"`` → ``("Sarah", "Hello")``; text without a name prefix unchanged."""
    match = _NAME_PREFIX.match(text)
    if not match or match.group(1).lower() in _NOT_NAMES:
        return None, text
    return match.group(1), text[match.end() :]


# --- SRT and WebVTT -----------------------------------------------------------------


@dataclass
class _Cue:
    start: float
    end: float
    lines: list[str]


def _seconds(stamp: str) -> float:
    """``"1:02.5"`` → 62.5; raises ValueError for a minutes or seconds field of 60 or more."""
    parts = stamp.strip().replace(",", ".").split(":")
    seconds = 0.0
    for i, part in enumerate(parts):
        value = float(part)
        if i > 0 and value >= 60:
            raise ValueError(f"field {part!r} of {stamp!r} is 60 or more")
        seconds = seconds * 60 + value
    return seconds


def _cue_times(line: str) -> tuple[float, float] | None:
    timing = _TIMING_LINE.match(line)
    if not timing:
        return None
    try:
        start, end = _seconds(timing.group(1)), _seconds(timing.group(2))
    except ValueError:
        return None
    return start, max(end, start)


def _cues(text: str) -> tuple[list[_Cue], int]:
    """The cues, and how many timing lines (``-->``) could not be read: those cues'
    text is skipped, not glued to the cue before."""
    cues: list[_Cue] = []
    unreadable = 0
    current: _Cue | None = None
    for line in text.split("\n"):
        if "-->" in line:
            if current is not None:
                # A missing blank line leaves the next cue's SRT index in this cue.
                if current.lines and current.lines[-1].strip().isdigit():
                    current.lines.pop()
                cues.append(current)
                current = None
            times = _cue_times(line)
            if times is None:
                unreadable += 1
            else:
                current = _Cue(times[0], times[1], [])
        elif current is not None:
            if line.strip():
                current.lines.append(line.strip())
            else:
                cues.append(current)
                current = None
        # Lines outside a cue: WEBVTT header, NOTE/STYLE blocks, SRT indices, cue ids.
    if current is not None:
        cues.append(current)
    return cues, unreadable


_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]*)>")
_INLINE_TIME = re.compile(r"<((?:\d+:)?\d{2}:\d{2}\.\d{3})>")
# Only the markup caption formats define (SRT: i b u font; WebVTT: c i b u v ruby rt lang)
# and SSA overrides such as {\an8}; other "<...>" is caption text.
_TAG = re.compile(r"</?(?:i|b|u|s|font|c|v|ruby|rt|lang|span)(?:[\s.][^<>]*)?>|\{\\[^}]*\}")


def _read_cues(text: str, duration: float | None, where: str) -> _Reading:
    cues, unreadable = _cues(text)
    if not cues and unreadable:
        raise TranscriptFormatError(
            f"transcript{where} has no readable cues: none of its {unreadable} timing lines "
            "could be read (expected 'start --> end', e.g. 00:01:02.500 --> 00:01:04.000)"
        )
    if not cues:
        raise TranscriptFormatError(
            f"transcript{where} has no cues (no 'start --> end' timing lines); "
            "the file is not valid SRT or WebVTT"
        )
    segments: list[Segment] = []
    speaker: str | None = None
    for cue in sorted(cues, key=lambda c: c.start):
        raw = " ".join(cue.lines)
        voice = _VOICE.search(raw)
        if voice and voice.group(1).strip():
            speaker = html.unescape(voice.group(1)).strip()
        chunks = _timed_chunks(raw, cue)
        if not voice and chunks:
            named, rest = split_speaker_prefix(chunks[0][1].lstrip())
            if named:
                speaker = named
                chunks[0] = (chunks[0][0], rest)
        if any(chunk.strip() for _, chunk in chunks):
            segments.append(_segment(chunks, cue.start, cue.end, speaker))
    return _Reading(segments, unreadable_cues=unreadable)


def _timed_chunks(raw: str, cue: _Cue) -> list[tuple[float, str]]:
    """Cue text split at WebVTT inline timestamps (``<00:00:01.500>``), tags removed."""
    pieces = _INLINE_TIME.split(raw)
    chunks = [(cue.start, pieces[0])]
    for i in range(1, len(pieces), 2):
        previous = chunks[-1][0]
        at = min(max(_seconds(pieces[i]), previous), cue.end)
        chunks.append((at, pieces[i + 1]))
    # Tags go without a trace ("<i>Hi</i>, Bob" → "Hi, Bob"); entities are decoded after.
    return [(at, " ".join(html.unescape(_TAG.sub("", chunk)).split())) for at, chunk in chunks]


# --- JSON ---------------------------------------------------------------------------

_JSON_SENTENCE_END = re.compile(r"[.!?…][\"'”’)]*$")
_JSON_GAP_SECONDS = 2.0


def _read_json(text: str, duration: float | None, where: str) -> _Reading:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TranscriptFormatError(f"transcript{where} is not valid JSON: {exc}") from exc
    entries = data.get("segments") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise TranscriptFormatError(
            f"JSON transcript{where} has no 'segments' list; "
            "expected the Podcasting 2.0 JSON transcript format"
        )
    if entries and all(isinstance(e, dict) and "words" in e and "start" in e for e in entries):
        # podmill's own artifact (Transcript.to_dict), e.g. re-imported from another run.
        try:
            return _Reading(Transcript.from_dict({**data, "source": "", "duration": 0}).segments)
        except (KeyError, TypeError, ValueError) as exc:
            raise TranscriptFormatError(f"JSON transcript{where} is malformed: {exc}") from exc
    return _Reading(_group_json_entries(entries, where))


def _group_json_entries(entries: list[Any], where: str) -> list[Segment]:
    """Podcasting 2.0 JSON entries (often one word each) → sentence-sized segments.

    A segment ends where the speaker changes, a sentence ends, or speech pauses.
    """
    timed: list[tuple[float, float, str, str | None]] = []
    speaker: str | None = None
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if entry.get("speaker"):
            speaker = str(entry["speaker"]).strip() or speaker  # carries forward, as in SRT
        body = " ".join(html.unescape(_TAG.sub("", str(entry.get("body") or ""))).split())
        start, end = _number(entry.get("startTime")), _number(entry.get("endTime"))
        if body and start is not None and start >= 0:
            end = max(end if end is not None else start, start)
            timed.append((round(start, 3), round(end, 3), body, speaker))
    if not timed:
        raise TranscriptFormatError(
            f"JSON transcript{where} has no segment with a body and a startTime"
        )
    timed.sort(key=lambda entry: entry[0])  # stable: entries sharing a start keep order
    timed = _share_spans(_join_punctuation_entries(timed))

    groups: list[list[tuple[float, float, str, str | None]]] = []
    for entry in timed:
        previous = groups[-1][-1] if groups else None
        if (
            previous is None
            or entry[3] != previous[3]
            or _JSON_SENTENCE_END.search(previous[2])
            or entry[0] - previous[1] > _JSON_GAP_SECONDS
        ):
            groups.append([])
        groups[-1].append(entry)
    segments = []
    for group in groups:
        who = group[0][3]
        words = [w for start, end, body, _ in group for w in _timed_words(body, start, end, who)]
        text = tidy_text(" ".join(body for _, _, body, _ in group))
        segments.append(Segment(group[0][0], max(end for _, end, _, _ in group), text, words, who))
    return segments


_JsonEntry = tuple[float, float, str, str | None]  # start, end, body, speaker


def _join_punctuation_entries(timed: list[_JsonEntry]) -> list[_JsonEntry]:
    """An entry that is only closing punctuation ("," "." "?") joins the entry before."""
    joined: list[_JsonEntry] = []
    for start, end, body, speaker in timed:
        if joined and CLOSING_PUNCTUATION.match(body):
            p_start, p_end, p_body, p_speaker = joined[-1]
            joined[-1] = (p_start, max(p_end, end), p_body + body, p_speaker)
        else:
            joined.append((start, end, body, speaker))
    return joined


def _share_spans(timed: list[_JsonEntry]) -> list[_JsonEntry]:
    """Consecutive entries carrying the same ``startTime``/``endTime`` (hosted exports
    repeat a phrase's span on each of its words) share it in proportion to their length,
    so their words follow each other instead of all starting together."""
    shared: list[_JsonEntry] = []
    i = 0
    while i < len(timed):
        j = i + 1
        while j < len(timed) and timed[j][:2] == timed[i][:2]:
            j += 1
        start, end = timed[i][:2]
        run = timed[i:j]
        total = sum(len(body) for _, _, body, _ in run)
        done = 0
        for _, _, body, speaker in run:
            piece_start = start + (end - start) * done / total
            done += len(body)
            piece_end = start + (end - start) * done / total
            shared.append((round(piece_start, 3), round(piece_end, 3), body, speaker))
        i = j
    return shared


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return _seconds(value.strip()) if ":" in value else float(value)
        except ValueError:
            return None
    return None


# --- HTML ---------------------------------------------------------------------------


@dataclass
class _Turn:
    speaker: str | None
    time: float | None
    text: str


class _HtmlTranscriptScanner(HTMLParser):
    """Reads the spec's HTML transcript: ``<cite>Name:</cite> <time>m:ss</time> <p>…</p>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.turns: list[_Turn] = []
        self.loose: list[str] = []  # text outside any <p>, for pages without the markup
        self._field: str | None = None
        self._buffer: list[str] = []
        self._speaker: str | None = None
        self._time: float | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("cite", "time", "p"):
            self._field = tag
            self._buffer = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
            return
        if tag != self._field:
            return
        value = " ".join("".join(self._buffer).split())
        self._field = None
        if tag == "cite":
            self._speaker = value.rstrip(":").strip() or None
        elif tag == "time":
            self._time = _clock(value)
        elif value:
            if self.turns and self._time is None and self.turns[-1].speaker == self._speaker:
                self.turns[-1].text += " " + value  # another paragraph of the same turn
            else:
                self.turns.append(_Turn(self._speaker, self._time, value))
            self._time = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._field is not None:
            self._buffer.append(data)
        elif data.strip():
            self.loose.append(data)


def _clock(value: str) -> float | None:
    if not re.fullmatch(r"(\d+:){0,2}\d+(\.\d+)?", value.strip()):
        return None
    try:
        return _seconds(value)
    except ValueError:
        return None


def _read_html(text: str, duration: float | None, where: str) -> _Reading:
    scanner = _HtmlTranscriptScanner()
    try:
        scanner.feed(text)
        scanner.close()
    except Exception as exc:  # html.parser raises on some mangled declarations
        raise TranscriptFormatError(f"HTML transcript{where} could not be read: {exc}") from exc
    turns = scanner.turns
    if not turns:
        return _read_text(" ".join(scanner.loose), duration, where)
    times = [t.time for t in turns]
    known = [t for t in times if t is not None]
    if len(known) < len(times) or known != sorted(known):
        # Missing or shuffled times cannot bound the turns; estimate them all instead.
        return _Reading(_estimated_segments([(t.speaker, t.text) for t in turns], duration), True)
    segments: list[Segment] = []
    for i, (turn, start) in enumerate(zip(turns, known, strict=True)):
        if i + 1 < len(known):
            end = known[i + 1]
        else:
            estimate = start + _speaking_seconds(len(_tokens(turn.text)))
            end = duration if duration and duration > start else estimate
        segments.append(_segment([(start, turn.text)], start, end, turn.speaker))
    return _Reading(segments)


# --- plain text ---------------------------------------------------------------------

_SENTENCE_BREAK = re.compile(r"(?<=[.!?…])[\"'”’)]*\s+(?=[\"'“‘(]?[A-Z0-9])")


def _read_text(text: str, duration: float | None, where: str) -> _Reading:
    """No times at all: sentences spread over the episode in proportion to their words."""
    units: list[tuple[str | None, str]] = []
    speaker: str | None = None
    for paragraph in re.split(r"\n", text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        named, paragraph = split_speaker_prefix(paragraph)
        speaker = named or speaker
        units.extend((speaker, s) for s in _SENTENCE_BREAK.split(paragraph) if s.strip())
    if not units:
        raise TranscriptFormatError(f"transcript{where} contains no text")
    return _Reading(_estimated_segments(units, duration), True)


def _speaking_seconds(words: int) -> float:
    return words * 60.0 / WORDS_PER_MINUTE


def _estimated_segments(
    units: Iterable[tuple[str | None, str]], duration: float | None
) -> list[Segment]:
    units = [(speaker, text) for speaker, text in units if _tokens(text)]
    counts = [len(_tokens(text)) for _, text in units]
    total_words = sum(counts)
    total = duration if duration and duration > 0 else _speaking_seconds(total_words)
    segments: list[Segment] = []
    done = 0
    for (speaker, text), count in zip(units, counts, strict=True):
        start = total * done / total_words
        done += count
        end = total * done / total_words
        segments.append(_segment([(start, text)], start, end, speaker))
    return segments


_READERS = {
    "json": _read_json,
    "vtt": _read_cues,
    "srt": _read_cues,
    "html": _read_html,
    "text": _read_text,
}


def _extension(url: str) -> str:
    try:
        return PurePosixPath(urlsplit(url).path).suffix.lower()
    except ValueError:
        return ""
