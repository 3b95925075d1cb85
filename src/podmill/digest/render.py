"""The digest as Markdown, a standalone HTML page, or JSON (the document itself).

Every text in a digest comes from transcripts and feeds, i.e. from strangers: Markdown
escapes its punctuation, HTML escapes everything (``html.escape``) and loads nothing
from elsewhere.
"""

from __future__ import annotations

import html
import json
from typing import Any

from podmill.markup import md_escape
from podmill.timespec import clock

FORMATS = ("md", "json", "html")


def render(document: dict[str, Any], fmt: str) -> str:
    """``document`` as ``md``, ``json`` or ``html``."""
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if fmt == "md":
        return to_markdown(document)
    if fmt == "html":
        return to_html(document)
    raise ValueError(f"unknown digest format {fmt!r}: use one of {', '.join(FORMATS)}")


def _day(iso: str) -> str:
    return iso[:10]


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _joined(*parts: str | None, sep: str = ", ") -> str:
    """The parts that are there (a local file's episode has no feed title)."""
    return sep.join(p for p in parts if p)


def _span(item: dict[str, Any]) -> str:
    return f"{clock(item['start'])}–{clock(item['end'])}"


def to_markdown(doc: dict[str, Any]) -> str:
    window = doc["window"]
    lines = [f"# Digest {_day(window['since'])} – {_day(window['until'])}", ""]
    stats = doc["stats"]
    lines.append(
        f"{_count(stats['episodes'], 'new episode', 'new episodes')}, "
        f"{_count(stats['stories'], 'story', 'stories')} across shows"
        + (f", {stats['duplicates_removed']} duplicates removed" if stats["duplicates_removed"]
           else "")
        + (f", {stats['not_processed']} not processed yet" if stats["not_processed"] else "")
        + "."
    )  # fmt: skip
    listen = doc.get("listen")
    if listen is not None:
        lines += ["", f"## Listen in {clock(listen['budget_seconds'])}", ""]
        if not listen["items"]:
            lines.append("Nothing fits the budget.")
        for n, item in enumerate(listen["items"], 1):
            lines.append(
                f"{n}. **{md_escape(item['title'])}** ({_span(item)}) — "
                f"{md_escape(_joined(item['episode_title'], item['feed_title']))}"
            )
        lines += ["", f"Total {clock(listen['total_seconds'])}."]
    if doc["stories"]:
        lines += ["", "## Stories across shows", ""]
        for story in doc["stories"]:
            lines.append(
                f"### {md_escape(story['title'])} "
                f"({story['episodes']} episodes, {story['feeds']} feeds)"
            )
            lines += ["", md_escape(story["summary"]), ""]
            for ref in story["topics"]:
                lines.append(
                    f"- {md_escape(ref['feed_title'] or '')}: {md_escape(ref['episode_title'])}"
                    f" — {md_escape(ref['title'])} at {clock(ref['start'])}"
                )
            lines.append("")
    lines += ["", "## New episodes", ""]
    if not doc["episodes"]:
        lines.append("No new processed episodes in this window.")
    for ep in doc["episodes"]:
        lines.append(f"### {md_escape(_joined(ep['title'], ep['feed_title'], sep=' — '))}")
        lines += ["", f"{_day(ep['published'])} · {clock(ep['duration'])}", ""]
        if ep["lead"]:
            lines += [md_escape(ep["lead"]), ""]
        for topic in ep["top_topics"]:
            lines.append(f"- {clock(topic['start'])} {md_escape(topic['title'])}")
        if ep["also_in"]:
            also = ", ".join(md_escape(d["feed_title"] or d["title"]) for d in ep["also_in"])
            lines += ["", f"Also in: {also}"]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #ddd}h3{margin-bottom:.2rem}
.meta{color:#666;font-size:.9rem}ol li,ul li{margin:.2rem 0}time{font-variant-numeric:tabular-nums}
"""


def to_html(doc: dict[str, Any]) -> str:
    e = html.escape
    window = doc["window"]
    title = f"Digest {_day(window['since'])} – {_day(window['until'])}"
    stats = doc["stats"]
    body = [
        f"<h1>{e(title)}</h1>",
        f"<p class=meta>{_count(stats['episodes'], 'new episode', 'new episodes')} · "
        f"{_count(stats['stories'], 'story', 'stories')}"
        f" · {stats['duplicates_removed']} duplicates removed"
        f" · {stats['not_processed']} not processed yet</p>",
    ]
    listen = doc.get("listen")
    if listen is not None:
        body.append(f"<h2>Listen in {e(clock(listen['budget_seconds']))}</h2><ol>")
        for item in listen["items"]:
            body.append(
                f"<li><strong>{e(item['title'])}</strong> <time>{e(_span(item))}</time>"
                f" — {e(_joined(item['episode_title'], item['feed_title']))}</li>"
            )
        body.append(f"</ol><p class=meta>Total {e(clock(listen['total_seconds']))}</p>")
    if doc["stories"]:
        body.append("<h2>Stories across shows</h2>")
        for story in doc["stories"]:
            body.append(
                f"<h3>{e(story['title'])}</h3><p class=meta>{story['episodes']} episodes, "
                f"{story['feeds']} feeds</p><p>{e(story['summary'])}</p><ul>"
            )
            for ref in story["topics"]:
                body.append(
                    f"<li>{e(ref['feed_title'] or '')}: {e(ref['episode_title'])} — "
                    f"{e(ref['title'])} at <time>{e(clock(ref['start']))}</time></li>"
                )
            body.append("</ul>")
    body.append("<h2>New episodes</h2>")
    if not doc["episodes"]:
        body.append("<p>No new processed episodes in this window.</p>")
    for ep in doc["episodes"]:
        meta = _joined(ep["feed_title"], _day(ep["published"]), clock(ep["duration"]), sep=" · ")
        body.append(f"<h3>{e(ep['title'])}</h3><p class=meta>{e(meta)}</p>")
        if ep["lead"]:
            body.append(f"<p>{e(ep['lead'])}</p>")
        body.append("<ul>")
        for topic in ep["top_topics"]:
            body.append(f"<li><time>{e(clock(topic['start']))}</time> {e(topic['title'])}</li>")
        body.append("</ul>")
        if ep["also_in"]:
            also = ", ".join(e(d["feed_title"] or d["title"]) for d in ep["also_in"])
            body.append(f"<p class=meta>Also in: {also}</p>")
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
