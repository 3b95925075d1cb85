"""Fixtures shared by every test suite. Keep each one small; group them by topic."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url

from podmill.settings import Settings
from podmill.storage.db import upgrade

from support.corpus import corpus_labels, processed_corpus  # noqa: F401  (docs/corpus.md)
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


# -------------------------------------------------------------------------- databases
# Postgres runs against ``PODMILL_TEST_POSTGRES_URL`` (default: the local ``test``
# database), each test in its own schema (``search_path`` in the URL), dropped afterwards.
# tests/process has its own ``postgres_url`` that survives a server restart.

PG_URL = os.environ.get(
    "PODMILL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose ``search_path`` is a new, empty schema, dropped after the test."""
    pytest.importorskip("psycopg", reason="pip install 'psycopg[binary]>=3.2'")
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect():
            pass
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"Postgres unreachable at {PG_URL}: {str(exc).splitlines()[0]}")
    schema = f"podmill_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database: a SQLite file, or a fresh Postgres schema."""
    url = (
        f"sqlite:///{tmp_path / 'podmill.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    upgrade(url)
    return url


# ------------------------------------------------------------------------------- HTTP


@pytest.fixture
def http_server() -> Iterator[TestHTTPServer]:
    """A real HTTP server on 127.0.0.1 (see tests/support/httpserver.py)."""
    with TestHTTPServer() as server:
        yield server
