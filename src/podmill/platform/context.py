"""What every part of the platform shares: the settings, the database (one
:class:`~podmill.engine.store.Store`, its engine and a reader) and the artifact files."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from podmill.engine.store import Store
from podmill.engine.submit import JobSpec
from podmill.settings import Settings
from podmill.storage.artifacts import ArtifactStore
from podmill.storage.db import DEFERRED, dialect_insert


class Context:
    """Made once by :class:`~podmill.platform.Platform`; every part holds the same one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.database_url
        self.store = Store(self.url, retry_delay_scale=settings.pipeline.retry_delay_scale)
        self.engine = self.store.engine  # SQLite: every write transaction BEGIN IMMEDIATE
        self.reader = self.engine.execution_options(**{DEFERRED: True})
        self.artifacts = ArtifactStore(settings.data_dir)
        self.dialect = self.store.dialect

    def close(self) -> None:
        self.store.close()

    @cached_property
    def job_spec(self) -> JobSpec:
        """What the jobs this server submits carry (built on first use: the fingerprint
        reads the model packages' identities)."""
        return JobSpec.of(self.settings)

    @property
    def fingerprint(self) -> str:
        """The fingerprint of jobs this server submits."""
        return self.job_spec.fingerprint

    def insert(self, table: Any) -> Any:
        """The dialect's INSERT into ``table`` (with ``on_conflict_do_*``)."""
        return dialect_insert(self.dialect, table)


class Part:
    """A part of the platform (tenants, requests, catalog, episodes): what it shares
    comes from one :class:`Context`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.store = ctx.store
        self.engine = ctx.engine
        self.reader = ctx.reader
        self.artifacts = ctx.artifacts

    @property
    def job_spec(self) -> JobSpec:
        """What the jobs this server submits carry (built on first use)."""
        return self.ctx.job_spec

    @property
    def fingerprint(self) -> str:
        """The fingerprint of jobs this server submits."""
        return self.ctx.fingerprint
