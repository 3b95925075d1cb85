"""Fixtures of the digest tests: a library of processed episodes (digest_library.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from digest_library import Library, make_library


@pytest.fixture
def library(tmp_path: Path, db_url: str) -> Iterator[Library]:
    """An empty library on SQLite and on Postgres."""
    yield from make_library(tmp_path / "data", db_url)


@pytest.fixture
def sqlite_library(tmp_path: Path) -> Iterator[Library]:
    """An empty library whose database is the data directory's podmill.db (embedded)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    yield from make_library(data_dir, f"sqlite:///{data_dir / 'podmill.db'}")
