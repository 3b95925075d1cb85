"""The API against a migrated database: a SQLite file, or a fresh Postgres schema.

``client`` is FastAPI's TestClient on ``create_app`` (the fine-grained matrix);
``tests/api/test_server.py`` runs ``podmill serve`` as a real process. Postgres runs
against ``PODMILL_TEST_POSTGRES_URL`` (default: the local ``test`` database), each test
in its own schema, dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from podmill.platform import Platform
from podmill.settings import Settings

from support.api import Caller, LiveFeed, make_caller, make_settings
from support.httpserver import TestHTTPServer

pytest.importorskip("fastapi", reason="pip install 'podmill[server]'")

from fastapi.testclient import TestClient

from podmill.api.app import create_app


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
