"""``podmill db``: database maintenance."""

from __future__ import annotations

import typer

from podmill.cli import settings as cli_settings
from podmill.cli.options import ConfigOpt, DataDirOpt, DbOpt
from podmill.cli.output import err

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create or migrate the database schema to the latest version."""
    from podmill.storage import db as storage_db

    settings = cli_settings.load(config, db=db, data_dir=data_dir)
    storage_db.upgrade(settings.database_url)
    err.print(f"database at revision {storage_db.current_revision(settings.database_url)}")
