"""The storage layer on real databases: SQLite files and the local Postgres server.

Postgres runs against ``PODMILL_TEST_POSTGRES_URL`` (default: the local ``test``
database); each test gets its own freshly created schema, dropped afterwards, so tests
and concurrent runs never see each other's tables.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from podmill.domain import Chapter, Episode, Person, TranscriptLink
from podmill.storage import repo
from podmill.storage.artifacts import ArtifactStore
from podmill.storage.db import (
    DatabaseError,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    session_factory,
    upgrade,
)
from podmill.storage.models import ArtifactRow, Base, StepRow, is_modelled

TABLES = {"feeds", "episodes", "jobs", "steps", "artifacts"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Not migrated (these tests migrate); SQLite in a directory that does not exist yet.
    ``postgres_url`` is tests/conftest.py's."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nested' / 'dir' / 'podmill.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


def _episode(**overrides: object) -> Episode:
    fields: dict[str, object] = {
        "episode_key": "k" * 32,
        "title": "Episode one",
        "audio_url": "https://example.org/one.mp3",
        "guid": "guid-1",
        "published": datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))),
        "description": "About things — ünïcode",
        "transcripts": [TranscriptLink("https://example.org/one.vtt", "text/vtt", "en")],
        "chapters": [Chapter(0.0, "Intro"), Chapter(60.5, "Main", "https://example.org")],
        "persons": [Person("Ada", role="host")],
    }
    fields.update(overrides)
    return Episode(**fields)  # type: ignore[arg-type]


# --- migrations ---------------------------------------------------------------------


def test_upgrade_twice_is_idempotent_and_reaches_head(db_url: str) -> None:
    assert current_revision(db_url) is None

    upgrade(db_url)
    upgrade(db_url)

    assert current_revision(db_url) == head_revision()
    engine = make_engine(db_url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_models_match_the_migrated_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        # the database-owned keyword index of search_docs has no model (migration 0006)
        opts = {"compare_type": True, "include_name": is_modelled}
        context = MigrationContext.configure(conn, opts=opts)
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_to_base_and_back(db_url: str) -> None:
    upgrade(db_url)
    downgrade(db_url, "base")

    assert current_revision(db_url) is None
    engine = make_engine(db_url)
    try:
        assert not TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()


def test_concurrent_upgrades_both_succeed(db_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        barrier.wait()
        try:
            upgrade(db_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert current_revision(db_url) == head_revision()


def test_unreachable_postgres_is_one_clear_error() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(DatabaseError, match=r"cannot use database .*127\.0\.0\.1:1"):
        upgrade("postgresql+psycopg://postgres:secret@127.0.0.1:1/nowhere")
    with pytest.raises(DatabaseError) as info:
        current_revision("postgresql+psycopg://postgres:secret@127.0.0.1:1/nowhere")
    assert "secret" not in str(info.value)


def test_database_from_a_newer_podmill_is_one_clear_error(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(DatabaseError, match=r"'9999'.*newer podmill"):
        upgrade(db_url)


def test_current_revision_does_not_create_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "podmill.db"
    assert current_revision(f"sqlite:///{path}") is None
    assert not path.parent.exists()


def test_sqlite_engine_creates_directory_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "podmill.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert path.is_file()
    finally:
        engine.dispose()


# --- repo functions -------------------------------------------------------------------


def test_feed_and_episode_round_trip(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        feed_id = repo.upsert_feed(
            s, feed_key="f" * 32, url="https://example.org/feed", title="Show", podcast_guid="g"
        )
        episode_id = repo.upsert_episode(s, _episode(), feed_id=feed_id)
    with sessions.begin() as s:
        # A later fetch without title/guid keeps them; the URL follows the feed.
        again = repo.upsert_feed(
            s, feed_key="f" * 32, url="https://example.org/new", title=None, podcast_guid=None
        )
        repo.update_episode_media(s, "k" * 32, duration_seconds=123.5, audio_sha256="a" * 64)
        assert repo.upsert_episode(s, _episode(title="Renamed"), feed_id=None) == episode_id
    assert again == feed_id

    with sessions() as s:
        row = repo.episode_row(s, "k" * 32)
        feed = s.execute(text("SELECT url, title, podcast_guid FROM feeds")).one()
    assert tuple(feed) == ("https://example.org/new", "Show", "g")
    assert row is not None
    assert row["id"] == episode_id
    assert row["feed_id"] == feed_id
    assert row["title"] == "Renamed"
    assert row["published_at"] == datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    assert row["published_at"].tzinfo == UTC
    assert row["created_at"].tzinfo == UTC
    assert row["duration_seconds"] == 123.5  # media facts survive a re-upsert
    assert row["audio_sha256"] == "a" * 64
    meta = row["metadata_json"]
    assert meta["description"] == "About things — ünïcode"
    assert meta["transcripts"][0]["url"] == "https://example.org/one.vtt"
    assert [c["title"] for c in meta["chapters"]] == ["Intro", "Main"]
    assert meta["persons"] == [
        {"name": "Ada", "role": "host", "group": None, "href": None, "img": None}
    ]
    with sessions() as s:
        assert repo.episode_row(s, "missing") is None
        with pytest.raises(LookupError):
            repo.update_episode_media(s, "missing", duration_seconds=1.0, audio_sha256=None)


def test_deleting_a_job_deletes_its_steps(db_url: str, sessions: sessionmaker[Session]) -> None:
    from podmill.engine.store import Store
    from podmill.pipeline.dag import STAGE_NAMES

    with Store(db_url) as store:
        job_id, _ = store.submit("k" * 32, "p" * 32, {})
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(StepRow)) == len(STAGE_NAMES)
    with sessions.begin() as s:
        s.execute(text("DELETE FROM jobs WHERE id = :id"), {"id": job_id})
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(StepRow)) == 0


def test_record_artifact_upserts_per_kind(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "data")
    first = store.write_json("k" * 32, "p" * 32, "topics.json", {"v": 1})
    second = store.write_json("k" * 32, "p" * 32, "topics.json", {"v": 2})
    with sessions.begin() as s:
        repo.record_artifact(s, "k" * 32, "p" * 32, first, "topics")
        repo.record_artifact(
            s,
            "k" * 32,
            "p" * 32,
            store.write_text("k" * 32, "p" * 32, "summary.md", "#"),
            "summary_md",
        )
    with sessions.begin() as s:
        repo.record_artifact(s, "k" * 32, "p" * 32, second, "topics")

    with sessions() as s:
        rows = {r.kind: r for r in s.scalars(select(ArtifactRow))}
    assert set(rows) == {"topics", "summary_md"}
    assert rows["topics"].sha256 == second.sha256 != first.sha256
    assert rows["topics"].path == f"episodes/{'k' * 32}/{'p' * 32}/topics.json"
    assert rows["topics"].size_bytes == second.size
    assert rows["topics"].created_at.tzinfo == UTC
