"""What podmill publishes in Podcasting 2.0 terms: a chapters document built from an
episode's topic tree, where each of an episode's files lives under a base URL, and a
feed written back with ``podcast:transcript`` and ``podcast:chapters`` tags.

Pure functions, no I/O: the platform reads the rows and artifacts and hands them here.

- Chapters follow the JSON chapters format 1.2.0
  (https://github.com/Podcastindex-org/podcast-namespace/blob/main/chapters/jsonChapters.md):
  one chapter per L1 topic, or per L2 sub-topic where a topic was split
  (``depth=2``), in start order.
- The feed is regenerated from the catalog (podmill does not keep a feed's XML): channel
  title and ``podcast:guid``, and per item its title, guid, date, enclosure, duration,
  description and the publisher's own ``podcast:transcript``, ``podcast:chapters`` and
  ``podcast:person`` tags. docs/podcasting20.md says what is and is not carried over.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import Any

from podmill.domain import Episode, TopicNode, TranscriptLink

PODCAST_NS = "https://podcastindex.org/namespace/1.0"
ITUNES_NS = "http://www.itunes.com/dtds/podcast-1.0.dtd"
CHAPTERS_VERSION = "1.2.0"
CHAPTERS_MIME = "application/json+chapters"
# Depths a chapters document may be built at: 1 = L1 topics, 2 = L2 sub-topics where
# a topic has them.
CHAPTER_DEPTHS = (1, 2)


@dataclass(frozen=True)
class PublishedFile:
    """One of the files podmill publishes per episode: its name under
    ``episodes/<key>/``, its MIME type and the ``rel`` of its ``podcast:transcript``."""

    name: str
    mime_type: str
    rel: str | None = None


# The transcripts podmill links from a feed, in the order their tags are written; the
# API's routes and the files `podmill feed --out` writes share this layout.
TRANSCRIPT_FILES = (
    PublishedFile("transcript.json", "application/json"),
    PublishedFile("transcript.vtt", "text/vtt", "captions"),
    PublishedFile("transcript.srt", "application/x-subrip", "captions"),
)
CHAPTERS_FILE = PublishedFile("chapters.json", CHAPTERS_MIME)


def episode_url(base_url: str, episode_key: str, name: str) -> str:
    """The absolute URL of ``name`` of an episode: ``BASE/episodes/KEY/NAME``."""
    return f"{base_url.rstrip('/')}/episodes/{episode_key}/{name}"


def chapters(
    tree: TopicNode, depth: int = 1, *, title: str | None = None, podcast: str | None = None
) -> dict[str, Any]:
    """The JSON chapters document of a topic tree (its root is L0): ``{"version",
    "title"?, "podcastName"?, "chapters": [{"startTime", "endTime", "title"}]}``.
    ``depth=2`` puts a topic's L2 sub-topics in its place where it has them."""
    if depth not in CHAPTER_DEPTHS:
        raise ValueError(f"chapter depth {depth}: use 1 (topics) or 2 (sub-topics)")
    nodes: list[TopicNode] = []
    for topic in tree.children:
        nodes.extend(topic.children if depth == 2 and topic.children else [topic])
    nodes.sort(key=lambda n: n.start)
    named = {"title": title, "podcastName": podcast}
    return {
        "version": CHAPTERS_VERSION,
        **{k: v for k, v in named.items() if v},
        "chapters": [
            {
                "startTime": round(node.start, 3),
                "endTime": round(node.end, 3),
                "title": node.title.strip() or f"Part {number}",
            }
            for number, node in enumerate(nodes, start=1)
        ],
    }


@dataclass(frozen=True)
class FeedFacts:
    """What the catalog keeps of a feed's channel."""

    title: str | None
    url: str
    podcast_guid: str | None = None


@dataclass
class FeedItem:
    """One item of the written-back feed: the catalog's episode and what podmill adds
    (nothing for an episode not processed yet)."""

    episode: Episode
    duration: float | None = None
    transcripts: list[TranscriptLink] = field(default_factory=list)
    chapters_url: str | None = None

    @property
    def processed(self) -> bool:
        """Whether podmill links files of its own from this item."""
        return bool(self.transcripts or self.chapters_url)


def published_links(base_url: str, episode_key: str) -> tuple[list[TranscriptLink], str]:
    """The ``podcast:transcript`` links and the chapters URL of a processed episode."""
    links = [
        TranscriptLink(episode_url(base_url, episode_key, f.name), f.mime_type, rel=f.rel)
        for f in TRANSCRIPT_FILES
    ]
    return links, episode_url(base_url, episode_key, CHAPTERS_FILE.name)


def enriched_feed(feed: FeedFacts, items: list[FeedItem]) -> bytes:
    """RSS 2.0 with the Podcasting 2.0 namespace declared once on ``<rss>``; each item
    with podmill's ``podcast:transcript`` tags after the publisher's, and podmill's
    ``podcast:chapters`` unless the publisher has one (the spec allows one per item,
    and a publisher's own chapters are kept over derived ones)."""
    ET.register_namespace("podcast", PODCAST_NS)
    ET.register_namespace("itunes", ITUNES_NS)
    rss = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(rss, "channel")
    title = feed.title or feed.url
    _text(channel, "title", title)
    _text(channel, "link", feed.url)
    _text(channel, "description", f"{title}, with transcripts and chapters made by podmill")
    _text(channel, "generator", "podmill")
    if feed.podcast_guid:
        _text(channel, f"{{{PODCAST_NS}}}guid", feed.podcast_guid)
    for item in items:
        _item(channel, item)
    ET.indent(rss)
    return ET.tostring(rss, encoding="utf-8", xml_declaration=True) + b"\n"


def _item(channel: ET.Element, item: FeedItem) -> None:
    episode = item.episode
    node = ET.SubElement(channel, "item")
    _text(node, "title", episode.title)
    if episode.guid:
        _text(node, "guid", episode.guid).set("isPermaLink", "false")
    if episode.published is not None:
        _text(node, "pubDate", format_datetime(episode.published))
    if episode.description:
        _text(node, "description", episode.description)
    if episode.audio_url:
        ET.SubElement(
            node,
            "enclosure",
            {
                "url": episode.audio_url,
                "type": episode.mime_type or "audio/mpeg",
                # required by RSS 2.0; 0 where the publisher did not say
                "length": str(episode.enclosure_length or 0),
            },
        )
    if item.duration is not None:
        _text(node, f"{{{ITUNES_NS}}}duration", str(round(item.duration)))
    for link in [*episode.transcripts, *item.transcripts]:
        attributes = {"url": link.url, "type": link.mime_type}
        if link.language:
            attributes["language"] = link.language
        if link.rel:
            attributes["rel"] = link.rel
        ET.SubElement(node, f"{{{PODCAST_NS}}}transcript", attributes)
    chapters_url = episode.chapters_url or item.chapters_url
    if chapters_url:
        ET.SubElement(
            node, f"{{{PODCAST_NS}}}chapters", {"url": chapters_url, "type": CHAPTERS_MIME}
        )
    for person in episode.persons:
        tag = _text(node, f"{{{PODCAST_NS}}}person", person.name)
        facts = {"role": person.role, "group": person.group, "href": person.href}
        tag.attrib.update({k: v for k, v in {**facts, "img": person.img}.items() if v})


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element
