"""Helpers for tests that fault real ``podmill run`` processes (tests/reliability)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


def run_env(**extra: str) -> dict[str, str]:
    """The environment of a ``podmill`` subprocess: no inherited PODMILL_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODMILL_")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    env.update(extra)
    return env


def start_run(*args: str | Path, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """``podmill run ARGS`` in the background; stdout and stderr go to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "podmill", "run", *map(str, args)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=run_env(**env),
        )


def steps(db_file: Path, stage: str | None = None) -> list[dict[str, Any]]:
    """The step rows of a SQLite database, read as an operator would."""
    conn = sqlite3.connect(db_file, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        query = "SELECT * FROM steps" + (" WHERE stage = ?" if stage else "")
        return [dict(row) for row in conn.execute(query, (stage,) if stage else ())]
    finally:
        conn.close()


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (skips the test where mounting is not
    allowed); unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
