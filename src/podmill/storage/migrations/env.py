"""Alembic environment for podmill.

Programmatic runs (:func:`podmill.storage.db.upgrade`) hand over a connection that is
already inside the migration transaction. A bare ``alembic`` run (e.g. ``command.revision``
with :func:`podmill.storage.db.alembic_config`) gets its URL from the config instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from podmill.storage.db import migration_connection
from podmill.storage.models import Base, is_modelled

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: use podmill.storage.db.alembic_config(url)")
    return url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=is_modelled,  # the search keyword index has no model (0006)
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=_url().startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    with migration_connection(_url()) as connection:
        _run(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
