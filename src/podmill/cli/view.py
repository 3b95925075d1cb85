"""``podmill view``: the viewer's pages over an embedded data dir, read-only.

What ``podmill run`` wrote (its SQLite database and artifact files) is served at
``http://127.0.0.1:PORT`` with no login: one person's own machine, bound to loopback
only, nothing written — not the database (no migration, no tenant row), not the data
dir. ``podmill serve`` serves the same pages for many tenants, with logins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from podmill.cli import settings as cli_settings
from podmill.cli.options import ConfigOpt, DataDirOpt, DbOpt, LogLevelOpt, QuietOpt
from podmill.cli.output import err
from podmill.errors import PodmillError

HOST = "127.0.0.1"


def view(
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="port on 127.0.0.1")] = 8765,
    open_browser: Annotated[
        bool, typer.Option("--open", help="open the library in your web browser")
    ] = False,
    log_level: LogLevelOpt = None,
    quiet: QuietOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Browse what `podmill run` made: library, episodes with a synced player, search and
    digests, on 127.0.0.1 (read-only, no login)."""
    from podmill.cli.serve import check_port_free
    from podmill.errors import require

    uvicorn = require("uvicorn", "server", "podmill view")
    require("fastapi", "server", "podmill view")
    require("jinja2", "server", "podmill view")
    check_port_free(HOST, HOST, port, single_process=True)
    cli = {"db": db, "data_dir": data_dir, "log_level": log_level}
    settings = cli_settings.load(config, long_running=True, quiet=quiet, **cli)
    url = cli_settings.existing_database(
        settings, "run `podmill run FEED_OR_FILE` (or `podmill demo`) first"
    )
    check_schema(url)
    from podmill.api.app import create_app

    address = f"http://{HOST}:{port}/"
    err.print(
        f"podmill view on {address} (read-only: {Path(settings.data_dir).resolve()}); "
        "Ctrl-C stops it",
        markup=False,
    )
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(address,)).start()
    app = create_app(settings, auth=False, read_only=True)
    uvicorn.run(
        app,
        host=HOST,
        port=port,
        log_level=settings.log_level.lower(),
        log_config=None,
        access_log=False,
    )


def check_schema(url: str, command: str = "podmill view") -> None:
    """The database must be at this podmill's schema: the viewer (and ``podmill mcp``)
    never migrates."""
    from podmill.storage import db as storage_db

    with storage_db.database_errors(url):
        current, head = storage_db.current_revision(url), storage_db.head_revision()
    if current != head:
        raise PodmillError(
            f"database {storage_db.display_url(url)} is at schema revision {current or 'none'}, "
            f"this podmill needs {head}: run `podmill db upgrade` ({command} changes nothing)"
        )
