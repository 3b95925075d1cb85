"""The search/digest test corpus (tests/fixtures/corpus, docs/corpus.md) as fixtures.

``processed_corpus`` (session-scoped) serves the corpus's three feeds from a real local
HTTP server, runs ``podmill run FEED_URL --data-dir D`` on each (embedded, SQLite, the
real pipeline: feed transcripts for most episodes, Whisper tiny.en on the espeak-ng
ones) and returns a :class:`ProcessedCorpus`: the data dir, the labels, the episode
keys podmill gave each guid, and helpers to compare hits with labelled topics.

Feeds are rendered at fixture time, with publication dates ``days_ago`` before *now*,
so ``--since 7d`` always selects the same episodes.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import pytest

from podmill.feeds.identity import episode_key, feed_identity

from support.cli import run_cli
from support.httpserver import TestHTTPServer
from support.paths import FIXTURES

CORPUS_DIR = FIXTURES / "corpus"


@cache
def generator() -> ModuleType:
    """``tests/fixtures/corpus/make_corpus.py``, imported (it is a script, not a package)."""
    path = CORPUS_DIR / "make_corpus.py"
    spec = importlib.util.spec_from_file_location("make_corpus", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------ labels


@dataclass(frozen=True)
class LabelledTopic:
    guid: str
    index: int
    story: str | None
    start: float
    end: float
    text: str

    def overlap(self, start: float, end: float) -> float:
        """Seconds shared by ``[start, end]`` and this topic."""
        return max(0.0, min(end, self.end) - max(start, self.start))

    def matches(self, start: float, end: float) -> bool:
        """True when ``[start, end]`` shares at least half of the shorter of the two spans
        with this topic (a passage inside the topic, or a node mostly covering it)."""
        shorter = min(end - start, self.end - self.start)
        return shorter > 0 and self.overlap(start, end) >= 0.5 * shorter


@dataclass(frozen=True)
class LabelledEpisode:
    guid: str
    feed: str
    title: str
    days_ago: float
    format: str
    media: str
    mime_type: str
    duration: float
    topics: tuple[LabelledTopic, ...]


@dataclass(frozen=True)
class Feed:
    id: str
    title: str
    description: str
    author: str

    @property
    def podcast_guid(self) -> str:
        # podmill identifies a feed by podcast:guid first, so keys do not depend on the
        # random port of the test server.
        return f"podmill-corpus-{self.id}"


@dataclass(frozen=True)
class Corpus:
    """``labels.json``: feeds, episodes and their labelled topics, and the stories."""

    feeds: tuple[Feed, ...]
    episodes: tuple[LabelledEpisode, ...]
    stories: dict[str, str]

    @property
    def topics(self) -> list[LabelledTopic]:
        return [t for e in self.episodes for t in e.topics]

    def episode(self, guid: str) -> LabelledEpisode:
        for episode in self.episodes:
            if episode.guid == guid:
                return episode
        raise KeyError(f"no episode {guid!r} in the corpus")

    def topic(self, guid: str, index: int) -> LabelledTopic:
        return self.episode(guid).topics[index]

    def topic_covering(self, guid: str, start: float, end: float) -> LabelledTopic | None:
        """The labelled topic sharing the most time with ``[start, end]`` (None if none):
        maps a node of podmill's tree, or a digest entry, to its label and story."""
        best = max(self.episode(guid).topics, key=lambda t: t.overlap(start, end))
        return best if best.overlap(start, end) > 0 else None

    def story_topics(self, story: str) -> list[LabelledTopic]:
        return [t for t in self.topics if t.story == story]

    def feed_of(self, guid: str) -> Feed:
        feed_id = self.episode(guid).feed
        return next(f for f in self.feeds if f.id == feed_id)


def load_corpus(path: Path = CORPUS_DIR / "labels.json") -> Corpus:
    data = json.loads(path.read_text(encoding="utf-8"))
    episodes = tuple(
        LabelledEpisode(
            guid=e["guid"],
            feed=e["feed"],
            title=e["title"],
            days_ago=e["days_ago"],
            format=e["format"],
            media=e["media"],
            mime_type=e["mime_type"],
            duration=e["duration"],
            topics=tuple(
                LabelledTopic(e["guid"], t["index"], t["story"], t["start"], t["end"], t["text"])
                for t in e["topics"]
            ),
        )
        for e in data["episodes"]
    )
    feeds = tuple(Feed(**f) for f in data["feeds"])
    return Corpus(feeds, episodes, dict(data["stories"]))


# --------------------------------------------------------------------------- feeds


def published_at(corpus: Corpus, guid: str, now: datetime) -> datetime:
    """``days_ago`` before ``now``; feeds an hour apart so no two items tie."""
    episode = corpus.episode(guid)
    feed_rank = [f.id for f in corpus.feeds].index(episode.feed)
    return now - timedelta(days=episode.days_ago, hours=feed_rank)


def render_feed(corpus: Corpus, feed_id: str, base_url: str, now: datetime) -> bytes:
    """RSS 2.0 for one feed: transcript episodes carry a ``podcast:transcript`` (and no
    enclosure), audio episodes an Ogg enclosure. Media URLs are relative to ``base_url``."""
    feed = next(f for f in corpus.feeds if f.id == feed_id)
    items = []
    for episode in (e for e in corpus.episodes if e.feed == feed_id):
        url = f"{base_url}/{episode.media}"
        if episode.format == "audio":
            size = (CORPUS_DIR / episode.media).stat().st_size
            media = f'<enclosure url={quoteattr(url)} type="{episode.mime_type}" length="{size}"/>'
        else:
            media = (
                f"<podcast:transcript url={quoteattr(url)} type={quoteattr(episode.mime_type)}"
                ' language="en"/>'
            )
        items.append(
            f"<item><title>{escape(episode.title)}</title>"
            f'<guid isPermaLink="false">{episode.guid}</guid>'
            f"<pubDate>{format_datetime(published_at(corpus, episode.guid, now))}</pubDate>"
            f"<itunes:duration>{round(episode.duration)}</itunes:duration>"
            f"{media}</item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:podcast="https://podcastindex.org/namespace/1.0"'
        ' xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>'
        f"<title>{escape(feed.title)}</title><link>https://example.invalid/{feed.id}</link>"
        f"<description>{escape(feed.description)}</description>"
        f"<itunes:author>{escape(feed.author)}</itunes:author>"
        f"<podcast:guid>{feed.podcast_guid}</podcast:guid>" + "".join(items) + "</channel></rss>\n"
    ).encode()


def serve_corpus(server: TestHTTPServer, corpus: Corpus, now: datetime) -> dict[str, str]:
    """Routes for every feed, transcript and audio file; returns feed id → feed URL."""
    for episode in corpus.episodes:
        server.add_file(f"/{episode.media}", CORPUS_DIR / episode.media, episode.mime_type)
    return {
        feed.id: server.add_bytes(
            f"/{feed.id}/feed.xml",
            render_feed(corpus, feed.id, server.url, now),
            "application/rss+xml",
        )
        for feed in corpus.feeds
    }


def expected_episode_key(corpus: Corpus, guid: str) -> str:
    """The key podmill derives for an item (feeds/identity.py: podcast:guid + item guid)."""
    identity = feed_identity(corpus.feed_of(guid).podcast_guid, None, "")
    return episode_key(identity, guid, None, None, None)


# ------------------------------------------------------------------------ processing


@dataclass
class ProcessedCorpus:
    """The corpus after ``podmill run``: where the data is and what each episode is."""

    data_dir: Path
    corpus: Corpus
    now: datetime
    feed_urls: dict[str, str]
    episode_keys: dict[str, str]  # guid → episode_key
    run_lines: dict[str, dict[str, Any]] = field(default_factory=dict)  # guid → run --json
    seconds: float = 0.0

    def guid_of(self, key: str) -> str | None:
        for guid, known in self.episode_keys.items():
            if known == key:
                return guid
        return None

    def label_of(self, episode_key: str, start: float, end: float) -> LabelledTopic | None:
        """The labelled topic a hit or node (by episode key and times) mostly covers."""
        guid = self.guid_of(episode_key)
        return None if guid is None else self.corpus.topic_covering(guid, start, end)

    def tree(self, guid: str) -> dict[str, Any]:
        """The topic tree podmill wrote for an episode (topics.json)."""
        path = Path(self.run_lines[guid]["artifacts"]["topics"])
        return json.loads(path.read_text(encoding="utf-8"))

    def transcript(self, guid: str) -> dict[str, Any]:
        path = Path(self.run_lines[guid]["artifacts"]["transcript_json"])
        return json.loads(path.read_text(encoding="utf-8"))


def process_corpus(data_dir: Path, corpus: Corpus | None = None) -> ProcessedCorpus:
    """Serve the corpus and run ``podmill run`` on each feed into ``data_dir``."""
    corpus = corpus or load_corpus()
    now = datetime.now(UTC).replace(microsecond=0)
    keys = {e.guid: expected_episode_key(corpus, e.guid) for e in corpus.episodes}
    by_title = {e.title: e.guid for e in corpus.episodes}
    lines: dict[str, dict[str, Any]] = {}
    began = time.monotonic()
    with TestHTTPServer() as server:
        urls = serve_corpus(server, corpus, now)
        for feed_id, url in urls.items():
            result = run_cli(
                "run", url, "--data-dir", data_dir, "--json", "--allow-private-networks"
            )
            if result.code != 0:
                raise RuntimeError(
                    f"podmill run {feed_id} failed ({result.code}):\n{result.stdout}\n"
                    f"{result.stderr[-4000:]}"
                )
            for line in result.json_lines():
                lines[by_title[line["title"]]] = line
    seconds = time.monotonic() - began
    for guid, line in lines.items():
        if line["episode_key"] != keys[guid]:
            raise RuntimeError(
                f"{guid}: podmill keyed it {line['episode_key']}, expected {keys[guid]} "
                "(feeds/identity.py changed? update expected_episode_key)"
            )
    missing = sorted(set(keys) - set(lines))
    if missing:
        raise RuntimeError(f"podmill run did not report episodes {missing}")
    return ProcessedCorpus(data_dir, corpus, now, urls, keys, lines, seconds)


@pytest.fixture(scope="session")
def corpus_labels() -> Corpus:
    """The labels of the test corpus (no processing)."""
    return load_corpus()


@pytest.fixture(scope="session")
def processed_corpus(
    tmp_path_factory: pytest.TempPathFactory, corpus_labels: Corpus
) -> Iterator[ProcessedCorpus]:
    """The whole corpus processed once per session by ``podmill run`` (about a minute)."""
    data_dir = tmp_path_factory.mktemp("corpus") / "data"
    yield process_corpus(data_dir, corpus_labels)
