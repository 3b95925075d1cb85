"""Real ``podmill worker`` processes against SQLite files and the local Postgres server.

Workers run with ``PODMILL_TEST_NOOP_STAGES=1`` (no models load) and append every stage
they finish to a run log (``PODMILL_TEST_RUN_LOG``), so tests count real executions as
well as rows. Postgres tests get a fresh schema each, dropped afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, make_url

from podmill.engine.store import Store
from podmill.storage import db as storage_db

from support.workers import EngineDB, Workers


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "pg_restart: restarts the shared Postgres server (deselect with -m 'not pg_restart' "
        "while other suites use it)",
    )


PG_URL = os.environ.get(
    "PODMILL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


# ------------------------------------------------------------------------ databases


def _postgres_admin() -> Engine:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed: pip install 'psycopg[binary]>=3.1'")
    # pre_ping: the restart test drops every connection, teardown must still work.
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with engine.connect():
            pass
    except Exception as exc:
        engine.dispose()
        pytest.skip(f"Postgres unreachable at {PG_URL}: {str(exc).splitlines()[0]}")
    return engine


@pytest.fixture
def postgres_schemas() -> Iterator[Callable[[], str]]:
    """Makes URLs whose ``search_path`` is a new, empty schema (one per call, as a second
    database would be), each dropped after the test."""
    admin = _postgres_admin()
    schemas: list[str] = []

    def new_url() -> str:
        schema = f"podmill_proc_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        schemas.append(schema)
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    try:
        yield new_url
    finally:
        for schema in schemas:
            _drop_schema(admin, schema)
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_schemas: Callable[[], str]) -> str:
    """A URL whose ``search_path`` is a new, empty schema, dropped after the test."""
    return postgres_schemas()


def _drop_schema(admin: Engine, schema: str) -> None:
    deadline = time.monotonic() + 30
    while True:  # the server may still be coming back from a restart test
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'engine.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine_db(db_url: str, tmp_path: Path) -> Iterator[EngineDB]:
    storage_db.upgrade(db_url)
    store = Store(db_url)
    handle = EngineDB(db_url, tmp_path / "data", tmp_path / "runs.log", store)
    try:
        yield handle
    finally:
        handle.engine.dispose()
        store.engine.dispose()


@pytest.fixture
def workers(
    engine_db: EngineDB, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Workers]:
    pool = Workers(engine_db, tmp_path)
    try:
        yield pool
    finally:
        pool.close()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(pool.logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
