"""A migrated database per test, SQLite file or fresh Postgres schema, and a Store on it.

Postgres runs against ``PODMILL_TEST_POSTGRES_URL`` (default: the local ``test``
database), each test in its own schema (``search_path`` in the URL), dropped afterwards.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url

from podmill.engine import ManualClock, Store
from podmill.storage.db import upgrade

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
    schema = f"podmill_engine_{os.getpid()}_{uuid.uuid4().hex[:8]}"
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


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def jitter_seed() -> int:
    """The seed of the store's retry jitter, for tests that replay it."""
    return 1234


@pytest.fixture
def store(db_url: str, clock: ManualClock, jitter_seed: int) -> Iterator[Store]:
    """A Store on a fresh database with a ManualClock, a 30 s lease and seeded jitter."""
    with Store(db_url, clock=clock, lease_seconds=30.0, rng=random.Random(jitter_seed)) as s:
        yield s
