"""Run the real ``podmill`` command in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]

    @property
    def error_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.startswith("error:")]
        return lines[-1] if lines else ""


def run_cli(
    *args: str | Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
) -> CliResult:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PODMILL_")}
    full_env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "podmill", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def commands(app: Any) -> dict[tuple[str, ...], Any]:
    """Every command of a Typer app by its words (``("jobs", "list")``), walked from the
    app, so a test over them covers a new command without being edited."""
    import typer.main

    def leaves(command: Any, path: tuple[str, ...] = ()) -> Any:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from leaves(sub, (*path, name))
        else:
            yield path, command

    return dict(leaves(typer.main.get_command(app)))
