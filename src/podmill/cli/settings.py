"""The one settings loader of every command, and the ``--db`` rule.

:func:`load` merges built-in defaults < ``podmill.toml`` < ``PODMILL_*`` < the command's
own options, then configures what a command process needs before it does anything:
logging (text, or JSON lines with ``--log-format json`` / ``PODMILL_LOG_FORMAT=json``)
and the model arbiter.

The database of every command is :attr:`Settings.database_url`: ``--db``, else the
``db`` setting (``PODMILL_DB``), else the SQLite file ``DATA_DIR/podmill.db``. Commands
that only read what others wrote (``jobs``, ``dead``, ``queues``, ``digest``) take it
through :func:`existing_database`, so a data directory nothing has written to is one
line instead of an empty database created there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from podmill.errors import PodmillError
from podmill.ml.arbiter import configure_process_arbiter
from podmill.settings import Settings, load_settings


def load(config: Path | None, **cli: Any) -> Settings:
    """The command's settings (an option left ``None`` was not given), with logging and
    the model arbiter configured from them; a bad value is one error line."""
    from podmill.obs.logging import configure_logging, resolve_format

    if cli.get("log_format") is not None:
        cli["log_format"] = resolve_format(cli["log_format"])  # a bad value is one line
    settings, _ = load_settings(cli, config)
    configure_logging(settings.log_level, settings.log_format)
    configure_process_arbiter(settings.models.memory_budget, settings.models.idle_unload_seconds)
    return settings


def existing_database(settings: Settings, first: str) -> str:
    """The database URL of a command that reads what others wrote: when it is the data
    directory's SQLite file and that file does not exist, an error saying what to run
    ``first``."""
    if settings.db is None and not settings.default_database.is_file():
        raise PodmillError(
            f"no podmill data in {settings.data_dir}: {first}, "
            "or point --data-dir / --db at your data"
        )
    return settings.database_url
