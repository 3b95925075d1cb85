"""What a podcaster publishes from podmill: an episode's Podcasting 2.0 JSON transcript
and chapters, and a feed written back with tags that point at them.

Built on request from the finished artifact set (``transcript.json``, ``topics.json``,
read checked: a damaged file is :class:`~podmill.storage.artifacts.ArtifactDamaged`),
so nothing new is stored and the fingerprint does not change. The entitlement rule is
the episodes' (:func:`~podmill.platform.episodes.visible_episodes`): another tenant's
episode or feed is not found. Formats: :mod:`podmill.feeds.podcasting`,
docs/podcasting20.md.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import exists, select

from podmill.domain import TopicNode, Transcript
from podmill.feeds.podcasting import (
    CHAPTERS_FILE,
    TRANSCRIPT_FILES,
    FeedFacts,
    FeedItem,
    chapters,
    enriched_feed,
    published_links,
)
from podmill.platform.context import Context, Part
from podmill.platform.episodes import Episodes, episode_from_row, visible_episodes
from podmill.platform.errors import NotFound
from podmill.platform.tables import EPISODES, FEEDS, SUBSCRIPTIONS
from podmill.platform.tenants import Tenant
from podmill.storage.artifacts import TRANSCRIPTS, Artifact
from podmill.transcript_formats import to_podcast_json

# The artifact each published transcript file is made from: transcript.FORMAT from the
# set's file of that format (transcript.json from podmill's own JSON, converted).
_SOURCES = {f.name: TRANSCRIPTS[f.name.rpartition(".")[2]] for f in TRANSCRIPT_FILES}
_CAPTIONS = [f.name for f in TRANSCRIPT_FILES if f.rel == "captions"]


class Publishing(Part):
    """Podcasting 2.0 documents of the episodes and feeds a tenant may see."""

    def __init__(self, ctx: Context, episodes: Episodes) -> None:
        super().__init__(ctx)
        self._episodes = episodes

    def podcast_transcript(self, tenant: Tenant, key: str) -> str:
        """The episode's transcript in the Podcasting 2.0 JSON transcript format."""
        self._episodes.episode_by_key(tenant, key)  # NotFound unless visible
        folder = self._episodes.artifact_dir(key, Artifact.TRANSCRIPT_JSON)
        if folder is None:
            raise NotFound(
                f"episode {key} has no transcript yet: GET /episodes/{key} shows its job status"
            )
        data = self.artifacts.read_checked(key, folder.name, Artifact.TRANSCRIPT_JSON)
        return to_podcast_json(Transcript.from_dict(json.loads(data))) + "\n"

    def chapters(self, tenant: Tenant, key: str, depth: int = 1) -> dict[str, Any]:
        """The episode's JSON chapters (1.2.0) from its L1 topics, or (``depth=2``) its
        L2 sub-topics where a topic was split."""
        episode, _ = self._episodes.episode_by_key(tenant, key)
        folder = self._episodes.artifact_dir(key)
        if folder is None:
            raise NotFound(
                f"episode {key} has no topics yet: GET /episodes/{key} shows its job status"
            )
        tree = self.artifacts.read_json(key, folder.name, Artifact.TOPICS)  # checked
        root = TopicNode.from_dict(tree["root"])
        return chapters(root, depth, title=episode.title, podcast=episode.feed_title)

    def published_files(self, tenant: Tenant, key: str, depth: int = 1) -> dict[str, bytes]:
        """Every file the enriched feed links for a processed episode, by name (the
        layout of ``episodes/KEY/``): what ``podmill feed --out`` writes."""
        files = {CHAPTERS_FILE.name: _json_bytes(self.chapters(tenant, key, depth))}
        files["transcript.json"] = self.podcast_transcript(tenant, key).encode()
        for name in _CAPTIONS:  # served as they are
            folder = self._episodes.artifact_dir(key, _SOURCES[name])
            if folder is not None:
                files[name] = self.artifacts.read_checked(key, folder.name, _SOURCES[name])
        return files

    def enriched_feed(self, tenant: Tenant, feed_id: int, base_url: str) -> bytes:
        """The feed as RSS with ``podcast:transcript`` and ``podcast:chapters`` tags on
        each processed item, pointing at ``base_url``'s ``episodes/KEY/…``
        (:meth:`feed_items`)."""
        return enriched_feed(*self.feed_items(tenant, feed_id, base_url))

    def feed_items(
        self, tenant: Tenant, feed_id: int, base_url: str
    ) -> tuple[FeedFacts, list[FeedItem]]:
        """The feed's channel and its items: the tenant's episodes of that feed (every
        one when subscribed), newest first, each processed one with podmill's links."""
        with self.reader.connect() as conn:
            feed = conn.execute(select(FEEDS).where(FEEDS.c.id == feed_id)).first()
            rows = conn.execute(
                select(EPISODES)
                .where(EPISODES.c.feed_id == feed_id, visible_episodes(tenant))
                .order_by(EPISODES.c.published_at.desc().nulls_last(), EPISODES.c.id.desc())
            ).all()
            mine = SUBSCRIPTIONS.c.tenant_id == tenant.id, SUBSCRIPTIONS.c.feed_id == feed_id
            subscribed = tenant.sees_all or conn.execute(select(exists().where(*mine))).scalar()
        if feed is None or not (subscribed or rows):
            raise NotFound(
                f"no feed {feed_id} among this tenant's feeds (GET /subscriptions lists them)"
            )
        facts = FeedFacts(title=feed.title, url=feed.url, podcast_guid=feed.podcast_guid)
        return facts, [self._item(row, base_url) for row in rows]

    def _item(self, row: Any, base_url: str) -> FeedItem:
        item = FeedItem(episode_from_row(row), duration=row.duration_seconds)
        folder = self._episodes.artifact_dir(row.episode_key)
        if folder is None:  # not processed yet: the item as the catalog has it
            return item
        links, chapters_url = published_links(base_url, row.episode_key)
        present = {f.name for f in TRANSCRIPT_FILES if (folder / _SOURCES[f.name]).is_file()}
        item.transcripts = [
            link for link, file in zip(links, TRANSCRIPT_FILES, strict=True) if file.name in present
        ]
        item.chapters_url = chapters_url
        return item


def _json_bytes(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
