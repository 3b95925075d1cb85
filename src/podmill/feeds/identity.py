"""Episode identity: the stable keys that let podmill process an episode once.

A key is the first 16 hex characters of a SHA-256 over a tagged, canonical string, so it
survives re-fetches, feed moves that keep ``podcast:guid`` or ``atom:link rel="self"``,
and (for local files) renames. ``docs/feeds.md`` states every rule and fallback.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from urllib.request import url2pathname

KEY_LENGTH = 16

_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}


def _digest(*parts: str) -> str:
    # A NUL separator cannot occur in URLs, guids or titles, so ("ab", "c") and
    # ("a", "bc") never hash alike.
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:KEY_LENGTH]


def normalize_url(url: str) -> str:
    """Canonical form of a URL for identity: lowercase scheme and host, no default port,
    no fragment, no trailing slash on the path. Query strings are kept (they often
    select the feed or the file)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        # An unparseable URL (bad port, stray brackets) still needs a stable identity.
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if port is not None and _DEFAULT_PORTS.get(scheme) != port:
        host = f"{host}:{port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        host = f"{userinfo}@{host}"
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, host, path, parts.query, ""))


def feed_identity(podcast_guid: str | None, self_link: str | None, url: str) -> str:
    """The canonical identity of a feed, most stable source first.

    1. ``podcast:guid`` (lowercased): survives moving the feed to another host.
    2. ``atom:link rel="self"`` (normalised): what the publisher says the feed URL is.
    3. The URL it was fetched from (normalised); for a ``file://`` URL or a bare path,
       the resolved absolute path of the file.
    """
    if podcast_guid and podcast_guid.strip():
        return podcast_guid.strip().lower()
    if self_link and self_link.strip() and urlsplit(self_link.strip()).scheme in ("http", "https"):
        return normalize_url(self_link)
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        return str(Path(url2pathname(urlsplit(url).path)).resolve())
    if not scheme or (len(scheme) == 1 and url[1:2] == ":"):
        # A bare path (or a Windows drive letter that urlsplit reads as a scheme).
        return str(Path(url).resolve())
    return normalize_url(url)


def fetch_url_identity(url: str) -> str:
    """The identity of a catalog feed whose document claims an identity another catalog
    feed already holds: its own fetch URL, in a form no document can claim (a
    ``podcast:guid`` identity is lowercased and a self link starts with ``http``, so
    neither can begin with ``URL ``). See docs/feeds.md, "Two URLs, one identity"."""
    return "URL " + normalize_url(url)


def feed_key(identity: str) -> str:
    """Short stable key for a feed identity (see :func:`feed_identity`)."""
    return _digest("feed", identity)


def _identity_basis(
    guid: str | None, enclosure_url: str | None, title: str | None, published: datetime | None
) -> str:
    if guid and guid.strip():
        return "guid:" + guid.strip()
    if enclosure_url and enclosure_url.strip():
        return "enclosure:" + normalize_url(enclosure_url)
    clean_title = " ".join((title or "").split())
    if published is not None:
        when = published if published.tzinfo else published.replace(tzinfo=UTC)
        return f"title-date:{clean_title}|{when.astimezone(UTC).isoformat(timespec='seconds')}"
    return "title:" + clean_title


def episode_key(
    feed_identity: str,
    guid: str | None,
    enclosure_url: str | None,
    title: str | None,
    published: datetime | None,
) -> str:
    """Key of one feed item: the feed identity plus the first of guid, enclosure URL,
    title + publication time, title alone that the item has."""
    return _digest("episode", feed_identity, _identity_basis(guid, enclosure_url, title, published))


@dataclass(frozen=True)
class ItemIdentity:
    """What an item contributes to its key, in document order."""

    guid: str | None
    enclosure_url: str | None
    title: str | None
    published: datetime | None


def unique_episode_keys(feed_identity: str, items: Sequence[ItemIdentity]) -> list[str]:
    """Keys for the items of one feed, unique within it.

    The first item (document order) with a given identity keeps the plain
    :func:`episode_key`; a later duplicate is told apart by its enclosure URL, and if that
    collides too, by its occurrence number. Publishers reuse guids by mistake, and two
    distinct items must never share artifacts.
    """
    keys: list[str] = []
    seen: set[str] = set()
    for item in items:
        basis = _identity_basis(item.guid, item.enclosure_url, item.title, item.published)
        key = _digest("episode", feed_identity, basis)
        if key in seen and item.enclosure_url:
            key = _digest("episode", feed_identity, basis, normalize_url(item.enclosure_url))
        occurrence = 2
        while key in seen:
            key = _digest("episode", feed_identity, basis, f"#{occurrence}")
            occurrence += 1
        seen.add(key)
        keys.append(key)
    return keys


def file_episode_key(sha256_hex: str) -> str:
    """Key of a local audio file: its content hash, so moving or renaming it keeps the key."""
    return _digest("file", sha256_hex.strip().lower())


def upload_episode_key(file_key: str, tenant_id: int) -> str:
    """Key of an API upload: the file's key (:func:`file_episode_key`) within the
    uploading tenant, so identical bytes from two tenants are two episodes."""
    return _digest("upload", str(tenant_id), file_key)


def url_episode_key(url: str) -> str:
    """Key of a bare audio URL given without a feed."""
    return _digest("url", normalize_url(url))
