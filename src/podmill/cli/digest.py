"""``podmill digest``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from podmill.cli import settings as cli_settings
from podmill.cli.options import ConfigOpt, DataDirOpt, DbOpt, UntilOpt
from podmill.cli.output import err
from podmill.digest.stories import DEFAULT_THRESHOLD
from podmill.errors import PodmillError
from podmill.settings import Settings
from podmill.storage.db import database_errors, display_url

if TYPE_CHECKING:
    from podmill.digest.build import DigestOptions
    from podmill.digest.window import Window


class DigestFormat(str, Enum):
    md = "md"
    json = "json"
    html = "html"


def digest(
    since: Annotated[
        str, typer.Option(help="start of the window: 7d, 24h, 2w, a date or ISO timestamp")
    ] = "7d",
    until: UntilOpt = None,
    feed: Annotated[
        list[str] | None,
        typer.Option("--feed", help="only this feed (id, key, URL or title); repeatable"),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(help="listening time for the listen list: 30m, 1h, 1h30m, 90s"),
    ] = None,
    format: Annotated[DigestFormat, typer.Option("--format", help="output format")] = (
        DigestFormat.md
    ),
    threshold: Annotated[
        float | None,
        typer.Option(
            min=-1.0,
            max=1.0,
            help=f"story clustering threshold (cosine; default {DEFAULT_THRESHOLD}, tuned)",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to FILE instead of stdout")
    ] = None,
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """What happened across your feeds: new episodes, stories, a time-budgeted listen list."""
    from podmill.digest.build import DigestOptions
    from podmill.digest.render import render
    from podmill.digest.window import parse_budget, parse_window

    now = datetime.now(UTC)
    window = parse_window(since, until, now)  # bad input fails before anything is opened
    budget_seconds = parse_budget(budget)
    settings = cli_settings.load(config, db=db, data_dir=data_dir)
    url = cli_settings.existing_database(
        settings, "process something first (`podmill run FEED_OR_FILE`)"
    )
    options = DigestOptions(
        threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
        budget_seconds=budget_seconds,
    )
    document = _digest(settings, url, window, now, options, feed or [])
    if document["stats"]["episodes"] == 0:
        pending = document["stats"]["not_processed"]
        err.print(
            f"no processed episodes published between {window.since:%Y-%m-%d %H:%M} and "
            f"{window.until:%Y-%m-%d %H:%M} UTC"
            + (f" ({pending} still being processed)" if pending else "")
            + " (widen --since?)",
            markup=False,
        )
    text = render(document, format.value)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        err.print(f"digest written to {output}", markup=False)
    else:
        sys.stdout.write(text)


def _digest(
    settings: Settings,
    url: str,
    window: Window,
    now: datetime,
    options: DigestOptions,
    feeds: list[str],
) -> dict[str, Any]:
    from podmill.digest.collect import any_episodes, newest_finished_set
    from podmill.digest.service import make_digest
    from podmill.storage import db as storage_db

    with database_errors(url):
        if storage_db.current_revision(url) is None:
            raise PodmillError(
                f"nothing processed yet: {display_url(url)} has no podmill tables "
                "(run `podmill run FEED_OR_FILE` first)"
            )
        engine = storage_db.make_engine(url)
        try:
            with engine.connect() as conn:
                if not any_episodes(conn):
                    raise PodmillError(
                        f"nothing processed yet in {settings.data_dir}: "
                        "run `podmill run FEED_OR_FILE` first"
                    )
            return make_digest(
                engine,
                window,
                newest_finished_set(settings.data_dir),
                now,
                options=options,
                feeds=feeds,
            )
        finally:
            engine.dispose()
