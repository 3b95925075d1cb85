"""Fixtures for the stress harness tests (the stack: stress_stack.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from stress_stack import Stack

from podmill.engine.store import Store
from podmill.platform import Platform
from podmill.settings import Settings
from podmill.storage.db import upgrade

from support.api import start_server
from support.workers import EngineDB, Workers


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One API process per test module (starting one is the slow part); each test
    starts the workers it needs and :func:`stack` stops them after it."""
    tmp_path = tmp_path_factory.mktemp("stress")
    url = f"sqlite:///{tmp_path / 'podmill.db'}"
    upgrade(url)
    data_dir = tmp_path / "data"
    service = Platform(Settings(db=url, data_dir=data_dir))
    try:
        service.create_tenant("ops", admin=True)
        key = service.create_key("ops")[1]
    finally:
        service.close()
    server = start_server(url, data_dir, tmp_path / "server.log")
    store = Store(url)
    db = EngineDB(url, data_dir, tmp_path / "runs.log", store)
    workers = Workers(db, tmp_path)
    try:
        yield Stack(server, db, workers, url, key, tmp_path)
    finally:
        workers.close()
        server.stop()
        db.engine.dispose()
        store.close()


@pytest.fixture
def stack(served: Stack, tmp_path: Path) -> Iterator[Stack]:
    """The module's API with no worker running; this test's workers are stopped with
    SIGTERM afterwards, so they deregister (ab refuses to run beside live workers)."""
    served.tmp_path = served.workers.tmp_path = tmp_path
    try:
        yield served
    finally:
        served.stop_workers()
