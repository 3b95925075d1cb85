"""``podmill feed``: a feed written back with ``podcast:transcript`` and
``podcast:chapters`` tags pointing at what podmill made, for a podcaster to publish
(docs/podcasting20.md). Reads the embedded data dir (or ``--db``); writes nothing there."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from podmill.cli import settings as cli_settings
from podmill.cli.options import ConfigOpt, DataDirOpt, DbOpt
from podmill.cli.output import err
from podmill.errors import PodmillError
from podmill.storage.db import database_errors

FEED_FILE = "feed.xml"


def feed(
    feed: Annotated[str, typer.Argument(help="the feed: id (podmill feeds list), URL or title")],
    base_url: Annotated[
        str,
        typer.Option(
            "--base-url",
            help="absolute URL the files will be served under: each episode's are at "
            "BASE/episodes/KEY/{transcript.json,transcript.vtt,transcript.srt,chapters.json}",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help=f"write DIR/{FEED_FILE} and every linked file under DIR/episodes/ "
            "(upload DIR to BASE); default: the feed to stdout",
        ),
    ] = None,
    depth: Annotated[
        int,
        typer.Option(min=1, max=2, help="chapters: 1 = a chapter per topic, 2 = sub-topics"),
    ] = 1,
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write a feed back with podcast:transcript and podcast:chapters tags on every
    processed episode, pointing at podmill's transcripts and chapters under --base-url."""
    from podmill.cli.engine import open_store
    from podmill.feeds.podcasting import enriched_feed
    from podmill.platform import Platform, Tenant
    from podmill.search.query import resolve_feed

    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PodmillError(
            f"--base-url {base_url!r} is not an absolute http(s) URL: give where the files "
            "will be served, e.g. https://example.com/podcast"
        )
    settings = cli_settings.load(config, db=db, data_dir=data_dir)
    url = cli_settings.existing_database(settings, "process a feed first (`podmill run FEED`)")
    with database_errors(url):
        open_store(url, migrate=False).close()  # this podmill's schema, or one error line
        service = Platform(settings)
        try:
            with service.reader.connect() as conn:
                feed_id = resolve_feed(conn, feed)
            # the embedded data dir's reader: every episode, as `podmill view` sees it
            reader = Tenant(0, "local", is_admin=True, sees_all=True)
            facts, items = service.feed_items(reader, feed_id, base_url)
            document = enriched_feed(facts, items)
            if out is None:
                sys.stdout.buffer.write(document)
                return
            written = 0
            for key in [i.episode.episode_key for i in items if i.processed]:
                for name, data in service.published_files(reader, key, depth).items():
                    _write(out / "episodes" / key / name, data)
                    written += 1
            _write(out / FEED_FILE, document)
        finally:
            service.close()
    err.print(f"wrote {out / FEED_FILE} and {written} episode files under {out}", markup=False)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
