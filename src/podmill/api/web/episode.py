"""The episode page: the stored audio in a player beside its transcript and topic tree,
with the feed's chapters and the transcript downloads; and the media it plays.

``/view/episode/{key}`` renders the transcript as sentences, one ``<span>`` each with
its times (never one element per word: a 3-hour transcript stays a few thousand
elements); the word times travel in one JSON block that ``static/episode.js`` reads to
mark the current word and to seek to a clicked one. ``/view/episode/{key}/media`` serves
the stored audio with HTTP ranges (206, 416) so the player can seek. Every route asks
the platform for the episode first: a tenant reaches exactly the episodes the API shows
it (``Platform.episode`` / ``episode_by_key``), every other key is a 404.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from pathlib import Path
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from podmill.api.episodes import MEDIA_TYPES
from podmill.api.params import EpisodeKey
from podmill.api.web.pages import PageTenant, router
from podmill.api.web.render import PageError, render
from podmill.audio import SNIFF_BYTES, sniff_audio
from podmill.domain import Transcript
from podmill.platform import Platform
from podmill.sentences import Sentence, join_words_at, sentences_from_dicts, split_sentences
from podmill.storage.artifacts import Artifact, read_set_bytes, read_set_json

# What the player is told each stored container is (a wrong type stops some browsers).
AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "mp4": "audio/mp4",
    "aac": "audio/aac",
    "ogg": "audio/ogg",
    "opus": "audio/ogg; codecs=opus",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "webm": "audio/webm",
    "mka": "audio/x-matroska",
    "aiff": "audio/aiff",
}
# A new paragraph every few sentences (or at a change of speaker) keeps the text readable.
PARAGRAPH_SENTENCES = 6
CHUNK = 64 * 1024


# --------------------------------------------------------------------------- the page


@dataclass
class Paragraph:
    speaker: str | None
    sentences: list[Sentence] = field(default_factory=list)


@dataclass
class TranscriptView:
    """A transcript as the page shows it: paragraphs of sentences, and per word its
    start (``d``: centiseconds after the word before) and where it begins in its
    sentence's text (``o``), for ``episode.js``."""

    paragraphs: list[Paragraph]
    words: dict[str, list[int]]
    speakers: bool
    sentence_count: int


def transcript_view(transcript: Transcript, sentences: list[Sentence]) -> TranscriptView:
    words = transcript.words
    starts = [round(w.start * 100) for w in words]
    # each start as the step from the one before (small numbers: a 3-hour page is ~20%
    # smaller); the transcript's times never run backwards (transcript_formats.prepare)
    steps = [b - a for a, b in zip([0, *starts], starts)]
    offsets: list[int] = []
    paragraphs: list[Paragraph] = []
    for stored in sentences:
        span = words[stored.word_start : stored.word_end]
        text, at = join_words_at(w.text for w in span)  # the text the offsets point into
        offsets.extend(at)
        sentence = replace(stored, text=text)
        speaker = span[0].speaker if span else None
        last = paragraphs[-1] if paragraphs else None
        if last is None or last.speaker != speaker or len(last.sentences) >= PARAGRAPH_SENTENCES:
            last = Paragraph(speaker)
            paragraphs.append(last)
        last.sentences.append(sentence)
    return TranscriptView(
        paragraphs=paragraphs,
        words={"d": steps, "o": offsets},
        speakers=any(w.speaker for w in words),
        sentence_count=len(sentences),
    )


def read_transcript(platform: Platform, key: str) -> TranscriptView | None:
    """The episode's transcript from its finished set (checked), in sentences: the set's
    own ``sentences.json`` when it has one (the split the topic tree was made from)."""
    folder = platform.artifact_dir(key, Artifact.TRANSCRIPT_JSON)
    if folder is None:
        return None
    transcript = Transcript.from_dict(read_set_json(folder, Artifact.TRANSCRIPT_JSON))
    if (folder / Artifact.SENTENCES).is_file():
        sentences = sentences_from_dicts(read_set_json(folder, Artifact.SENTENCES))
    else:
        sentences = split_sentences(transcript)
    return transcript_view(transcript, sentences)


def plain_text(markup: str | None) -> str:
    """The words of a feed's HTML description, without its tags (shown as text)."""
    from html.parser import HTMLParser

    parts: list[str] = []
    parser = HTMLParser(convert_charrefs=True)
    parser.handle_data = parts.append  # type: ignore[method-assign]
    parser.feed(markup or "")
    parser.close()
    return " ".join(" ".join(parts).split())


def web_link(url: Any) -> str | None:
    """``url`` if a page may link it (http or https); a feed's ``javascript:`` is text."""
    if isinstance(url, str) and re.match(r"^https?://", url.strip(), re.IGNORECASE):
        return url.strip()
    return None


@router.get("/view/episode/{key}")
def episode_page(request: Request, key: EpisodeKey, tenant: PageTenant) -> Response:
    platform: Platform = request.app.state.platform
    detail = platform.episode(tenant, key)  # NotFound (a 404 page) unless the tenant sees it
    episode, _feed_id = platform.episode_by_key(tenant, key)
    transcript = read_transcript(platform, key)
    media = stored_media(platform, key)
    tree = detail.get("topics") or None
    chapters = [
        {"start": float(c.start), "title": c.title, "url": web_link(c.url)}
        for c in episode.chapters
    ]
    duration = (tree or {}).get("duration") or detail.get("duration_seconds") or episode.duration
    return render(
        request,
        "episode.html",
        tenant,
        key=key,
        episode=episode,
        job_status=detail.get("status"),
        duration=duration,
        transcript=transcript,
        tree=tree["root"] if tree else None,
        chapters=chapters,
        # podcast:chapters JSON is not fetched by podmill: the file is linked as it is
        chapters_link=None if chapters else web_link(episode.chapters_url),
        media=media,
        original_link=web_link(episode.audio_url),
        description=plain_text(episode.description),
        downloads=[f for f in ("json", "srt", "vtt", "txt") if f in detail["transcript_formats"]],
        summary_md=platform.artifact_dir(key, Artifact.SUMMARY_MD) is not None,
    )


# --------------------------------------------------------------------------- downloads


@router.get("/view/episode/{key}/download/{fmt}")
def download_transcript(
    request: Request,
    key: EpisodeKey,
    fmt: Literal["json", "srt", "vtt", "txt"],
    tenant: PageTenant,
) -> Response:
    """The transcript file, as ``GET /episodes/{key}/transcript?format=`` serves it."""
    path = request.app.state.platform.transcript(tenant, key, fmt)
    return FileResponse(path, media_type=MEDIA_TYPES[fmt], filename=f"{key}.{fmt}")


@router.get("/view/episode/{key}/summary.md")
def download_summary(request: Request, key: EpisodeKey, tenant: PageTenant) -> Response:
    platform: Platform = request.app.state.platform
    platform.episode_by_key(tenant, key)  # NotFound unless visible
    folder = platform.artifact_dir(key, Artifact.SUMMARY_MD)
    if folder is None:
        raise PageError(404, "No summary yet", f"episode {key} has not finished processing")
    body = read_set_bytes(folder, Artifact.SUMMARY_MD)
    return Response(
        body,
        media_type="text/markdown; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{key}.summary.md"'},
    )


# --------------------------------------------------------------------------- media


@dataclass(frozen=True)
class Media:
    path: Path
    content_type: str


def stored_media(platform: Platform, key: str) -> Media | None:
    """The episode's downloaded audio: the file its finished set's ``source.json`` names,
    else (a publisher transcript was used) audio kept in its media folder; only ever a
    regular file inside ``DATA_DIR/episodes/<key>/media/``."""
    store = platform.ctx.artifacts
    media_dir = store.media_dir(key)
    candidates: list[Path] = []
    folder = platform.artifact_dir(key, Artifact.SOURCE)
    if folder is not None:
        source = read_set_json(folder, Artifact.SOURCE)
        if source.get("kind") == "audio" and isinstance(source.get("path"), str):
            candidates.append(store.data_dir / source["path"])
    if media_dir.is_dir():
        candidates.extend(sorted(media_dir.glob("audio.*")))
    root = media_dir.resolve()
    for path in candidates:
        if path.is_symlink() or not path.is_file() or path.resolve().parent != root:
            continue
        content_type = audio_type(path)
        if content_type is not None:
            return Media(path, content_type)
    return None


def audio_type(path: Path) -> str | None:
    """The Content-Type of the audio file at ``path``: what its first bytes announce
    (the stored name may be ``audio.audio``), else its suffix; None if not audio."""
    with path.open("rb") as handle:
        kind = sniff_audio(handle.read(SNIFF_BYTES)) or path.suffix.lstrip(".").lower()
    return AUDIO_TYPES.get(kind)


class RangeNotSatisfiable(Exception):
    pass


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte of a ``Range: bytes=…`` header on a file of
    ``size`` bytes; ``None`` for several ranges (the whole file is the answer, as RFC 9110
    allows); :class:`RangeNotSatisfiable` for a range that is malformed or past the end."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        raise RangeNotSatisfiable(header)
    if "," in spec:
        return None
    match = re.fullmatch(r"\s*(\d*)\s*-\s*(\d*)\s*", spec)
    if match is None or match.group(1) == match.group(2) == "":
        raise RangeNotSatisfiable(header)
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - count), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or (last != "" and int(last) < start):
        raise RangeNotSatisfiable(header)
    return start, end


def _slice(path: Path, start: int, end: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(start)
        left = end - start + 1
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


@router.api_route("/view/episode/{key}/media", methods=["GET", "HEAD"])
def episode_media(request: Request, key: EpisodeKey, tenant: PageTenant) -> Response:
    """The stored audio, whole (200) or one byte range (206); a range past the end or
    malformed is a 416 that names the size."""
    platform: Platform = request.app.state.platform
    platform.episode_by_key(tenant, key)  # NotFound unless visible
    media = stored_media(platform, key)
    if media is None:
        raise PageError(404, "Audio not stored", f"episode {key} has no stored audio")
    stat = os.stat(media.path)
    size = stat.st_size
    etag = '"' + hashlib.sha1(f"{stat.st_mtime_ns}-{size}".encode()).hexdigest()[:20] + '"'
    headers = {
        "accept-ranges": "bytes",
        "content-type": media.content_type,
        "x-content-type-options": "nosniff",
        "etag": etag,
        "last-modified": formatdate(stat.st_mtime, usegmt=True),
        "cache-control": "private, max-age=3600",
    }
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range not in (etag, headers["last-modified"]):
        wanted = None  # the file changed since the client's first part: send it whole
    span: tuple[int, int] | None = None
    if wanted is not None:
        try:
            span = byte_range(wanted, size)
        except RangeNotSatisfiable:
            return Response(
                status_code=416,
                headers={**headers, "content-range": f"bytes */{size}", "content-length": "0"},
            )
    start, end = span if span is not None else (0, size - 1)
    headers["content-length"] = str(end - start + 1 if size else 0)
    status = 200
    if span is not None:
        status = 206
        headers["content-range"] = f"bytes {start}-{end}/{size}"
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers)
    return StreamingResponse(_slice(media.path, start, end), status_code=status, headers=headers)
