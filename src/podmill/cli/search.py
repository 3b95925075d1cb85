"""``podmill search`` and ``podmill index``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from podmill.cli import settings as cli_settings
from podmill.cli.options import ConfigOpt, DataDirOpt, DbOpt, UntilOpt, check_limit
from podmill.cli.output import err, out, print_json
from podmill.errors import PodmillError
from podmill.settings import Settings
from podmill.timespec import clock

if TYPE_CHECKING:
    from sqlalchemy import Engine

index_app = typer.Typer(help="The search index: rebuild it from artifacts.", no_args_is_help=True)


def open_index(settings: Settings) -> Engine:
    """An engine on the database ``podmill run`` wrote, migrated to head; a clear error
    when there is no database or no indexed episode yet."""
    from sqlalchemy import make_url

    from podmill.search import store
    from podmill.storage import db

    url = settings.database_url
    where = f"--data-dir {settings.data_dir}" if not settings.db else "--db URL"
    first = f"run `podmill run FEED_OR_FILE {where}` first"
    path = make_url(url).database if make_url(url).get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not Path(path).exists():
        raise PodmillError(f"no search index: no database at {path}; {first}")
    revision = db.current_revision(url)
    if revision is None:
        raise PodmillError(f"no search index: the database has no podmill schema; {first}")
    if revision != db.head_revision():
        db.upgrade(url)
    engine = db.make_engine(url)
    with engine.connect() as conn:
        if store.doc_count(conn) == 0:
            engine.dispose()
            episodes = settings.data_dir / "episodes"
            if episodes.is_dir() and any(episodes.iterdir()):
                raise PodmillError(
                    f"the search index is empty but {episodes} has episodes: run "
                    f"`podmill index rebuild {where}` to index them"
                )
            raise PodmillError(f"no search index: no episode has been indexed yet; {first}")
    return engine


def search(
    query: Annotated[str, typer.Argument(help="what to look for, in your own words")],
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
    feed: Annotated[
        str | None, typer.Option("--feed", help="only this feed: id, URL or title")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="published since: 7d, 12h, 2w or a date")
    ] = None,
    until: UntilOpt = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", help="hits to show (1-200)", callback=lambda v: check_limit(v, 200)
        ),
    ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print the hits as a JSON list")] = False,
    config: ConfigOpt = None,
) -> None:
    """Search topics and passages across every processed episode (keyword + meaning)."""
    from podmill.search.query import parse_time, resolve_feed
    from podmill.search.searcher import Searcher
    from podmill.search.store import Filters

    if not query.strip():
        raise PodmillError('empty query: give words to search for, e.g. podmill search "tax"')
    settings = cli_settings.load(config, data_dir=data_dir, db=db)
    filters_since = parse_time(since, "--since")
    filters_until = parse_time(until, "--until", end=True)
    engine = open_index(settings)
    try:
        feed_id = None
        if feed is not None:
            with engine.connect() as conn:
                feed_id = resolve_feed(conn, feed)
        filters = Filters(feed_id=feed_id, since=filters_since, until=filters_until)
        hits = Searcher(engine, settings.data_dir, auto_rebuild="sync").search(
            query, filters, limit
        )
    finally:
        engine.dispose()
    if as_json:
        print_json([h.to_json() for h in hits])
        return
    if not hits:
        err.print(f"no matches for {query!r}")
        return
    for n, hit in enumerate(hits, 1):
        heading = Text.assemble(
            (f"{n:>2}. ", "bold"),
            (hit.title or hit.episode_title, "bold"),
            ("  —  ", ""),
            (hit.episode_title, "italic"),
        )
        where = (
            f"    {clock(hit.start)}–{clock(hit.end)}  {hit.kind} in "
            f"{'episode' if hit.level == 0 else 'topic ' + hit.node_id}  "
            f"[{hit.episode_key}]  score {hit.score:.4f}"
        )
        out.print(heading)
        out.print(Text(where, style="dim"))
        out.print(Text("    ") + _marked(hit.snippet))


def _marked(snippet: str) -> Text:
    """The snippet with its matches shown: in bold yellow on a terminal (the «» markers
    dropped, as ``grep --color`` shows a match), and as «marked» words, the JSON
    snippet's markers, when stdout is a pipe, a file or a dumb terminal (never ANSI)."""
    if not out.is_terminal or out.is_dumb_terminal:
        return Text(snippet)
    text = Text()
    bold = False
    for part in snippet.replace("»", "«").split("«"):
        text.append(part, style="bold yellow" if bold else "")
        bold = not bold
    return text


@index_app.command("rebuild")
def index_rebuild(
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
    vectors_only: Annotated[
        bool,
        typer.Option("--vectors-only", help="only rebuild the vector index from the database"),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Rebuild the search index from the artifacts on disk (database rows, then vectors).

    Safe while searches run: each episode's rows are replaced in one transaction, and
    the new vector index is written aside and swapped in atomically.
    """
    from podmill.pipeline.projection import rebuild_from_artifacts
    from podmill.search.searcher import Searcher
    from podmill.storage import db as storage_db

    settings = cli_settings.load(config, data_dir=data_dir, db=db)
    if not vectors_only and not (settings.data_dir / "episodes").is_dir():
        raise PodmillError(
            f"no episodes in {settings.data_dir}: run `podmill run FEED_OR_FILE` first "
            "or pass --data-dir"
        )
    storage_db.upgrade(settings.database_url)
    engine = storage_db.make_engine(settings.database_url)
    try:
        if not vectors_only:
            from podmill.ml.embed import embed

            report = rebuild_from_artifacts(
                settings.data_dir, storage_db.session_factory(engine), embed
            )
            err.print(
                f"indexed {report.episodes} episodes: {report.documents} documents "
                f"({report.embedded} vectors computed)"
            )
            for line in report.skipped:
                err.print(f"skipped {line}")
        generation = Searcher(engine, settings.data_dir, auto_rebuild="off").rebuild()
        kind = "IVF" if generation.centroids is not None else "exact"
        err.print(f"vector index {generation.name}: {len(generation)} vectors ({kind})")
    finally:
        engine.dispose()
