"""What commands print, and how: results on stdout, messages on stderr, one-line errors.

``out`` (stdout) carries what a script reads: tables, outlines, ``--json`` lines.
``err`` (stderr) carries what a person reads: progress, notes, the ``error:`` line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def table(title: str | None, *columns: str) -> Table:
    """A table with these column headers (add more with ``add_column``)."""
    shown = Table(title=title)
    for column in columns:
        shown.add_column(column)
    return shown


def jsonable(value: Any) -> Any:
    """``value`` with its datetimes as ISO strings, ready for :func:`json.dumps`."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return value


def print_json(obj: Any, indent: int | None = None) -> None:
    """``obj`` as JSON on stdout, one line unless ``indent`` (never read as markup)."""
    typer.echo(json.dumps(jsonable(obj), ensure_ascii=False, indent=indent))


def print_table(
    rows: Sequence[Any], as_json: bool, shown: Callable[[Sequence[Any]], Table]
) -> None:
    """A listing: ``rows`` as one JSON object per line (``--json``), else the table
    ``shown`` makes of them."""
    if as_json:
        for row in rows:
            print_json(row)
        return
    out.print(shown(rows))


def print_lines(rows: Sequence[Any], as_json: bool, line: Callable[[Any], str]) -> None:
    """A listing: each row as one JSON object (``--json``), else as the plain text
    ``line`` makes of it (never read as markup)."""
    for row in rows:
        if as_json:
            print_json(row)
        else:
            out.print(line(row), markup=False)


def when(value: Any) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS``; ``None`` as an empty cell."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def status_text(status: str) -> str:
    """A job or step status, coloured (markup)."""
    colour = {"done": "green", "running": "cyan", "failed": "red", "dead": "red"}.get(status)
    return f"[{colour}]{status}[/]" if colour else status


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: MESSAGE`` as one line on stderr and exit with ``code``."""
    err.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)
    sys.exit(code)
