"""The one settings loader of every command, and the ``--db`` rule.

:func:`load` merges built-in defaults < ``podmill.toml`` < ``PODMILL_*`` < the command's
own options, then configures what a command process needs before it does anything:
logging (text, or JSON lines with ``--log-format json`` / ``PODMILL_LOG_FORMAT=json``)
and the model arbiter.

The log level is ``--log-level`` (``--quiet`` is ``--log-level warning``), else the
``log_level`` setting (``PODMILL_LOG_LEVEL``). Left unset, it is WARNING, except that a
command that runs until stopped (``worker``, ``serve``, ``scheduler``: ``long_running``)
shows podmill's own INFO lines, one per step started and finished and one per request,
while libraries stay at WARNING.

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


def load(
    config: Path | None,
    *,
    long_running: bool = False,
    quiet: bool = False,
    role: str = "podmill",
    **cli: Any,
) -> Settings:
    """The command's settings (an option left ``None`` was not given), with logging and
    the model arbiter configured from them; a bad value is one error line.

    ``quiet`` is ``--quiet`` (warnings and errors only); ``long_running`` gives podmill's
    own loggers INFO when no log level is set anywhere (the module doc). ``role`` is the
    service name of the process's spans when ``tracing.enabled`` names none."""
    from podmill.obs.logging import configure_logging, resolve_format, resolve_level

    if cli.get("log_format") is not None:
        cli["log_format"] = resolve_format(cli["log_format"])  # a bad value is one line
    if cli.get("log_level") is not None:
        cli["log_level"] = resolve_level(cli["log_level"])
    if quiet:
        if cli.get("log_level") not in (None, "WARNING"):
            raise PodmillError(
                f"--quiet and --log-level {cli['log_level'].lower()}: give one of them "
                "(--quiet is --log-level warning)"
            )
        cli["log_level"] = "WARNING"
    settings, provenance = load_settings(cli, config)
    level_set = provenance.get("log_level", "default") != "default"
    own_level = "INFO" if long_running and not level_set else None
    configure_logging(settings.log_level, settings.log_format, own_level)
    configure_process_arbiter(settings.models.memory_budget, settings.models.idle_unload_seconds)
    if settings.tracing.enabled:
        from podmill.obs.tracing import configure as configure_tracing

        configure_tracing(
            True,
            service_name=settings.tracing.service_name,
            endpoint=settings.tracing.endpoint,
            role=role,
        )
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
