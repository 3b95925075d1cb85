"""podmill for AI assistants: the MCP server's tools and resources (the ``mcp`` extra).

One server definition, two transports: ``podmill mcp`` serves it over stdio for an
embedded data dir (read-only, every episode, like ``podmill view``), and ``podmill
serve`` mounts it at ``/mcp`` (streamable HTTP, api/mcp_http.py) behind the API keys,
where each call is answered for the caller's tenant. Every tool reaches podmill through
the code the REST routes call — the platform's methods (the entitlement rule stays
``visible_episodes``), ``api/search.py: find_with``, ``api/digests.py: digest_for`` and
``POST /jobs``'s intake (``api/jobs.py``) — never SQL of its own. Every result cites
the episode key and the times it is about: ``start``/``end`` seconds, ``at`` as a clock
(``1:02–1:40``), and a one-line ``cite``. docs/mcp.md is the user's page.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from podmill import __version__
from podmill.domain import TopicNode, Transcript
from podmill.errors import PodmillError
from podmill.platform import Platform, Tenant
from podmill.platform.errors import NotFound
from podmill.storage.artifacts import ArtifactDamaged
from podmill.timespec import clock

URI_PREFIX = "podmill://episodes/"
INSTRUCTIONS = """\
podmill holds processed podcast episodes: word-timed transcripts, a topic tree per
episode (L0 the episode, L1 topics, L2 sub-topics, each with start/end seconds), a
search index and cross-feed digests. Find things with `search` or `list_episodes`,
read an episode's outline with `get_episode_tree` (or the resource
podmill://episodes/{episode_key}), quote it with `get_transcript_span`. Cite what you
use by episode key and time: every result carries `episode_key`, `start`, `end` (seconds)
and `at` (m:ss–m:ss)."""

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
# What a submit does on a server that cannot queue (``podmill mcp`` is read-only).
Submit = Callable[[Context, Tenant, str], Awaitable[dict[str, Any]]]


@dataclass
class Source:
    """Where the tools read from and who asks: ``state`` holds ``platform`` and the
    one ``searcher`` (the app's ``app.state``, or ``podmill mcp``'s own); ``tenant``
    is the caller of a request; ``submit`` queues a URL, or is ``None`` where nothing
    may be written (then ``read_only_detail``, with ``{url}``, says what to do instead)."""

    state: Any
    tenant: Callable[[Context], Tenant]
    submit: Submit | None
    read_only: bool
    read_only_detail: str = ""

    @property
    def platform(self) -> Platform:
        return self.state.platform

    def searcher(self) -> Any:
        from podmill.api.search import searcher_of

        return searcher_of(self.state, read_only=self.read_only)

    def damaged(self, exc: ArtifactDamaged) -> ToolError:
        """A damaged artifact: on a server that may write, its stage is queued again
        (as the REST routes do); the message says so."""
        if self.read_only:
            return ToolError(f"{exc}; run `podmill run` on that episode again to repair it")
        from podmill.pipeline.repair import requeue

        service = self.platform
        stages = requeue(
            service.store, service.artifacts, exc.episode_key, exc.fingerprint, [exc.name]
        )
        then = "it has been queued for re-processing" if stages else "submit it again"
        return ToolError(f"{exc}; {then}")


def span(start: float, end: float) -> dict[str, Any]:
    """The citation fields of a time range: seconds and the clock."""
    return {"start": round(start, 2), "end": round(end, 2), "at": f"{clock(start)}–{clock(end)}"}


def cite(episode_key: str, title: str | None, start: float, end: float) -> str:
    """``"Title" [KEY] 1:02–1:40``: what an answer quotes."""
    name = f'"{title}" ' if title else ""
    return f"{name}[{episode_key}] {clock(start)}–{clock(end)}"


def build_server(source: Source) -> MCPServer:
    """The MCP server over ``source``: six tools and two episode resources."""
    server = MCPServer(
        "podmill",
        title="podmill",
        version=__version__,
        instructions=INSTRUCTIONS,
    )

    def guarded(call: Callable[[], Any]) -> Any:
        """``call()`` with podmill's refusals as tool errors the model can read."""
        try:
            return call()
        except ArtifactDamaged as exc:
            raise source.damaged(exc) from None
        except PodmillError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(title="Search episodes", annotations=READ)
    def search(
        query: Annotated[str, Field(min_length=1, max_length=500, description="in your own words")],
        ctx: Context,
        feed: Annotated[
            str | None, Field(description="only this feed: its id, URL or title")
        ] = None,
        since: Annotated[
            str | None, Field(description="published since: 7d, 12h, 2w, a date or ISO time")
        ] = None,
        until: Annotated[str | None, Field(description="published before (a date)")] = None,
        limit: Annotated[int, Field(ge=1, le=50)] = 10,
    ) -> dict[str, Any]:
        """Topics and passages that match the query by keyword or by meaning, best first.
        Each hit names the episode, the topic node and its time span, with a snippet
        whose matched words are marked «like this»."""
        from podmill.api.search import find_with

        tenant = source.tenant(ctx)

        def hits() -> list[dict[str, Any]]:
            feed_id = None if feed is None else _feed_id(source.platform, tenant, feed)
            found = find_with(
                source.searcher(),
                tenant,
                query,
                feed=feed_id,
                since=since,
                until=until,
                limit=limit,
            )
            return [_hit(h.to_json()) for h in found]

        return {"query": query, "hits": guarded(hits)}

    @server.tool(title="List episodes", annotations=READ)
    def list_episodes(
        ctx: Context,
        feed: Annotated[
            str | None, Field(description="only this feed: its id, URL or title")
        ] = None,
        since: Annotated[
            str | None, Field(description="published since: 7d, 12h, 2w, a date or ISO time")
        ] = None,
        title_contains: Annotated[
            str | None, Field(max_length=200, description="only titles containing this")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
        offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0,
    ) -> dict[str, Any]:
        """The episodes you can read, newest first: key, title, feed, publication time,
        duration and processing status (``done`` episodes have a tree and transcript)."""
        from podmill.search.query import parse_time

        tenant = source.tenant(ctx)

        def listing() -> list[dict[str, Any]]:
            service = source.platform
            feed_id = None if feed is None else _feed_id(service, tenant, feed)
            rows = service.episodes(
                tenant,
                feed_id=feed_id,
                since=parse_time(since, "since"),
                status=None,
                limit=limit,
                offset=offset,
                title_contains=title_contains,
            )
            return [_listed(row) for row in rows]

        return {"episodes": guarded(listing)}

    @server.tool(title="Episode topic tree", annotations=READ)
    def get_episode_tree(
        episode_key: Annotated[str, Field(min_length=1, max_length=64)],
        ctx: Context,
        depth: Annotated[
            int, Field(ge=0, le=2, description="0: the episode only, 1: its topics, 2: sub-topics")
        ] = 2,
    ) -> dict[str, Any]:
        """One episode's metadata and its topic tree: the episode (L0), its topics (L1)
        and sub-topics (L2), each with a title, summary, key points, keywords and its
        time span."""
        tenant = source.tenant(ctx)
        episode = guarded(lambda: source.platform.episode(tenant, episode_key))
        topics = episode.get("topics")
        tree = None
        if topics:
            root = TopicNode.from_dict(topics["root"])
            tree = _node(episode_key, episode.get("title"), root, depth)
        return {
            "episode_key": episode_key,
            "title": episode.get("title"),
            "status": episode.get("status"),
            "published_at": _iso(episode.get("published_at")),
            "duration_seconds": episode.get("duration_seconds"),
            "uri": URI_PREFIX + episode_key,
            "tree": tree,
            "note": None if tree else "not processed yet: no topic tree (status above)",
        }

    @server.tool(title="Transcript span", annotations=READ)
    def get_transcript_span(
        episode_key: Annotated[str, Field(min_length=1, max_length=64)],
        start: Annotated[float, Field(ge=0, description="seconds from the start")],
        end: Annotated[float, Field(gt=0, description="seconds from the start")],
        ctx: Context,
    ) -> dict[str, Any]:
        """The words said between ``start`` and ``end`` seconds (a hit's or a topic's
        span, say), as text and as timed segments with their speakers when known."""
        if end <= start:
            raise ToolError(f"end ({end}) must be after start ({start})")
        tenant = source.tenant(ctx)
        transcript, title = guarded(lambda: _transcript(source.platform, tenant, episode_key))
        segments = list(_segments_between(transcript, start, end))
        if not segments:
            raise ToolError(
                f"no words between {clock(start)} and {clock(end)} in episode {episode_key} "
                f"(it is {clock(transcript.duration)} long)"
            )
        first, last = segments[0]["start"], segments[-1]["end"]
        return {
            "episode_key": episode_key,
            "title": title,
            **span(first, last),
            "cite": cite(episode_key, title, first, last),
            "text": " ".join(s["text"] for s in segments),
            "segments": segments,
        }

    @server.tool(title="Digest", annotations=READ)
    def digest(
        ctx: Context,
        since: Annotated[str, Field(description="window start: 7d, 24h, 2w, a date")] = "7d",
        until: Annotated[str | None, Field(description="window end (default now)")] = None,
        feeds: Annotated[
            list[str] | None, Field(description="only these feeds (id, key, URL or title)")
        ] = None,
        budget: Annotated[
            str | None, Field(description="a listen list that fits this: 30m, 1h, 1h30m")
        ] = None,
        format: Annotated[str, Field(pattern="^(json|md)$", description="json or md")] = "json",
    ) -> dict[str, Any]:
        """What happened in the feeds over a window: new episodes with their leads and
        top topics (with start times), stories told across shows, and with ``budget`` a
        listen list that fits it. ``format="md"`` gives the Markdown rendering too."""
        from podmill.api.digests import digest_for

        tenant = source.tenant(ctx)
        document = guarded(
            lambda: digest_for(source.platform, tenant, since, until, tuple(feeds or ()), budget)
        )
        answer: dict[str, Any] = {"digest": document}
        if format == "md":
            from podmill.digest.render import render

            answer["markdown"] = render(document, "md")
        return answer

    @server.tool(
        title="Submit a URL",
        annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=True),
    )
    async def submit_url(
        url: Annotated[str, Field(min_length=1, max_length=4000, description="audio or item URL")],
        ctx: Context,
    ) -> dict[str, Any]:
        """Queue an episode for processing: an audio URL, or the audio URL of an item of
        a subscribed feed (as POST /jobs). The same episode is one job whoever asks;
        ``list_episodes`` / ``get_episode_tree`` show it once it is done. Only on
        ``podmill serve``'s /mcp: the embedded ``podmill mcp`` is read-only."""
        if source.submit is None:
            raise ToolError(source.read_only_detail.format(url=url))
        tenant = source.tenant(ctx)
        try:
            return await source.submit(ctx, tenant, url)
        except PodmillError as exc:
            raise ToolError(str(exc)) from None

    @server.resource(
        URI_PREFIX + "{episode_key}",
        name="episode",
        title="Episode outline",
        description="an episode's metadata and topic outline with times, as Markdown",
        mime_type="text/markdown",
    )
    def episode_resource(episode_key: str, ctx: Context) -> str:
        tenant = source.tenant(ctx)
        episode = _resource_read(source, lambda: source.platform.episode(tenant, episode_key))
        return _outline(episode_key, episode)

    @server.resource(
        URI_PREFIX + "{episode_key}/transcript",
        name="transcript",
        title="Episode transcript",
        description="an episode's transcript, one timed line per segment",
        mime_type="text/plain",
    )
    def transcript_resource(episode_key: str, ctx: Context) -> str:
        tenant = source.tenant(ctx)
        transcript, title = _resource_read(
            source, lambda: _transcript(source.platform, tenant, episode_key)
        )
        lines = [f"# {title or episode_key} [{episode_key}]"]
        for seg in transcript.segments:
            who = f"{seg.speaker}: " if seg.speaker else ""
            lines.append(f"[{clock(seg.start)}–{clock(seg.end)}] {who}{seg.text.strip()}")
        return "\n".join(lines) + "\n"

    return server


def run_stdio(settings: Any) -> None:
    """``podmill mcp``: the server over stdin/stdout for the embedded data dir at
    ``settings`` — every episode, nothing written (as ``podmill view``), so submit
    says how to process a URL instead. Returns when the client closes stdin."""
    from types import SimpleNamespace

    local = Tenant(0, "local", is_admin=True, sees_all=True)
    state = SimpleNamespace(platform=Platform(settings), searcher=None)
    where = "--db URL" if settings.db else f"--data-dir {settings.data_dir}"
    source = Source(
        state,
        tenant=lambda _ctx: local,
        submit=None,
        read_only=True,
        read_only_detail=(
            "podmill mcp serves this data dir read-only, so it queues nothing: process "
            f"the episode with `podmill run {{url}} {where}` in a terminal (it is here "
            "once that finishes), or connect the assistant to `podmill serve`'s /mcp, "
            "which queues it (docs/mcp.md)"
        ),
    )
    try:
        build_server(source).run("stdio")
    finally:
        state.platform.close()


# --------------------------------------------------------------------------- helpers


def _resource_read(source: Source, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except NotFound as exc:
        raise ResourceNotFoundError(str(exc)) from None
    except ArtifactDamaged as exc:
        raise ResourceError(str(source.damaged(exc))) from None
    except PodmillError as exc:
        raise ResourceError(str(exc)) from None


def _feed_id(service: Platform, tenant: Tenant, value: str) -> int:
    """The id of the tenant's feed named by ``value`` (id, URL, key or title, any case):
    only feeds of the tenant's library, so a name tells nothing about others' feeds."""
    wanted = value.strip()
    feeds = [f for f in service.library_feeds(tenant) if f["id"] is not None]
    for feed in feeds:
        names = (str(feed["id"]), feed["url"], feed["feed_key"])
        if wanted in names or (feed["title"] or "").casefold() == wanted.casefold():
            return int(feed["id"])
    known = ", ".join(f"{f['id']} ({f['title'] or f['url']})" for f in feeds) or "none"
    raise NotFound(f"no feed {value!r} among your feeds; yours: {known}")


def _hit(hit: dict[str, Any]) -> dict[str, Any]:
    start, end = float(hit["start"]), float(hit["end"])
    return {
        **hit,
        "at": f"{clock(start)}–{clock(end)}",
        "cite": cite(hit["episode_key"], hit.get("episode_title"), start, end),
        "uri": URI_PREFIX + hit["episode_key"],
    }


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if getattr(value, "tzinfo", 1) is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _listed(row: dict[str, Any]) -> dict[str, Any]:
    duration = row.get("duration_seconds")
    return {
        "episode_key": row["episode_key"],
        "title": row["title"],
        "feed_id": row["feed_id"],
        "published_at": _iso(row["published_at"]),
        "duration_seconds": duration,
        "duration": clock(duration) if duration else None,
        "status": row["status"],
        "uri": URI_PREFIX + row["episode_key"],
    }


def _node(key: str, title: str | None, node: TopicNode, depth: int) -> dict[str, Any]:
    return {
        "id": node.id,
        "level": node.level,
        "title": node.title,
        **span(node.start, node.end),
        "cite": cite(key, title, node.start, node.end),
        "summary": node.summary,
        "key_points": node.key_points,
        "keywords": node.keywords,
        "children": [_node(key, title, c, depth) for c in node.children if c.level <= depth],
    }


def _transcript(service: Platform, tenant: Tenant, key: str) -> tuple[Transcript, str | None]:
    """The episode's word-timed transcript (checked against its manifest, as
    ``GET /episodes/{key}/transcript`` serves it) and the episode's title."""
    path = service.transcript(tenant, key, "json")
    episode, _feed = service.episode_by_key(tenant, key)
    return Transcript.from_dict(json.loads(path.read_text(encoding="utf-8"))), episode.title


def _segments_between(transcript: Transcript, start: float, end: float) -> Iterator[dict]:
    """The segments' words that overlap ``start``..``end``, one entry per segment."""
    for seg in transcript.segments:
        if seg.end <= start or seg.start >= end:
            continue
        words = [w for w in seg.words if w.end > start and w.start < end]
        if seg.words and not words:
            continue
        text = " ".join(w.text.strip() for w in words) if words else seg.text.strip()
        first = words[0].start if words else seg.start
        last = words[-1].end if words else seg.end
        yield {**span(first, last), "speaker": seg.speaker, "text": text}


def _outline(key: str, episode: dict[str, Any]) -> str:
    """The episode resource: a Markdown outline of its tree, every line with its times."""
    title = episode.get("title") or key
    lines = [f"# {title}", "", f"- episode key: {key}", f"- status: {episode.get('status')}"]
    if episode.get("published_at"):
        lines.append(f"- published: {_iso(episode['published_at'])}")
    if episode.get("duration_seconds"):
        lines.append(f"- duration: {clock(episode['duration_seconds'])}")
    lines.append(f"- transcript: {URI_PREFIX}{key}/transcript")
    topics = episode.get("topics")
    if not topics:
        lines += ["", "Not processed yet: no topic tree."]
        return "\n".join(lines) + "\n"
    root = TopicNode.from_dict(topics["root"])
    if root.summary:
        lines += ["", root.summary]
    lines += ["", "## Topics", ""]
    for node in root.walk():
        if node.level == 0:
            continue
        indent = "  " * (node.level - 1)
        at = f"{clock(node.start)}–{clock(node.end)}"
        lines.append(f"{indent}- [{at}] {node.title} ({node.start:.1f}–{node.end:.1f} s)")
        if node.summary:
            lines.append(f"{indent}  {node.summary}")
    return "\n".join(lines) + "\n"
