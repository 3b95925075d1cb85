"""Turn what the user typed (feed URL or file, audio URL or file) into episodes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

from podmill.domain import Episode
from podmill.errors import PodmillError
from podmill.feeds.download import fetch_bytes
from podmill.feeds.identity import file_episode_key, url_episode_key
from podmill.feeds.parse import ParsedFeed, SkippedItem, parse_feed
from podmill.settings import Settings

AUDIO_EXTENSIONS = {".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".wav", ".flac", ".aiff"}


@dataclass
class Resolved:
    episodes: list[Episode]
    feed: ParsedFeed | None = None
    skipped: list[SkippedItem] = field(default_factory=list)


def resolve(
    source: str,
    settings: Settings,
    *,
    limit: int | None = None,
    since: datetime | None = None,
) -> Resolved:
    """Episodes for ``source``: newest first, filtered by ``since``, at most ``limit``."""
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https"):
        return _from_url(source, settings, limit=limit, since=since)
    path = Path(unquote(parsed.path) if parsed.scheme == "file" else source).expanduser()
    if not path.exists():
        raise PodmillError(f"no such file: {path} (give a feed or audio file path, or a URL)")
    if path.is_dir():
        raise PodmillError(f"{path} is a directory; give a feed or audio file, or a URL")
    return _from_file(path.resolve(), limit=limit, since=since)


def _from_file(path: Path, *, limit: int | None, since: datetime | None) -> Resolved:
    from podmill.audio import describe_non_audio, sniff_audio

    with path.open("rb") as handle:
        head = handle.read(4096)
    if sniff_audio(head):
        digest = _sha256(path)
        return Resolved(
            [
                Episode(
                    episode_key=file_episode_key(digest),
                    title=path.stem,
                    audio_url=path.as_uri(),
                    allow_file_urls=True,
                )
            ]
        )
    stripped = head.lstrip(b"\xef\xbb\xbf\xff\xfe\x00 \t\r\n")
    if not stripped.startswith(b"<") and b"<" not in head[:200]:
        raise PodmillError(f"{path} is neither audio nor a feed: it is {describe_non_audio(head)}")
    feed = parse_feed(path.read_bytes(), path.as_uri(), is_local=True)
    return _select(feed, limit=limit, since=since)


def fetched_to_resolve(url: str) -> bool:
    """Whether :func:`resolve` fetches the http(s) ``url`` to learn what it is (its
    name is not an audio file's): a caller waiting on a request may run it apart."""
    return Path(urlparse(url).path).suffix.lower() not in AUDIO_EXTENSIONS


def _from_url(
    url: str, settings: Settings, *, limit: int | None, since: datetime | None
) -> Resolved:
    if not fetched_to_resolve(url):
        return Resolved(
            [Episode(episode_key=url_episode_key(url), title=_url_title(url), audio_url=url)]
        )
    body, _content_type, final_url = fetch_bytes(url, settings)
    from podmill.audio import sniff_audio

    if sniff_audio(body[:4096]):
        return Resolved(
            [Episode(episode_key=url_episode_key(url), title=_url_title(url), audio_url=url)]
        )
    feed = parse_feed(body, final_url, is_local=False, limits=settings.feeds)
    return _select(feed, limit=limit, since=since)


def _select(feed: ParsedFeed, *, limit: int | None, since: datetime | None) -> Resolved:
    floor = datetime.min.replace(tzinfo=UTC)
    episodes = sorted(feed.episodes, key=lambda e: e.published or floor, reverse=True)
    if since is not None:
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        episodes = [e for e in episodes if e.published and e.published >= since]
    if limit is not None:
        episodes = episodes[:limit]
    return Resolved(episodes, feed=feed, skipped=list(feed.skipped))


def _url_title(url: str) -> str:
    name = Path(unquote(urlparse(url).path)).stem
    return name or url


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
