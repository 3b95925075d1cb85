"""Build the digest document (schema ``podmill.digest/1``) from collected episodes.

1. Duplicate episodes go: the same audio (checksum), or the same title and duration in
   another feed (a rebroadcast). The newest copy stays and names the others.
2. Every L1 topic is clustered by its embedding (``stories.cluster``: average linkage,
   a show's own topics count less alike); a cluster with topics from two or more
   episodes is a story, named after its most central topic.
3. With a time budget, a listen list: candidates ranked by relevance (how many shows
   and episodes tell the story, how recent, how much of its episode the topic fills),
   taken greedily while they fit. A story is heard once; a topic too long for what is
   left may be replaced by its best-fitting sub-topic; nothing overlaps.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from podmill.digest.collect import DigestEpisode, Topic
from podmill.digest.stories import DEFAULT_THRESHOLD, central, cluster
from podmill.digest.window import Window
from podmill.sentences import dehedge, starts_sentence

SCHEMA = "podmill.digest/1"
LEAD_MIN_CHARS = 80  # a lead of one short sentence takes the next one too
LEAD_MAX_CHARS = 300
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


@dataclass(frozen=True)
class DigestOptions:
    """What a digest is asked for besides its window."""

    threshold: float = DEFAULT_THRESHOLD
    budget_seconds: float | None = None
    top_topics: int = 5
    feed_ids: tuple[int, ...] | None = None
    tenant: str | None = None


def build_digest(
    episodes: Sequence[DigestEpisode],
    window: Window,
    now: datetime,
    options: DigestOptions | None = None,
    *,
    not_processed: int = 0,
) -> dict[str, Any]:
    """The digest of ``episodes`` (newest first, as :func:`collect.collect` returns them)."""
    options = options or DigestOptions()
    kept, duplicates = _dedup(episodes)
    topics = [t for ep in kept for t in ep.topics if t.story_vector is not None]
    stories, story_of = _stories(topics, kept, options.threshold)
    by_key = {ep.episode_key: ep for ep in kept}
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "generated_at": _iso(now),
        "tenant": options.tenant,
        "window": {"since": _iso(window.since), "until": _iso(window.until)},
        "feeds": list(options.feed_ids) if options.feed_ids else None,
        "story_threshold": options.threshold,
        "stats": {
            "episodes": len(kept),
            "topics": len(topics),
            "stories": len(stories),
            "duplicates_removed": sum(len(v) for v in duplicates.values()),
            "not_processed": not_processed,
        },
        "episodes": [
            _episode(ep, duplicates.get(ep.episode_key, []), story_of, options.top_topics)
            for ep in kept
        ],
        "stories": stories,
        "listen": None,
    }
    if options.budget_seconds is not None:
        document["listen"] = _listen(
            topics, stories, story_of, by_key, window, options.budget_seconds
        )
    return document


# ---------------------------------------------------------------------- duplicates


def _norm_title(title: str) -> str:
    return " ".join(re.findall(r"\w+", title.casefold()))


def _same_recording(a: DigestEpisode, b: DigestEpisode) -> bool:
    if a.audio_sha256 and a.audio_sha256 == b.audio_sha256:
        return True
    # A rebroadcast in another feed: same title, same length within 1% (ad inserts
    # and re-encoding move it by a second or two).
    close = abs(a.duration - b.duration) <= max(2.0, 0.01 * max(a.duration, b.duration))
    return bool(_norm_title(a.title)) and _norm_title(a.title) == _norm_title(b.title) and close


def _dedup(
    episodes: Sequence[DigestEpisode],
) -> tuple[list[DigestEpisode], dict[str, list[DigestEpisode]]]:
    kept: list[DigestEpisode] = []
    dropped: dict[str, list[DigestEpisode]] = {}
    for episode in episodes:
        original = next((k for k in kept if _same_recording(k, episode)), None)
        if original is None:
            kept.append(episode)
        else:
            dropped.setdefault(original.episode_key, []).append(episode)
    return kept, dropped


# ------------------------------------------------------------------------- stories


def _stories(
    topics: list[Topic], episodes: list[DigestEpisode], threshold: float
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], str]]:
    """Story objects, strongest first, and (episode_key, node_id) → story id."""
    import numpy as np

    if not topics:
        return [], {}
    vectors = np.stack([t.story_vector for t in topics]).astype(np.float32)
    by_key = {ep.episode_key: ep for ep in episodes}
    # Feeds are the groups whose own topics count less alike (stories.SAME_FEED_PENALTY);
    # an episode without a feed is a group of its own.
    shows = [by_key[t.episode_key].feed_id or f"episode:{t.episode_key}" for t in topics]
    labels = cluster(vectors, threshold, groups=shows)
    groups: dict[int, list[int]] = {}
    for row, label in enumerate(labels):
        groups.setdefault(label, []).append(row)
    found = []
    for rows in groups.values():
        keys = {topics[r].episode_key for r in rows}
        if len(keys) < 2:  # one episode's topics alike: not a story across shows
            continue
        centre, closeness = central(vectors, rows)
        feeds = {by_key[k].feed_id if by_key[k].feed_id is not None else k for k in keys}
        newest = max(by_key[k].published for k in keys)
        found.append((len(feeds), len(keys), newest, centre, rows, closeness))
    found.sort(key=lambda s: (s[0], s[1], s[2], -s[3]), reverse=True)
    stories = []
    story_of: dict[tuple[str, str], str] = {}
    for number, (n_feeds, n_episodes, _newest, centre, rows, closeness) in enumerate(found, 1):
        story_id = f"s{number}"
        members = sorted(
            zip(rows, closeness),
            key=lambda m: (by_key[topics[m[0]].episode_key].published, -topics[m[0]].start),
            reverse=True,
        )
        for row in rows:
            story_of[(topics[row].episode_key, topics[row].node_id)] = story_id
        stories.append(
            {
                "id": story_id,
                "title": topics[centre].title,
                "summary": _lead(topics[centre].summary),
                "feeds": n_feeds,
                "episodes": n_episodes,
                "topics": [
                    {
                        **_topic_ref(topics[row], by_key[topics[row].episode_key]),
                        "centrality": round(close, 4),
                        "central": row == centre,
                    }
                    for row, close in members
                ],
            }
        )
    return stories, story_of


# ------------------------------------------------------------------------ episodes


def _lead(summary: str) -> str:
    """The first sentence of a summary, or two when the first is short; it starts where
    a sentence starts (a fragment before it, as in a summary made before summaries were
    whole sentences, is left out) and without the fillers it opens with."""
    sentences = [s.strip() for s in _SENTENCE_END.split(summary.strip()) if s.strip()]
    whole = [i for i, s in enumerate(sentences) if starts_sentence(s)]
    if whole:
        sentences = sentences[whole[0] :]
    lead = ""
    for sentence in sentences[:2]:
        lead = f"{lead} {dehedge(sentence)}".strip()
        if len(lead) >= LEAD_MIN_CHARS:
            break
    if len(lead) > LEAD_MAX_CHARS:
        lead = lead[: LEAD_MAX_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return lead


def _episode(
    episode: DigestEpisode,
    duplicates: list[DigestEpisode],
    story_of: dict[tuple[str, str], str],
    top: int,
) -> dict[str, Any]:
    # The longest topics are the episode's main subjects; shown in playing order.
    main = sorted(episode.topics, key=lambda t: (-t.duration, t.start))[:top]
    return {
        "episode_key": episode.episode_key,
        "title": episode.title,
        "feed_id": episode.feed_id,
        "feed_title": episode.feed_title,
        "published": _iso(episode.published),
        "duration": round(episode.duration, 3),
        "lead": _lead(episode.summary),
        "top_topics": [
            {
                "node_id": t.node_id,
                "title": t.title,
                "start": round(t.start, 3),
                "end": round(t.end, 3),
                "story_id": story_of.get((t.episode_key, t.node_id)),
            }
            for t in sorted(main, key=lambda t: t.start)
        ],
        "also_in": [
            {"episode_key": d.episode_key, "feed_title": d.feed_title, "title": d.title}
            for d in duplicates
        ],
    }


def _topic_ref(topic: Topic, episode: DigestEpisode) -> dict[str, Any]:
    return {
        "episode_key": topic.episode_key,
        "episode_title": episode.title,
        "feed_title": episode.feed_title,
        "published": _iso(episode.published),
        "node_id": topic.node_id,
        "level": topic.level,
        "title": topic.title,
        "start": round(topic.start, 3),
        "end": round(topic.end, 3),
    }


# -------------------------------------------------------------------------- listen


@dataclass
class _Candidate:
    topic: Topic
    story: dict[str, Any] | None
    relevance: float


def _relevance(
    topic: Topic, episode: DigestEpisode, window: Window, story: dict[str, Any] | None
) -> float:
    """Coverage (shows and episodes telling it) + 0.5 recency + 0.5 prominence.

    Coverage dominates: a story two shows tell outranks any single-show topic; among
    equals, the newer and the more central to its episode come first.
    """
    if story is None:
        coverage = 1.0
    else:
        coverage = story["feeds"] + 0.5 * (story["episodes"] - story["feeds"])
        coverage = max(coverage, 1.5)
    age = (episode.published - window.since).total_seconds()
    recency = min(1.0, max(0.0, age / window.seconds)) if window.seconds > 0 else 1.0
    prominence = min(1.0, topic.duration / episode.duration) if episode.duration > 0 else 0.0
    return coverage + 0.5 * recency + 0.5 * prominence


def _listen(
    topics: list[Topic],
    stories: list[dict[str, Any]],
    story_of: dict[tuple[str, str], str],
    episodes: dict[str, DigestEpisode],
    window: Window,
    budget: float,
) -> dict[str, Any]:
    import numpy as np

    topic_at = {(t.episode_key, t.node_id): t for t in topics}
    candidates: list[_Candidate] = []
    for story in stories:  # a story is one candidate: its most central topic
        ref = next(m for m in story["topics"] if m["central"])
        topic = topic_at[(ref["episode_key"], ref["node_id"])]
        episode = episodes[topic.episode_key]
        candidates.append(_Candidate(topic, story, _relevance(topic, episode, window, story)))
    for topic in topics:
        if (topic.episode_key, topic.node_id) not in story_of:
            episode = episodes[topic.episode_key]
            candidates.append(_Candidate(topic, None, _relevance(topic, episode, window, None)))
    candidates.sort(
        key=lambda c: (
            -c.relevance,
            -episodes[c.topic.episode_key].published.timestamp(),
            c.topic.episode_key,
            c.topic.start,
        )
    )
    items: list[dict[str, Any]] = []
    taken: dict[str, list[tuple[float, float]]] = {}
    left = budget
    for candidate in candidates:
        topic = candidate.topic
        # Too long for what is left: its sub-topics closest to the topic itself, in turn.
        options = [topic]
        if topic.children and topic.vector is not None:
            children = [c for c in topic.children if c.vector is not None]
            children.sort(key=lambda c: -float(np.dot(c.vector, topic.vector)))
            options += children
        for option in options:
            spans = taken.setdefault(option.episode_key, [])
            overlaps = any(option.start < end and start < option.end for start, end in spans)
            length = round(option.duration, 3)  # what the document says it adds up to
            if 0 < length <= left + 1e-9 and not overlaps:
                spans.append((option.start, option.end))
                left -= length
                episode = episodes[option.episode_key]
                story = candidate.story
                items.append(
                    {
                        **_topic_ref(option, episode),
                        "duration": length,
                        "story_id": story["id"] if story else None,
                        "relevance": round(candidate.relevance, 4),
                        "reason": _reason(story, episode),
                    }
                )
                break
    return {
        "budget_seconds": round(budget, 3),
        "total_seconds": round(sum(i["duration"] for i in items), 3),
        "items": items,
    }


def _reason(story: dict[str, Any] | None, episode: DigestEpisode) -> str:
    if story is None:
        return f"new in {episode.feed_title or 'your episodes'}"
    return f"story told in {story['episodes']} episodes across {story['feeds']} feed(s)"


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
