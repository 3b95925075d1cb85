"""``podmill feeds list`` and ``podmill episodes list``: what podmill holds and what it
has processed, on the database every command uses (``--db``, else ``PODMILL_DB``, else
``DATA_DIR/podmill.db``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from podmill.cli import settings as cli_settings
from podmill.cli.options import ConfigOpt, DataDirOpt, DbOpt, JsonOpt, SinceOpt, check_limit
from podmill.cli.output import print_table, status_text, table, when
from podmill.errors import PodmillError
from podmill.storage.db import database_errors
from podmill.timespec import clock

if TYPE_CHECKING:
    from sqlalchemy import Connection

feeds_app = typer.Typer(help="The feeds podmill knows: list them.", no_args_is_help=True)
episodes_app = typer.Typer(
    help="The episodes podmill knows and what was processed: list them.", no_args_is_help=True
)

_FIRST = "process something first (`podmill run FEED_OR_FILE`)"


@contextmanager
def _catalog(db: str | None, data_dir: Path | None, config: Path | None) -> Iterator[Connection]:
    """A connection to the command's database; one error line when there is none, its
    schema is not this podmill's (``open_store``), or it cannot be reached."""
    from podmill.cli.engine import open_store

    settings = cli_settings.load(config, db=db, data_dir=data_dir)
    url = cli_settings.existing_database(settings, _FIRST)
    with database_errors(url):
        store = open_store(url, migrate=False)
        try:
            with store.engine.connect() as conn:
                yield conn
        finally:
            store.close()


@feeds_app.command("list")
def feeds_list(
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Every feed, with its episode count, how many are processed, and its newest episode."""
    from podmill.storage.listings import feed_listing

    with _catalog(db, data_dir, config) as conn:
        feeds = feed_listing(conn)
    if not feeds and not as_json:
        raise PodmillError(f"no feeds yet; {_FIRST}")
    print_table(feeds, as_json, _feeds_table)


def _feeds_table(feeds: Sequence[dict[str, Any]]) -> Table:
    shown = table(f"feeds ({len(feeds)})", "id", "title", "episodes", "done", "newest", "url")
    for feed in feeds:
        shown.add_row(
            str(feed["id"]),
            escape(feed["title"] or ""),
            str(feed["episodes"]),
            str(feed["done"]),
            when(feed["newest_episode"])[:10],
            escape(feed["url"]),
        )
    return shown


@episodes_app.command("list")
def episodes_list(
    feed: Annotated[
        str | None, typer.Option("--feed", help="only this feed: id, URL or title")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(help="new (never queued), pending, running, done, failed or cancelled"),
    ] = None,
    since: SinceOpt = None,
    limit: Annotated[
        int,
        typer.Option(help="newest N episodes (1-1000)", callback=lambda v: check_limit(v, 1000)),
    ] = 50,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Episodes newest first, with their feed and the status of their newest job; the
    key is what `podmill show KEY` takes."""
    from podmill.search.query import parse_time, resolve_feed
    from podmill.storage.listings import EPISODE_STATUSES, episode_listing

    if status is not None and status not in EPISODE_STATUSES:
        raise PodmillError(f"--status {status!r}: use one of {', '.join(EPISODE_STATUSES)}")
    published_since = parse_time(since, "--since")
    with _catalog(db, data_dir, config) as conn:
        feed_id = resolve_feed(conn, feed) if feed is not None else None
        episodes = episode_listing(
            conn, feed_id=feed_id, status=status, since=published_since, limit=limit
        )
    if not episodes and not as_json:
        raise PodmillError(
            "no episodes match" if (feed or status or since) else f"no episodes yet; {_FIRST}"
        )
    print_table(episodes, as_json, _episodes_table)


def _episodes_table(episodes: Sequence[dict[str, Any]]) -> Table:
    shown = table(f"episodes ({len(episodes)})")
    shown.add_column("key", no_wrap=True)
    for column in ("published", "title", "feed", "duration", "status", "job"):
        shown.add_column(column)
    for episode in episodes:
        seconds = episode["duration_seconds"]
        shown.add_row(
            episode["episode_key"],
            when(episode["published_at"])[:10],
            escape(episode["title"] or ""),
            escape(episode["feed_title"] or ""),
            "" if seconds is None else clock(seconds),
            status_text(episode["status"]),
            "" if episode["job_id"] is None else str(episode["job_id"]),
        )
    return shown
