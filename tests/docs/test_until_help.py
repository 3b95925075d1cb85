"""``--until`` says the same in every command that has it, and does what it says.

``search`` and ``digest`` once described it differently ("a date (inclusive) or 7d" and
"end of the window (exclusive; default now)") while both read it with
``podmill.timespec.parse_time(end=True)``.
"""

from __future__ import annotations

import re
from pathlib import Path

from podmill.cli import app

from support.cli import commands, run_cli

COMMANDS = commands(app)


def _until_help(path: tuple[str, ...]) -> str | None:
    option = next((p for p in COMMANDS[path].params if "--until" in p.opts), None)
    return None if option is None else option.help


def test_until_has_one_description_in_every_command() -> None:
    helps = {path: _until_help(path) for path in COMMANDS if _until_help(path) is not None}
    assert {("search",), ("digest",)} <= set(helps)
    assert len(set(helps.values())) == 1, helps
    text = helps[("search",)]
    assert "7d" in text and "that day included" in text and "ISO timestamp" in text


def test_help_prints_it_for_search_and_digest() -> None:
    printed = []
    for command in ("search", "digest"):
        result = run_cli(command, "--help")
        assert result.code == 0, result.stderr
        line = next(line for line in result.stdout.splitlines() if "--until" in line)
        printed.append(re.sub(r"^.*?--until\s+<str>\s+|\s*│\s*$", "", line))
    assert printed[0] == printed[1] == _until_help(("search",))


def test_a_bare_until_date_includes_that_day(tmp_path: Path) -> None:
    """What the help promises, as digest shows it: --until 2026-11-20 ends when the 21st
    starts, so a window from the 20th is not empty and one from the 21st is."""
    env = {"PODMILL_DATA_DIR": str(tmp_path / "data")}
    empty = run_cli("digest", "--since", "2026-11-21", "--until", "2026-11-20", env=env)
    assert empty.code == 1
    assert "until 2026-11-21T00:00:00+00:00" in empty.error_line, empty.stderr
    one_day = run_cli("digest", "--since", "2026-11-20", "--until", "2026-11-20", env=env)
    # past the window, it asks for something processed in the (empty) data dir
    assert "window is empty" not in one_day.stderr, one_day.stderr
    assert "podmill run FEED_OR_FILE" in one_day.error_line, one_day.stderr


def test_a_relative_until_counts_back_from_now() -> None:
    result = run_cli("digest", "--since", "3d", "--until", "5d")
    assert result.code == 1 and "the window is empty" in result.error_line, result.stderr


def test_search_and_digest_refuse_a_bad_until_alike() -> None:
    search = run_cli("search", "tax", "--until", "yesterday")
    digest = run_cli("digest", "--until", "yesterday")
    assert search.code == digest.code == 1
    assert search.error_line == digest.error_line
    assert search.error_line.startswith("error: --until 'yesterday' is not a time: use e.g. 7d")
