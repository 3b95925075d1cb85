"""The API against a migrated database: a SQLite file, or a fresh Postgres schema.

``client`` is FastAPI's TestClient on ``create_app`` (the fine-grained matrix);
``tests/api/test_server.py`` runs ``podmill serve`` as a real process. Postgres runs
against ``PODMILL_TEST_POSTGRES_URL`` (default: the local ``test`` database), each test
in its own schema, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url

from podmill.api.platform import Platform
from podmill.settings import Settings
from podmill.storage.db import upgrade

from support.api import Caller, LiveFeed, make_caller, make_settings
from support.httpserver import TestHTTPServer

pytest.importorskip("fastapi", reason="pip install 'podmill[server]'")

from fastapi.testclient import TestClient

from podmill.api.app import create_app

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
    schema = f"podmill_api_{os.getpid()}_{uuid.uuid4().hex[:8]}"
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
def api_settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url)


@pytest.fixture
def platform(api_settings: Settings) -> Iterator[Platform]:
    service = Platform(api_settings)
    try:
        yield service
    finally:
        service.close()


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


@pytest.fixture
def admin(platform: Platform, client: TestClient) -> Caller:
    return make_caller(platform, client, "root", admin=True)


@pytest.fixture
def alice(platform: Platform, client: TestClient) -> Caller:
    return make_caller(platform, client, "alice")


@pytest.fixture
def bob(platform: Platform, client: TestClient) -> Caller:
    return make_caller(platform, client, "bob")


# ----------------------------------------------------------------------------- feeds


@pytest.fixture
def live_feed(http_server: TestHTTPServer) -> LiveFeed:
    feed = LiveFeed(http_server)
    for n in range(3):
        feed.add_item(n)
    return feed
