"""Human-readable renderings of a topic tree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from podmill.domain import Episode, TopicNode, Word
from podmill.markup import md_escape
from podmill.pipeline.speakers import speaker_shares


def timestamp(seconds: float) -> str:
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _span(node: TopicNode) -> str:
    return f"[{timestamp(node.start)}–{timestamp(node.end)}]"


def _speakers(node: TopicNode, words: Sequence[Word]) -> str:
    """``SPEAKER_1 (70%), SPEAKER_2 (30%)`` for the node's words; empty without speakers."""
    shares = speaker_shares(words[node.word_start : node.word_end])
    return ", ".join(f"{name} ({share:.0%})" for name, share in shares)


def render_markdown(
    episode: Episode, root: TopicNode, data: dict[str, Any], words: Sequence[Word] = ()
) -> str:
    """``summary.md``: the episode, then each topic and sub-topic with times.

    When the transcript's ``words`` carry speakers (diarization), the episode and each
    topic also say who speaks in it, with each speaker's share of the speaking time.
    """
    # Titles, summaries and key points come from feeds and transcripts (strangers):
    # escaped, so summary.md shows them as written and renders no links, HTML or headings.
    e = md_escape
    lines = [f"# {e(root.title)}", ""]
    meta = []
    if episode.feed_title:
        meta.append(f"**Feed:** {e(episode.feed_title)}")
    if episode.published:
        meta.append(f"**Published:** {episode.published.date().isoformat()}")
    meta.append(f"**Duration:** {timestamp(root.end)}")
    meta.append(f"**Transcript:** {e(str(data.get('transcript_source', '?')))}")
    if speakers := _speakers(root, words):
        meta.append(f"**Speakers:** {e(speakers)}")
    lines += [" · ".join(meta), "", e(root.summary), ""]
    if root.key_points:
        lines += ["**Key points**", ""] + [f"- {e(p)}" for p in root.key_points] + [""]
    for node in root.children:
        lines += [f"## {_span(node)} {e(node.title)}", "", e(node.summary), ""]
        if speakers := _speakers(node, words):
            lines += [f"*Speakers: {e(speakers)}*", ""]
        lines += [f"- {e(p)}" for p in node.key_points] + [""]
        for child in node.children:
            lines += [f"### {_span(child)} {e(child.title)}", "", e(child.summary), ""]
            if speakers := _speakers(child, words):
                lines += [f"*Speakers: {e(speakers)}*", ""]
            lines += [f"- {e(p)}" for p in child.key_points] + [""]
    return "\n".join(lines).rstrip() + "\n"


def render_outline(root: TopicNode) -> str:
    """A compact terminal outline: one line per node, indented by level."""
    lines = [f"{root.title}  ({timestamp(root.end)})"]
    if root.summary:
        lines.append(f"  {root.summary}")
    for node in root.children:
        lines.append(f"  {timestamp(node.start):>8}  {node.title}")
        for child in node.children:
            lines.append(f"  {timestamp(child.start):>8}    └ {child.title}")
    return "\n".join(lines)
