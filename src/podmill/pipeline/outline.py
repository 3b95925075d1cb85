"""Human-readable renderings of a topic tree."""

from __future__ import annotations

from typing import Any

from podmill.domain import Episode, TopicNode


def timestamp(seconds: float) -> str:
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _span(node: TopicNode) -> str:
    return f"[{timestamp(node.start)}–{timestamp(node.end)}]"


def render_markdown(episode: Episode, root: TopicNode, data: dict[str, Any]) -> str:
    """``summary.md``: the episode, then each topic and sub-topic with times."""
    lines = [f"# {root.title}", ""]
    meta = []
    if episode.feed_title:
        meta.append(f"**Feed:** {episode.feed_title}")
    if episode.published:
        meta.append(f"**Published:** {episode.published.date().isoformat()}")
    meta.append(f"**Duration:** {timestamp(root.end)}")
    meta.append(f"**Transcript:** {data.get('transcript_source', '?')}")
    lines += [" · ".join(meta), "", root.summary, ""]
    if root.key_points:
        lines += ["**Key points**", ""] + [f"- {p}" for p in root.key_points] + [""]
    for node in root.children:
        lines += [f"## {_span(node)} {node.title}", "", node.summary, ""]
        lines += [f"- {p}" for p in node.key_points] + [""]
        for child in node.children:
            lines += [f"### {_span(child)} {child.title}", "", child.summary, ""]
            lines += [f"- {p}" for p in child.key_points] + [""]
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
