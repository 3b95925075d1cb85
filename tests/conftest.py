"""Fixtures shared by every test suite. Keep each one small; group them by topic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from podmill.settings import Settings

from support.httpserver import TestHTTPServer

# --------------------------------------------------------------------------- settings


@pytest.fixture
def test_settings(tmp_path: Path) -> Settings:
    """Hermetic settings: data under tmp_path, local servers allowed, quick retries."""
    return Settings(
        data_dir=tmp_path / "data",
        allow_private_networks=True,
        download={
            "max_attempts": 3,
            "backoff_seconds": 0.01,
            "read_timeout": 2,
            "connect_timeout": 2,
        },
    )


# ------------------------------------------------------------------------------- HTTP


@pytest.fixture
def http_server() -> Iterator[TestHTTPServer]:
    """A real HTTP server on 127.0.0.1 (see tests/support/httpserver.py)."""
    with TestHTTPServer() as server:
        yield server
