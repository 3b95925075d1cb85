"""Engines, sessions and schema migrations for SQLite (embedded) and Postgres (distributed).

``upgrade(url)`` is what ``podmill db upgrade`` runs; it needs no ``alembic.ini``: the
Alembic configuration is built here and points at the migrations shipped in the package.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from podmill.errors import PodmillError, first_line, missing_extra

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000
# Arbitrary constant: concurrent `podmill db upgrade` runs on Postgres queue on it.
_PG_MIGRATION_LOCK = 0x706F646D  # "podm"


class DatabaseError(PodmillError):
    """The database could not be reached or migrated."""


class DatabaseGoneError(DatabaseError):
    """The SQLite file was deleted or replaced while a connection had it open."""


# A database that cannot be reached (down, restarting, refused, locked): the errors
# callers retry, answer 503 for, or turn into one line with database_errors().
DATABASE_ERRORS = (OperationalError, InterfaceError)

# Execution option: on an engine made with ``immediate=True``, a connection carrying it
# starts its SQLite transaction with a plain (deferred) BEGIN, for reads.
DEFERRED = "podmill_sqlite_deferred"


def make_engine(url: str, *, immediate: bool = False, pre_ping: bool = True) -> Engine:
    """Engine for ``url``; for SQLite, creates the file's directory and sets the pragmas.

    SQLite connections get ``journal_mode=WAL`` (readers never block the writer),
    ``foreign_keys=ON`` and ``busy_timeout=5000`` (wait for the write lock, not fail).

    ``immediate=True`` (SQLite only; ignored for Postgres): every transaction takes the
    write lock at its start with ``BEGIN IMMEDIATE``, so a read-then-write transaction
    cannot fail halfway on a lock another writer took after its read. Connections with
    the execution option :data:`DEFERRED` set begin with a plain ``BEGIN`` instead.

    ``pre_ping=False`` (Postgres) skips the liveness round trip on every checkout: for
    callers that retry on a dropped connection themselves (the engine's store, whose
    workers retry every transaction; SQLAlchemy discards the dead connections).
    """
    engine = _engine(url, foreign_keys=True, pre_ping=pre_ping)
    if immediate and engine.dialect.name == "sqlite":
        _begin_immediate(engine)
    return engine


def _begin_immediate(engine: Engine) -> None:
    # The pysqlite recipe: stop the driver from issuing its own (late) BEGIN, and emit ours.
    @event.listens_for(engine, "connect")
    def _no_driver_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        deferred = conn.get_execution_options().get(DEFERRED, False)
        conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """Alembic configuration for ``url``, for ``command.*`` calls (e.g. ``revision``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not an ini option: ConfigParser would mangle '%' in URLs.
    config.attributes["url"] = url
    return config


def head_revision() -> str:
    """The newest migration shipped with this version of podmill."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None, "no migrations found"
    return head


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is on, ``None`` if it was never migrated."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None and not path.exists():  # asking must not create the file
            return None
    engine = _engine(url, foreign_keys=True, poolclass=NullPool)
    try:
        with database_errors(url), engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (default: the newest).

    Safe to run again (a database at head is left alone) and concurrently: migrations
    run in one transaction, serialised by SQLite's write lock or a Postgres advisory lock.
    """
    _migrate(url, lambda config: command.upgrade(config, revision))


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``"base"`` drops every table)."""
    _migrate(url, lambda config: command.downgrade(config, revision))


def _migrate(url: str, run: Callable[[Config], None]) -> None:
    config = alembic_config(url)
    with migration_connection(url) as conn:
        config.attributes["connection"] = conn
        try:
            run(config)
        except CommandError as exc:
            hint = ""
            if "Can't locate revision" in str(exc):
                hint = " (the database was migrated by a newer podmill; upgrade podmill)"
            raise DatabaseError(f"cannot migrate {display_url(url)}: {exc}{hint}") from exc


@contextmanager
def migration_connection(url: str) -> Iterator[Connection]:
    """A connection inside one transaction that holds the migration lock; commits on exit.

    Used by :func:`upgrade` and by ``migrations/env.py`` when Alembic runs on its own.
    """
    # SQLite: foreign keys off while migrating, because batch mode rebuilds tables and
    # DROP TABLE on a parent would cascade-delete its children; checked before commit.
    engine = _engine(url, foreign_keys=False, poolclass=NullPool)
    try:
        with database_errors(url):
            conn = engine.connect()
        with conn:
            with database_errors(url):
                _take_migration_lock(conn)
            yield conn
            if conn.dialect.name == "sqlite":
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise DatabaseError(f"migration left dangling foreign keys: {broken[:5]}")
            conn.commit()
    finally:
        engine.dispose()


def _take_migration_lock(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        # pysqlite would only BEGIN before DML; take the write lock now so the DDL is
        # atomic and a second migrator waits (busy_timeout) for us.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})


def _missing_driver(url: URL, exc: ImportError) -> PodmillError:
    """A database URL whose driver is not installed, as one line to act on."""
    shown = display_url(url)
    missing = missing_extra(exc, f"the database {shown}")
    if missing is not None:
        return missing
    return DatabaseError(
        f"database {shown}: its driver {exc.name or url.drivername!r} is not installed; "
        "podmill uses sqlite:///FILE or postgresql+psycopg://USER@HOST/DB "
        "(pip install 'podmill[postgres]')"
    )


def _engine(
    url: str, *, foreign_keys: bool, poolclass: Any = None, pre_ping: bool = True
) -> Engine:
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if poolclass is not None:
        kwargs["poolclass"] = poolclass
    if parsed.get_backend_name() != "sqlite":
        try:  # SQLAlchemy imports the driver here
            return create_engine(parsed, pool_pre_ping=pre_ping, **kwargs)
        except ImportError as exc:
            raise _missing_driver(parsed, exc) from exc

    _create_sqlite_parent(parsed)
    engine = create_engine(parsed, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.close()

    path = _sqlite_file(parsed)
    if path is not None:
        _refuse_commits_to_a_lost_file(engine, path.absolute())
    return engine


def _refuse_commits_to_a_lost_file(engine: Engine, path: Path) -> None:
    """Fail every commit once the database file a connection opened is no longer at
    ``path`` (deleted, or replaced by another file).

    SQLite keeps writing into an unlinked file it still has open: without this check a
    run whose database was deleted would record its work nowhere and report it done.
    One ``stat`` per commit.
    """

    @event.listens_for(engine, "connect")
    def _remember_file(_dbapi_connection: Any, record: Any) -> None:
        record.info["podmill_sqlite_file"] = _file_identity(path)

    @event.listens_for(engine, "commit")
    def _same_file(conn: Connection) -> None:
        opened = conn.connection.info.get("podmill_sqlite_file")
        if opened is not None and _file_identity(path) != opened:
            raise DatabaseGoneError(
                f"database file {path} was deleted or replaced while podmill was using it; "
                "nothing since was saved: run again (a new database is made and finished "
                "artifacts are reused) or restore the file first"
            )


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino)


def _enable_wal(cursor: Any) -> None:
    # WAL is stored in the file, so this only switches a new database. Two connections
    # switching at once would deadlock, so SQLite fails one at once instead of waiting
    # out busy_timeout; that one retries here until the other has finished.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL; ``None`` for in-memory and ``file:`` URI databases."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _create_sqlite_parent(url: URL) -> None:
    path = _sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn a lost or refused database connection (:data:`DATABASE_ERRORS`) into one
    :class:`DatabaseError` line: the database, the driver's reason, what to check."""
    try:
        yield
    except DATABASE_ERRORS as exc:
        if make_url(url).get_backend_name() == "sqlite":
            hint = "check the path and its permissions; another process may hold the lock"
        else:
            hint = "check that the server is running and the URL in --db / PODMILL_DB"
        raise DatabaseError(
            f"cannot use database {display_url(url)}: {first_line(exc)} ({hint})"
        ) from exc


def display_url(url: str | URL) -> str:
    """A database URL as messages and logs show it: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def dialect_insert(dialect: str, table: Any) -> Any:
    """The dialect's INSERT for ``table``, which has ``on_conflict_do_*`` on both
    supported databases."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"unsupported database {dialect!r}: podmill runs on SQLite or Postgres")
