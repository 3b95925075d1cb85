"""Feed parsing: RSS / Atom bytes → the episodes podmill can process.

feedparser does the lenient heavy lifting (RSS 0.9x/1.0/2.0, Atom, broken encodings,
undeclared namespaces, junk before the XML declaration). It keeps only the last of a
repeated tag and drops element text of unknown namespaces, so a second tolerant pass
(:class:`_PodcastTagScanner`) collects the Podcasting 2.0 tags per item. Rules for
enclosure choice and identity are written down in ``docs/feeds.md``.
"""

from __future__ import annotations

import io
import json
import logging
import re
import xml.sax
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import feedparser

from podmill.domain import Chapter, Episode, Person, TranscriptLink
from podmill.errors import FeedError
from podmill.feeds.identity import ItemIdentity, feed_identity, feed_key, unique_episode_keys
from podmill.feeds.transcripts import FORMAT_MIME_TYPES, transcript_format
from podmill.settings import FeedSettings

log = logging.getLogger(__name__)

PODCAST_NAMESPACES = frozenset(
    {
        "https://podcastindex.org/namespace/1.0",
        # The URI the spec used before 2021; many feeds still declare it.
        "https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/1.0.md",
    }
)

# Extensions that identify audio when the enclosure has no usable MIME type.
AUDIO_EXTENSIONS = {
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/opus",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
}
# Untyped enclosures with these extensions may be video (WebM and MP4 carry both).
VIDEO_OR_AMBIGUOUS_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm"})
UNTYPED_MIME_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
# audio/* types that name a playlist, not a media file.
PLAYLIST_MIME_TYPES = frozenset(
    {"audio/x-mpegurl", "audio/mpegurl", "audio/x-scpls", "audio/scpls"}
)


@dataclass
class SkippedItem:
    """A feed item that did not become an episode, and why."""

    title: str
    reason: str


@dataclass
class ParsedFeed:
    feed_key: str
    title: str
    url: str
    episodes: list[Episode]
    skipped: list[SkippedItem]
    podcast_guid: str | None
    language: str | None
    # what the document claims (podcast:guid, self link or URL: feeds/identity.py) and
    # each episode's share of its key, so the catalog can key it as another identity
    identity: str = ""
    item_identities: list[ItemIdentity] = field(default_factory=list)
    # what the caps of the ``feeds`` settings cut (items dropped, fields shortened)
    warnings: list[str] = field(default_factory=list)

    def keyed_as(self, identity: str) -> ParsedFeed:
        """This feed with its feed key and episode keys derived from ``identity``
        instead of the one the document claims (the catalog's, for a feed whose claim
        belongs to another catalog feed)."""
        key = feed_key(identity)
        keys = unique_episode_keys(identity, self.item_identities)
        episodes = [
            replace(episode, episode_key=episode_key, feed_key=key)
            for episode, episode_key in zip(self.episodes, keys, strict=True)
        ]
        return replace(self, feed_key=key, identity=identity, episodes=episodes)


def parse_feed(
    data: bytes, url: str, *, is_local: bool = False, limits: FeedSettings | None = None
) -> ParsedFeed:
    """Parse feed bytes fetched from ``url`` into episodes.

    ``url`` is where the feed came from (``http(s)://`` or ``file://``); relative
    enclosure and transcript URLs resolve against it. ``is_local`` marks a feed read
    from a local file: only then are ``file://`` enclosures honoured.

    Items without usable audio are listed in ``skipped`` with a reason; an item with no
    audio but a ``podcast:transcript`` is kept with ``audio_url=None``.

    ``limits`` (default: the ``feeds`` settings' defaults) caps what one document can
    put in: over ``max_items`` items only the newest are read; longer titles and
    descriptions are cut. Each cut is said in ``warnings`` and logged, never an error.

    Raises :class:`FeedError` (and nothing else) when the document is not a feed or no
    item can be processed; the message is one line saying what was wrong and what to do.
    """
    limits = limits or FeedSettings()
    if not isinstance(data, bytes | bytearray):
        raise FeedError(f"feed data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data.strip():
        raise FeedError(
            f"feed is empty ({len(data)} bytes) at {url}: check that the URL serves the feed"
        )
    parsed = _run_feedparser(data)
    entries = list(parsed.get("entries") or [])
    if not entries:
        raise FeedError(_no_entries_message(data, parsed, url))

    channel = parsed.get("feed") or {}
    tags = _scan_podcast_tags(data, parsed.get("encoding"))
    item_tags = _match_item_tags(entries, tags.items if tags else None)
    warnings: list[str] = []
    if len(entries) > limits.max_items:
        kept = _newest(entries, limits.max_items)
        warnings.append(
            f"the feed has {len(entries)} items; only the newest {limits.max_items} are read "
            "(feeds.max_items)"
        )
        entries = [entries[i] for i in kept]
        item_tags = [item_tags[i] for i in kept]

    podcast_guid = (tags.channel_guid if tags else None) or _text(channel.get("podcast_guid"))
    podcast_guid = podcast_guid.strip() if podcast_guid and podcast_guid.strip() else None
    self_link = next(
        (link.get("href") for link in channel.get("links") or [] if link.get("rel") == "self"),
        None,
    )
    identity = feed_identity(podcast_guid, self_link, url)
    title = _plain_text(channel.get("title_detail")) or _plain_text(channel.get("title"))
    if tags is not None and title in tags.live_titles and title != tags.channel_title:
        # feedparser reads a podcast:liveItem as channel content: when the channel's own
        # title was lost to it (an <image title=...> before it does that), a live
        # item's title stands in for the feed's. An item's title never names the feed.
        title = " ".join((tags.channel_title or "").split())
    feed_title = _cut(title, limits.max_title_chars) or "Untitled feed"
    key = feed_key(identity)

    context = _ItemContext(url, is_local, feed_title, key, limits)
    episodes: list[Episode] = []
    identities: list[ItemIdentity] = []
    skipped: list[SkippedItem] = []
    problems: list[_Problem] = []
    for position, (entry, p20) in enumerate(zip(entries, item_tags, strict=True), start=1):
        try:
            outcome = _read_item(entry, p20, position, context)
        except Exception as exc:  # one unreadable item must not sink the feed
            outcome = _Problem("error", "", f"item could not be read: {_one_line(str(exc))}")
            outcome.title = _fallback_title(position, None, None, None)
        if isinstance(outcome, _Problem):
            problems.append(outcome)
            skipped.append(SkippedItem(outcome.title, outcome.reason))
        else:
            episodes.append(outcome[0])
            identities.append(outcome[1])

    if not episodes:
        raise FeedError(_no_usable_items_message(len(entries), problems))

    for episode, episode_key in zip(
        episodes, unique_episode_keys(identity, identities), strict=True
    ):
        episode.episode_key = episode_key

    if feed_title != (title or "Untitled feed"):
        context.cut_titles += 1
    if context.cut_titles:
        warnings.append(
            f"{context.cut_titles} title(s) cut to {limits.max_title_chars} characters "
            "(feeds.max_title_chars)"
        )
    if context.cut_descriptions:
        warnings.append(
            f"{context.cut_descriptions} description(s) cut to "
            f"{limits.max_description_chars} characters (feeds.max_description_chars)"
        )
    for warning in warnings:
        log.warning("feed %s: %s", url, warning)
    language = _language(channel.get("language"))
    for episode in episodes:
        episode.language = episode.language or language
    return ParsedFeed(
        feed_key=key,
        title=feed_title,
        url=url,
        episodes=episodes,
        skipped=skipped,
        podcast_guid=podcast_guid,
        language=language,
        identity=identity,
        item_identities=identities,
        warnings=warnings,
    )


def _newest(entries: list[Any], count: int) -> list[int]:
    """Positions of the ``count`` newest entries (undated ones count as oldest; ties
    keep feed order), in feed order."""
    oldest = datetime.min.replace(tzinfo=UTC)
    order = sorted(
        range(len(entries)), key=lambda i: (_published(entries[i]) or oldest, -i), reverse=True
    )
    return sorted(order[:count])


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# --- feedparser and whole-document checks ------------------------------------------


def _run_feedparser(data: bytes) -> Any:
    try:
        # A stream, never bytes: feedparser treats a bytes argument as a file name first.
        return feedparser.parse(io.BytesIO(data))
    except Exception as exc:  # feedparser is lenient, but its decoders are not all
        raise FeedError(
            f"feed could not be parsed: {_one_line(str(exc)) or type(exc).__name__}; "
            "check that the URL serves an RSS or Atom feed"
        ) from exc


def _bozo_message(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, xml.sax.SAXParseException):
        return f"{exc.getMessage()} at line {exc.getLineNumber()}, column {exc.getColumnNumber()}"
    return _one_line(str(exc)) or type(exc).__name__


def _no_entries_message(data: bytes, parsed: Any, url: str) -> str:
    if parsed.get("version"):
        if parsed.get("bozo"):
            return (
                "feed XML is malformed and no items could be recovered: "
                f"{_bozo_message(parsed.get('bozo_exception'))}; ask the publisher to fix "
                "the feed or try another feed URL"
            )
        # Errors name what was wrong, never the document's own words (its title).
        return "feed has no items: it contains no <item> or <entry>; check the URL"
    return "not a feed: " + _describe_non_feed(data, parsed, url)


# A page that is HTML though it has no <html> element: an IIS "Document Moved" body
# (<head><title>…), a fragment such as the spec's HTML transcript (<cite>, <p>).
_HTML_START = re.compile(r"<(?:head|body|title|h[1-6]|p|div|cite|a|br|meta|link)\b", re.I)


def _describe_non_feed(data: bytes, parsed: Any, url: str) -> str:
    if data.lstrip()[:5] == b"%PDF-":
        return "the document is a PDF document; give the podcast's RSS or Atom feed URL"
    text = _decode(data, parsed.get("encoding"))
    head = re.sub(r"<!--.*?-->", "", text[:4096], flags=re.DOTALL).lstrip("\ufeff \t\r\n")
    if head[:1] in ("{", "["):
        try:
            json.loads(text)
        except ValueError:
            pass
        else:
            return (
                "the document is JSON (JSON Feed is not supported); "
                "give the podcast's RSS or Atom feed URL"
            )
    lowered = head.lower()
    if lowered.startswith("<!doctype html") or "<html" in lowered or _HTML_START.match(head):
        page = _HtmlPageScanner.scan(text)
        what = "the document is HTML"
        if page.feed_links:  # the link itself is the page's bytes: not quoted
            return (
                f'{what} that links to a feed (<link rel="alternate">); open the page '
                "and give that feed's URL"
            )
        return f"{what}; give the podcast's RSS or Atom feed URL, not a web page"
    if parsed.get("bozo"):
        return (
            f"the document is not XML ({_bozo_message(parsed.get('bozo_exception'))}); "
            "check that the URL serves the podcast's RSS or Atom feed"
        )
    return "the XML root element is not <rss>, <feed> or <rdf:RDF>; give an RSS or Atom feed"


class _HtmlPageScanner(HTMLParser):
    """Pulls the title and ``<link rel="alternate">`` feed URLs out of a web page."""

    FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/xml"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.feed_links: list[str] = []
        self._in_title = False

    @classmethod
    def scan(cls, text: str) -> _HtmlPageScanner:
        scanner = cls()
        try:
            scanner.feed(text[:200_000])
            scanner.close()
        except Exception:  # best effort: the page is only described in an error message
            pass
        scanner.title = " ".join(scanner.title.split())[:80]
        return scanner

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and not self.title:
            self._in_title = True
        elif tag == "link":
            values = {k: (v or "") for k, v in attrs}
            rel = values.get("rel", "").lower().split()
            is_feed = values.get("type", "").lower() in self.FEED_TYPES
            if "alternate" in rel and is_feed and values.get("href"):
                self.feed_links.append(values["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


# --- Podcasting 2.0 second pass -----------------------------------------------------


@dataclass
class _ItemTags:
    guid: str | None = None
    transcripts: list[dict[str, str]] = field(default_factory=list)
    chapters_url: str | None = None
    persons: list[Person] = field(default_factory=list)
    # podcast:alternateEnclosure: (type, length, first downloadable source uri)
    alternates: list[tuple[str, str | None, str]] = field(default_factory=list)


@dataclass
class _FeedTags:
    channel_guid: str | None
    items: list[_ItemTags]
    # The channel's own <title> (None: it has none) and the titles of its live items,
    # which feedparser reads as channel content (see parse_feed).
    channel_title: str | None = None
    live_titles: set[str] = field(default_factory=set)


class _PodcastTagScanner(HTMLParser):
    """Collects ``podcast:*`` tags per item from the raw document.

    html.parser is used because it never gives up: it reads past undefined entities,
    undeclared prefixes and truncation that stop an XML parser. It lowercases names,
    which is harmless here, and sees prefixed names as written, so prefixes are mapped
    to namespace URIs from the ``xmlns:`` declarations it passes.
    """

    ITEM_TAGS = frozenset({"item", "entry"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        # "podcast" also counts undeclared: a missing xmlns is a common publisher slip.
        self.prefixes = {"podcast"}
        self.channel_guid: str | None = None
        self.channel_title: str | None = None
        self.live_titles: set[str] = set()
        self.items: list[_ItemTags] = []
        self._in_image = 0  # <image>, <textInput>: their <title> is not the channel's
        self._item: _ItemTags | None = None
        self._item_depth = 0
        self._live_depth = 0
        self._capture: tuple[str, dict[str, str]] | None = None
        self._text: list[str] = []
        self._alternate: dict[str, str] | None = None  # inside podcast:alternateEnclosure

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: (v or "").strip() for k, v in attrs}
        for name, value in values.items():
            if name.startswith("xmlns:") and value in PODCAST_NAMESPACES:
                self.prefixes.add(name[len("xmlns:") :])
        if tag in ("image", "textinput"):
            self._in_image += 1
        elif tag == "title" and self._item is None and self._capture is None:
            if self._live_depth or (not self._in_image and self.channel_title is None):
                self._start_capture(tag, values)
            return
        if tag in self.ITEM_TAGS:
            if self._item is not None:
                self._item_depth += 1  # a nested <entry> stays part of its item
            elif self._live_depth == 0:
                self._item = _ItemTags()
                self._item_depth = 1
            return
        prefix, _, local = tag.rpartition(":")
        if prefix not in self.prefixes:
            if self._item is not None and self._item_depth == 1 and tag in ("guid", "id"):
                self._start_capture(tag, values)
            return
        if local == "liveitem":
            # A live item carries its own guid and transcripts; they belong to no item.
            self._live_depth += 1
        elif self._live_depth:
            return
        elif self._item is None:
            if local == "guid" and self.channel_guid is None:
                self._start_capture(tag, values)
        elif local == "transcript" and values.get("url"):
            self._item.transcripts.append(values)
        elif local == "chapters" and values.get("url") and self._item.chapters_url is None:
            self._item.chapters_url = values["url"]
        elif local == "person":
            self._start_capture(tag, values)
        elif local == "alternateenclosure":
            self._alternate = values
        elif local == "source" and self._alternate is not None and values.get("uri"):
            # the first source a plain download can fetch (not a torrent, not IPFS)
            content_type = values.get("contenttype", "")
            uri = values["uri"]
            if "uri" not in self._alternate and not content_type and "://" in uri:
                self._alternate["uri"] = uri

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def _start_capture(self, tag: str, values: dict[str, str]) -> None:
        self._capture = (tag, values)
        self._text = []

    def handle_data(self, data: str) -> None:
        if self._capture is not None:
            self._text.append(data)

    def unknown_decl(self, data: str) -> None:
        if data.startswith("CDATA["):  # html.parser hands CDATA sections over here
            self.handle_data(data[len("CDATA[") :])

    def handle_endtag(self, tag: str) -> None:
        if self._capture is not None and self._capture[0] == tag:
            self._finish_capture()
        if tag in ("image", "textinput") and self._in_image:
            self._in_image -= 1
        if tag in self.ITEM_TAGS and self._item is not None:
            self._item_depth -= 1
            if self._item_depth == 0:
                if self._capture is not None:  # an unclosed tag ends with its item
                    self._finish_capture()
                self.items.append(self._item)
                self._item = None
        elif tag.rpartition(":")[2] == "liveitem" and self._live_depth:
            self._live_depth -= 1
        elif tag.rpartition(":")[2] == "alternateenclosure" and self._alternate is not None:
            alt, self._alternate = self._alternate, None
            if self._item is not None and alt.get("uri"):
                self._item.alternates.append(
                    (alt.get("type", "").lower(), alt.get("length") or None, alt["uri"])
                )

    def _finish_capture(self) -> None:
        assert self._capture is not None
        tag, values = self._capture
        text = " ".join("".join(self._text).split())
        self._capture = None
        local = tag.rpartition(":")[2]
        if tag == "title" and self._item is None:
            if self._live_depth:
                self.live_titles.add(text)
            else:
                self.channel_title = text
        elif self._item is None:
            if local == "guid" and text:
                self.channel_guid = text
        elif local in ("guid", "id") and ":" not in tag:
            self._item.guid = text or None
        elif local == "person" and text:
            self._item.persons.append(
                Person(
                    name=text,
                    # The spec's defaults, so consumers need not know them.
                    role=values.get("role") or "host",
                    group=values.get("group") or "cast",
                    href=values.get("href") or None,
                    img=values.get("img") or None,
                )
            )

    def finish(self) -> _FeedTags:
        self.close()
        if self._item is not None:  # a truncated feed still counts its last item
            self.items.append(self._item)
            self._item = None
        return _FeedTags(self.channel_guid, self.items, self.channel_title, self.live_titles)


def _scan_podcast_tags(data: bytes, encoding: str | None) -> _FeedTags | None:
    text = _decode(data, encoding)
    if "podcast:" not in text and not any(ns in text for ns in PODCAST_NAMESPACES):
        return None
    scanner = _PodcastTagScanner()
    try:
        scanner.feed(text)
        return scanner.finish()
    except Exception:
        # html.parser can still trip on a mangled declaration; then feedparser's
        # single-valued view of the tags is the fallback.
        return None


def _match_item_tags(entries: list[Any], items: list[_ItemTags] | None) -> list[_ItemTags | None]:
    if items is None:
        return [None] * len(entries)
    if len(items) == len(entries):
        return list(items)
    # The two parsers disagree on the item count (a badly broken feed): pair by guid.
    by_guid: dict[str, _ItemTags] = {}
    for item in items:
        if item.guid and item.guid not in by_guid:
            by_guid[item.guid] = item
    return [by_guid.get((_text(entry.get("id")) or "").strip()) for entry in entries]


# --- one item -----------------------------------------------------------------------


@dataclass
class _ItemContext:
    feed_url: str
    is_local: bool
    feed_title: str
    feed_key: str
    limits: FeedSettings
    cut_titles: int = 0
    cut_descriptions: int = 0

    def cut_title(self, title: str) -> str:
        if len(title) <= self.limits.max_title_chars:
            return title
        self.cut_titles += 1
        return _cut(title, self.limits.max_title_chars)

    def cut_description(self, text: str | None) -> str | None:
        if text is None or len(text) <= self.limits.max_description_chars:
            return text
        self.cut_descriptions += 1
        return _cut(text, self.limits.max_description_chars)

    def resolve(self, href: str) -> str:
        href = href.strip()
        return urljoin(self.feed_url, href) if self.feed_url else href

    def allowed(self, url: str) -> bool:
        scheme = urlsplit(url).scheme.lower()
        return scheme in ("http", "https") or (self.is_local and scheme == "file")


@dataclass
class _Problem:
    """Why an item was skipped; ``category`` groups them for the feed-level message."""

    category: str
    detail: str
    reason: str
    title: str = ""


@dataclass
class _Enclosure:
    url: str
    mime_type: str  # lowercased, parameters dropped; "" when absent
    length: Any


def _read_item(
    entry: Any, p20: _ItemTags | None, position: int, ctx: _ItemContext
) -> tuple[Episode, ItemIdentity] | _Problem:
    guid = (_text(entry.get("id")) or "").strip() or None
    published = _published(entry)
    transcripts = _transcripts(entry, p20, ctx)
    # The item's own enclosures first; podcast:alternateEnclosure renditions after
    # (an audio-only rendition of a video episode, say).
    alternates = [
        _Enclosure(uri, mime, length) for mime, length, uri in (p20.alternates if p20 else [])
    ]
    chosen, problem = _choose_enclosure(
        _enclosures(entry) + alternates, ctx, urlless=_has_urlless_enclosure(entry)
    )
    raw_title = _plain_text(entry.get("title_detail")) or _plain_text(entry.get("title"))
    raw_title = ctx.cut_title(raw_title)
    title = raw_title or _fallback_title(position, published, guid, chosen.url if chosen else None)
    if chosen is None and not transcripts:
        assert problem is not None
        problem.title = title
        return problem

    audio_url = chosen.url if chosen else None
    mime_type = None
    if chosen is not None:
        mime_type = chosen.mime_type
        if mime_type in UNTYPED_MIME_TYPES:
            mime_type = AUDIO_EXTENSIONS.get(_extension(chosen.url))
    chapters_url = p20.chapters_url if p20 else _attr(entry.get("podcast_chapters"), "url")
    chapters_url = ctx.resolve(chapters_url) if chapters_url else None
    episode = Episode(
        episode_key="",  # assigned once all items are known (duplicates need the whole feed)
        title=title,
        audio_url=audio_url,
        feed_key=ctx.feed_key,
        feed_title=ctx.feed_title,
        feed_url=ctx.feed_url,
        guid=guid,
        published=published,
        mime_type=mime_type,
        enclosure_length=_length(chosen.length) if chosen else None,
        duration=_duration(entry.get("itunes_duration")),
        description=ctx.cut_description(_description(entry)),
        transcripts=transcripts,
        chapters_url=chapters_url if chapters_url and ctx.allowed(chapters_url) else None,
        chapters=_psc_chapters(entry),
        persons=list(p20.persons) if p20 else [],
        language=_language(entry.get("language")),  # dc:language; else the channel's
        allow_file_urls=ctx.is_local,
        # "none" needs no saying: the episode's only input is its transcript.
        enclosure_problem=problem.reason if problem and problem.category != "none" else None,
    )
    # The identity uses the publisher's title, not our fallback wording.
    return episode, ItemIdentity(guid, audio_url, raw_title or None, published)


def _fallback_title(
    position: int, published: datetime | None, guid: str | None, url: str | None
) -> str:
    if published is not None:
        label = published.date().isoformat()
    elif guid:
        label = guid
    elif url:
        label = unquote(PurePosixPath(urlsplit(url).path).name) or f"item {position}"
    else:
        label = f"item {position}"
    return f"Untitled episode ({label})"


def _enclosures(entry: Any) -> list[_Enclosure]:
    found: list[_Enclosure] = []
    seen: set[str] = set()
    # RSS <enclosure> and Atom rel="enclosure" first: they are the podcast's media;
    # media:content is often a thumbnail or an alternative rendition.
    sources: Iterable[Any] = [
        *((e.get("href") or e.get("url"), e) for e in entry.get("enclosures") or []),
        *((m.get("url"), m) for m in entry.get("media_content") or []),
    ]
    for href, raw in sources:
        href = (_text(href) or "").strip()
        if not href or href in seen:
            continue
        seen.add(href)
        mime = (_text(raw.get("type")) or "").split(";")[0].strip().lower()
        found.append(_Enclosure(href, mime, raw.get("length") or raw.get("filesize")))
    return found


def _has_urlless_enclosure(entry: Any) -> bool:
    """Whether the item has an audio (or untyped) ``<enclosure>`` without a url
    attribute: a publisher's mistake, which deserves saying rather than "no enclosure"."""
    for raw in entry.get("enclosures") or []:
        if (_text(raw.get("href") or raw.get("url")) or "").strip():
            continue
        mime = (_text(raw.get("type")) or "").split(";")[0].strip().lower()
        if mime in UNTYPED_MIME_TYPES or mime.partition("/")[0] in ("", "audio", "x-audio"):
            return True
    return False


def _classify(enclosure: _Enclosure) -> str:
    mime = enclosure.mime_type
    major = mime.partition("/")[0]
    if mime in PLAYLIST_MIME_TYPES:
        return "other"
    if major in ("audio", "x-audio"):
        return "audio"
    if major == "video":
        return "video"
    if mime in UNTYPED_MIME_TYPES:
        ext = _extension(enclosure.url)
        if ext in AUDIO_EXTENSIONS:
            return "audio"
        if ext in VIDEO_OR_AMBIGUOUS_EXTENSIONS:
            return "ambiguous"
    return "other"


def _choose_enclosure(
    enclosures: list[_Enclosure], ctx: _ItemContext, *, urlless: bool = False
) -> tuple[_Enclosure | None, _Problem | None]:
    """The first audio enclosure with an allowed URL, else the reason there is none.
    ``urlless``: the item has an audio ``<enclosure>`` without a url attribute."""
    if urlless and not any(_classify(e) == "audio" for e in enclosures):
        return None, _Problem(
            "nourl", "", "its <enclosure> has no url attribute; ask the publisher to fix the feed"
        )
    if not enclosures:
        return None, _Problem("none", "", "no enclosure and no podcast:transcript")
    kinds = [(_classify(e), e) for e in enclosures]
    refused: list[str] = []
    for kind, enclosure in kinds:
        if kind != "audio":
            continue
        url = ctx.resolve(enclosure.url)
        if ctx.allowed(url):
            return _Enclosure(url, enclosure.mime_type, enclosure.length), None
        refused.append(url)
    if refused:
        scheme = urlsplit(refused[0]).scheme or "relative"
        if scheme == "file":
            why = "file:// enclosures are only honoured in local feed files"
        elif scheme == "relative":
            why = "a relative URL needs the feed's URL to resolve against"
        else:
            why = "podmill downloads http and https only"
        return None, _Problem(
            "scheme", scheme, f"audio enclosure URL {refused[0]!r} not allowed: {why}"
        )
    videos = [e.mime_type for kind, e in kinds if kind == "video"]
    if videos:
        return None, _Problem(
            "video", videos[0], f"video-only enclosure ({videos[0]}); podmill processes audio"
        )
    ambiguous = [e for kind, e in kinds if kind == "ambiguous"]
    if ambiguous:
        ext = _extension(ambiguous[0].url)
        return None, _Problem(
            "ambiguous",
            ext,
            f"enclosure has no audio MIME type and a {ext} URL, which may be video; "
            "podmill processes audio",
        )
    types = ", ".join(sorted({e.mime_type or "untyped" for e in enclosures}))
    return None, _Problem("other", types, f"no audio enclosure (found {types})")


def _transcripts(entry: Any, p20: _ItemTags | None, ctx: _ItemContext) -> list[TranscriptLink]:
    if p20 is not None:
        raw_links = p20.transcripts
    else:
        single = entry.get("podcast_transcript")
        raw_links = [dict(single)] if isinstance(single, dict) else []
    links: list[TranscriptLink] = []
    seen: set[str] = set()
    for raw in raw_links:
        href = (raw.get("url") or "").strip()
        if not href:
            continue
        url = ctx.resolve(href)
        if url in seen or not ctx.allowed(url):
            continue
        seen.add(url)
        mime = (raw.get("type") or "").split(";")[0].strip().lower()
        links.append(
            TranscriptLink(
                url=url,
                mime_type=mime or _guess_transcript_mime(url),
                language=(raw.get("language") or "").strip() or None,
                rel=(raw.get("rel") or "").strip() or None,
            )
        )
    return links


def _guess_transcript_mime(url: str) -> str:
    fmt = transcript_format(None, url)
    return FORMAT_MIME_TYPES[fmt][0] if fmt else ""


def _psc_chapters(entry: Any) -> list[Chapter]:
    psc = entry.get("psc_chapters")
    raw_chapters = psc.get("chapters") if isinstance(psc, dict) else None
    chapters: list[Chapter] = []
    for raw in raw_chapters or []:
        start = raw.get("start_parsed")
        seconds = start.total_seconds() if start is not None else _clock_seconds(raw.get("start"))
        if seconds is None:
            continue
        chapters.append(
            Chapter(
                start=round(seconds, 3),
                title=" ".join((raw.get("title") or "").split()),
                url=(raw.get("href") or "").strip() or None,
            )
        )
    return sorted(chapters, key=lambda c: c.start)


def _clock_seconds(value: Any) -> float | None:
    """``HH:MM:SS(.mmm)``, ``MM:SS(.mmm)`` or ``SS(.mmm)`` → seconds."""
    text = (_text(value) or "").strip()
    if not re.fullmatch(r"\d+(:\d{1,2}){0,2}(\.\d+)?", text):
        return None
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


# --- field helpers ------------------------------------------------------------------

# "03 Apr 02 1500 GMT": RFC 822 allows an "hhmm" time, email.utils does not.
_COLONLESS_TIME = re.compile(r"(\d{1,2} [A-Za-z]{3,9} \d{2,4}) (\d{2})(\d{2})(\d{2})?\b")


def _published(entry: Any) -> datetime | None:
    """Publication time, timezone-aware, or None if the feed's date is unreadable.

    email.utils reads RFC 822 dates first: it keeps the stated offset and maps 2-digit
    years the RFC 2822 way (70 → 1970, where feedparser says 2070). feedparser's parse
    covers ISO 8601 and the rest.
    """
    for raw_key, parsed_key in (("published", "published_parsed"), ("updated", "updated_parsed")):
        # dict.get: FeedParserDict.get would alias "updated" to "published" with a warning.
        raw = (_text(dict.get(entry, raw_key)) or "").strip()
        if not raw:
            continue
        for candidate in (raw, _COLONLESS_TIME.sub(_colon_time, raw)):
            try:
                when = parsedate_to_datetime(candidate)
            except (TypeError, ValueError, IndexError, OverflowError):
                continue
            return when if when.tzinfo else when.replace(tzinfo=UTC)
        struct = dict.get(entry, parsed_key)
        if struct:
            try:
                return datetime(*struct[:6], tzinfo=UTC)
            except (TypeError, ValueError, OverflowError):
                continue
    return None


def _colon_time(match: re.Match[str]) -> str:
    seconds = match.group(4) or "00"
    return f"{match.group(1)} {match.group(2)}:{match.group(3)}:{seconds}"


def _length(value: Any) -> int | None:
    text = (_text(value) or "").strip()
    if not text.isdigit():
        return None
    number = int(text)
    return number if number > 0 else None


def _duration(value: Any) -> float | None:
    """``itunes:duration`` in seconds: ``3723``, ``62:03`` or ``1:02:03``; else None."""
    text = (_text(value) or "").strip()
    if not re.fullmatch(r"\d+(?::\d{1,2}){0,2}(?:\.\d+)?", text):
        return None
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds if seconds > 0 else None


def _language(value: Any) -> str | None:
    text = (_text(value) or "").strip()
    return text[:35] or None  # a BCP 47 tag is short; a feed's junk is not kept whole


def _description(entry: Any) -> str | None:
    """The item's text: a plain-text summary (itunes:summary) if there is one, else the
    fullest HTML (content:encoded before description) with tags stripped."""
    summary = entry.get("summary_detail")
    candidates = [summary] if summary else []
    candidates += list(entry.get("content") or [])
    plain = [c for c in candidates if c.get("type") == "text/plain" and _text(c.get("value"))]
    html = [c for c in candidates if c.get("type") != "text/plain" and _text(c.get("value"))]
    if summary in html:  # content:encoded is usually the fuller version of the notes
        html.remove(summary)
        html.append(summary)
    for detail in plain + html:
        text = _plain_text(detail)
        if text:
            return text
    return None


def _plain_text(value: Any) -> str:
    """Text of a feedparser value or ``*_detail`` dict, with any HTML removed."""
    if isinstance(value, dict):
        kind = value.get("type") or ""
        text = _text(value.get("value")) or ""
        if kind in ("text/html", "application/xhtml+xml") or _looks_like_html(text):
            return html_to_text(text)
        return text.strip()
    text = _text(value) or ""
    return html_to_text(text) if _looks_like_html(text) else text.strip()


_TAG_LIKE = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>|&[#a-zA-Z0-9]+;")


def _looks_like_html(text: str) -> bool:
    return bool(_TAG_LIKE.search(text))


class _TextExtractor(HTMLParser):
    BLOCKS = frozenset(
        {"p", "br", "div", "li", "ul", "ol", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "hr"}
    )
    SKIP = frozenset({"script", "style"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skip:
            self._skip -= 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Readable plain text of an HTML fragment: tags dropped, entities decoded, one line
    per block element. Show notes escaped twice (``&lt;p&gt;`` in the XML) get a second
    pass."""
    text = markup
    for _ in range(2):
        extractor = _TextExtractor()
        try:
            extractor.feed(text)
            extractor.close()
        except Exception:  # html.parser can raise on a mangled declaration
            return " ".join(text.split())
        lines = (" ".join(line.split()) for line in "".join(extractor.parts).splitlines())
        text = "\n".join(line for line in lines if line)
        if not re.search(r"<\s*/?\s*(p|br|div|a|li|ul|ol|h\d|span|strong|em|b|i)\b", text):
            break
    return text


def _decode(data: bytes, encoding: str | None) -> str:
    try:
        return data.decode(encoding or "utf-8", errors="replace").lstrip("\ufeff")
    except LookupError:
        return data.decode("utf-8", errors="replace").lstrip("\ufeff")


def _extension(url: str) -> str:
    try:
        path = urlsplit(url).path
    except ValueError:
        return ""
    return PurePosixPath(unquote(path)).suffix.lower()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _attr(value: Any, name: str) -> str | None:
    return _text(value.get(name)) if isinstance(value, dict) else None


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- feed-level failure message -----------------------------------------------------


def _no_usable_items_message(total: int, problems: list[_Problem]) -> str:
    noun = "item" if total == 1 else "items"
    groups: dict[str, Counter[str]] = {}
    for problem in problems:
        # An item whose <enclosure> lacks its URL is named: the publisher has to find it.
        detail = problem.title if problem.category == "nourl" else problem.detail
        groups.setdefault(problem.category, Counter())[detail] += 1
    labels = {
        "video": "video-only",
        "none": "with no enclosure",
        "nourl": "whose <enclosure> has no url attribute",
        "other": "with non-audio enclosures",
        "ambiguous": "with untyped, possibly video enclosures",
        "scheme": "with disallowed URL schemes",
        "error": "unreadable",
    }
    parts = []
    for category, details in groups.items():
        count = sum(details.values())
        shown = [d for d in details if d]
        named = ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")
        parts.append(f"{count} {labels[category]}" + (f": {named}" if named else ""))
    if set(groups) == {"video"}:
        advice = "podmill processes audio; use the show's audio feed if it has one"
    elif set(groups) == {"none"}:
        advice = "this looks like a news or blog feed, not a podcast"
    elif set(groups) == {"nourl"}:
        advice = "ask the publisher to fix the feed"
    else:
        advice = "check that this is the podcast's audio feed"
    return (
        f"feed has {total} {noun} but none with an audio enclosure or a transcript "
        f"({'; '.join(parts)}); {advice}"
    )
