"""Rules every command shares (podmill.cli): one ``--db`` and one settings loader.

The commands are walked from the Typer app, so a new command is held to them without
editing this file.
"""

from __future__ import annotations

import json
from pathlib import Path

from podmill.cli import app

from support.cli import commands, run_cli

COMMANDS = commands(app)


def _option(path: tuple[str, ...], flag: str):
    return next((p for p in COMMANDS[path].params if flag in p.opts), None)


def test_db_is_one_option_with_the_data_dir_default_everywhere() -> None:
    with_db = [path for path in COMMANDS if _option(path, "--db") is not None]
    assert {("jobs", "list"), ("worker",), ("submit",), ("serve",), ("search",)} <= set(with_db)
    for path in with_db:
        db = _option(path, "--db")
        # the same help, no envvar of its own (PODMILL_DB is read as the db setting), never
        # required: without it the command uses DATA_DIR/podmill.db
        assert db.help == _option(("serve",), "--db").help, path
        assert "DATA_DIR/podmill.db" in db.help and "PODMILL_DB" in db.help, path
        assert not db.required and db.envvar is None, path
        assert _option(path, "--data-dir") is not None, f"{path}: --db without --data-dir"


def test_search_commands_write_json_logs_like_every_other_command(tmp_path: Path) -> None:
    """The search commands had their own settings loader, whose logging was always text."""
    result = run_cli(
        "index", "rebuild", "--vectors-only", "--data-dir", tmp_path / "data",
        env={"PODMILL_LOG_FORMAT": "json", "PODMILL_LOG_LEVEL": "INFO"},
    )  # fmt: skip
    assert result.code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("{")]
    migrations = [json.loads(line) for line in lines]
    assert any(m["logger"] == "alembic.runtime.migration" for m in migrations), result.stderr
    assert "INFO:alembic" not in result.stderr
