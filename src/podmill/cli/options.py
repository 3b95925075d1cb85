"""Options every command group shares, declared once: the same flag means the same thing
in every command.

``--db`` is a database URL; without it a command uses the ``db`` setting
(``PODMILL_DB`` or ``db = "…"`` in ``podmill.toml``), else the SQLite file
``DATA_DIR/podmill.db`` (:attr:`podmill.settings.Settings.database_url`), for every command.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from podmill.errors import PodmillError
from podmill.timespec import optional_time

P = ParamSpec("P")
R = TypeVar("R")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="podmill.toml to read (default ./podmill.toml)")
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="where artifacts live [setting data_dir / PODMILL_DATA_DIR]"),
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="database URL [setting db / PODMILL_DB; default: sqlite:///DATA_DIR/podmill.db]",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="one JSON object per line")]
LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        help="log lines: text or json (JSON lines with correlation_id, job_id, worker_id, "
        "stage) [setting log_format / PODMILL_LOG_FORMAT; default text]",
    ),
]
LogLevelOpt = Annotated[
    str | None,
    typer.Option(
        "--log-level",
        help="debug, info, warning or error [setting log_level / PODMILL_LOG_LEVEL; default: "
        "podmill's INFO lines (each step, each request; /metrics and /health at debug), "
        "libraries' warnings]",
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="warnings and errors only, no step or request lines (--log-level warning)",
    ),
]
SinceOpt = Annotated[str | None, typer.Option(help="episodes published since DATE or 7d")]
# ``search`` and ``digest``: both read it with timespec.parse_time(end=True) and keep
# episodes published before the time it names
UntilOpt = Annotated[
    str | None,
    typer.Option(
        "--until",
        help="published before: 7d, 24h, 2w (that long ago), a date (that day included) "
        "or an ISO timestamp",
    ),
]
AllowPrivateOpt = Annotated[
    bool | None, typer.Option(help="allow downloads from private/loopback addresses")
]


def naming_private_flag(message: str) -> str:
    """A private-address refusal as a command that has ``--allow-private-networks``
    tells it: the flag first, then the setting (every other message unchanged)."""
    from podmill.feeds.download import PRIVATE_HINT, PRIVATE_SETTING

    flag = f"pass --allow-private-networks, or set {PRIVATE_SETTING}, if you trust this source"
    return message.replace(PRIVATE_HINT, flag)


def names_private_flag(command: Callable[P, R]) -> Callable[P, R]:
    """Decorates a command with ``--allow-private-networks``: its one-line errors say
    the flag when they refuse a private address."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except PodmillError as exc:
            exc.args = (naming_private_flag(str(exc)), *exc.args[1:])
            raise

    return wrapper


def check_limit(value: int | None, maximum: int | None = None) -> int | None:
    """``--limit`` is a count of 1 or more (``-1`` once meant "all but the last")."""
    if value is not None and (value < 1 or (maximum is not None and value > maximum)):
        bound = f"from 1 to {maximum}" if maximum is not None else "of 1 or more"
        raise PodmillError(f"--limit {value}: give a number {bound}")
    return value


def positive_limit(value: int | None) -> int | None:
    """The ``--limit`` callback (typer passes one argument)."""
    return check_limit(value)


EpisodeLimitOpt = Annotated[
    int | None, typer.Option(help="newest N episodes of a feed", callback=positive_limit)
]


MetricsHostOpt = Annotated[
    str, typer.Option("--metrics-host", help="address the metrics port binds")
]


def metrics_port_option(serves: str, envvar: str | None = None) -> Any:
    """The ``--metrics-port`` of a long-running command that serves ``serves`` there:
    0 (off) to 65535, and metrics need the 'metrics' extra."""
    return Annotated[
        int,
        typer.Option(
            "--metrics-port",
            envvar=envvar,
            min=0,
            max=65535,
            help=f"serve {serves} on this port (0: off; needs the 'metrics' extra)",
        ),
    ]


def metrics_port_taken(host: str, port: int, exc: OSError) -> PodmillError:
    """The one error line of a ``--metrics-port`` the command cannot listen on."""
    return PodmillError(
        f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
        "choose a free port or 0 to turn metrics off"
    )


def parse_since(value: str | None) -> datetime | None:
    """``--since`` for ``run`` and ``submit``: ``2026-11-01``, an ISO timestamp, or ``7d``."""
    return optional_time(value, option="--since")
