"""The weekly digest of ``podmill serve``: one stored digest per tenant per week.

Each week ends at ``server.digest_weekday`` ``server.digest_hour``:00 UTC; the pass run
by the server's background loop (``api/background.py``) looks for tenants that have no
digest for the week that ended last and makes theirs, over the episodes they are
entitled to (:func:`podmill.platform.visible_episodes`). The row is inserted with ON
CONFLICT DO NOTHING on (tenant, kind, period start): several server processes may run
the pass at the same moment, and each week is still stored once. The clock is
injected, so tests move time instead of waiting for Monday.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select

from podmill.digest.build import DigestOptions
from podmill.digest.service import make_digest
from podmill.digest.stories import DEFAULT_THRESHOLD
from podmill.digest.window import Window
from podmill.engine.clock import Clock, SystemClock
from podmill.errors import MissingExtraError
from podmill.platform import Platform, Tenant, visible_episodes
from podmill.storage.db import dialect_insert
from podmill.storage.models import DigestRow, TenantRow

log = logging.getLogger(__name__)

DIGESTS = DigestRow.__table__
TENANTS = TenantRow.__table__
WEEKLY = "weekly"


def week_ending(now: datetime, weekday: int, hour: int) -> Window:
    """The week that ended at the latest ``weekday`` ``hour``:00 UTC at or before ``now``."""
    boundary = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    boundary -= timedelta(days=(boundary.weekday() - weekday) % 7)
    if boundary > now:
        boundary -= timedelta(days=7)
    return Window(boundary - timedelta(days=7), boundary)


def tenant_digest(
    service: Platform,
    tenant: Tenant,
    window: Window,
    now: datetime,
    *,
    budget_seconds: float | None,
    feeds: tuple[str, ...] = (),
    threshold: float | None = None,
) -> dict[str, Any]:
    """The digest of ``window`` over the episodes ``tenant`` is entitled to."""
    options = DigestOptions(
        budget_seconds=budget_seconds,
        tenant=tenant.name,
        threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
    )
    return make_digest(
        service.reader,
        window,
        service.artifact_dir,
        now,
        options=options,
        feeds=feeds,
        visible=visible_episodes(tenant),
        prefix="",
    )


class WeeklyDigests:
    """Stores the digest of the week that ended last for every tenant that lacks it."""

    RETRY_SECONDS = 600.0  # a tenant whose digest failed is tried again this much later

    def __init__(self, service: Platform, clock: Clock | None = None) -> None:
        self.service = service
        self.clock = clock or SystemClock()
        self._failed: dict[tuple[int, datetime], datetime] = {}  # (tenant, week) -> retry at
        self._off: str | None = None  # why the schedule cannot run in this process

    def store_due(self) -> int:
        """One pass: the number of digests stored (0 when every tenant has this week's)."""
        server = self.service.settings.server
        if not server.digest_weekly or self._off:
            return 0
        now = self.clock.now()
        window = week_ending(now, server.digest_weekday, server.digest_hour)
        budget = server.digest_budget_minutes * 60 or None
        stored = 0
        for tenant in self._due(window):
            retry_at = self._failed.get((tenant.id, window.since))
            if retry_at is not None and now < retry_at:
                continue
            try:
                document = tenant_digest(self.service, tenant, window, now, budget_seconds=budget)
            except MissingExtraError as exc:  # no embedder here: say so once, not every pass
                self._off = str(exc)
                log.error("weekly digests are off in this process: %s", exc)
                return stored
            except Exception:  # one tenant's broken artifact must not stop the others
                log.exception("weekly digest for tenant %s failed; retrying later", tenant.name)
                self._failed[(tenant.id, window.since)] = now + timedelta(
                    seconds=self.RETRY_SECONDS
                )
                continue
            if self._insert(tenant, window, document):
                stored += 1
                log.info(
                    "weekly digest for tenant %s (%s to %s): %d episodes, %d stories",
                    tenant.name, window.since.date(), window.until.date(),
                    document["stats"]["episodes"], document["stats"]["stories"],
                )  # fmt: skip
        return stored

    def _due(self, window: Window) -> list[Tenant]:
        have = and_(
            DIGESTS.c.tenant_id == TENANTS.c.id,
            DIGESTS.c.kind == WEEKLY,
            DIGESTS.c.period_start == window.since,
        )
        query = (
            select(TENANTS.c.id, TENANTS.c.name, TENANTS.c.is_admin)
            .where(~select(DIGESTS.c.id).where(have).exists())
            .order_by(TENANTS.c.id)
        )
        with self.service.reader.connect() as conn:
            return [Tenant(r.id, r.name, r.is_admin) for r in conn.execute(query).all()]

    def _insert(self, tenant: Tenant, window: Window, document: dict[str, Any]) -> bool:
        stmt = (
            dialect_insert(self.service.dialect, DIGESTS)
            .values(
                tenant_id=tenant.id,
                kind=WEEKLY,
                period_start=window.since,
                period_end=window.until,
                schema_version=document["schema"],
                episodes=document["stats"]["episodes"],
                stories=document["stats"]["stories"],
                document=document,
                created_at=self.clock.now(),
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "kind", "period_start"])
            .returning(DIGESTS.c.id)
        )
        with self.service.engine.begin() as conn:
            return conn.execute(stmt).first() is not None


def list_digests(service: Platform, tenant: Tenant, limit: int) -> list[dict[str, Any]]:
    """The tenant's stored digests, newest period first (without their documents)."""
    query = (
        select(
            DIGESTS.c.id,
            DIGESTS.c.kind,
            DIGESTS.c.period_start,
            DIGESTS.c.period_end,
            DIGESTS.c.created_at,
            DIGESTS.c.schema_version,
            DIGESTS.c.episodes,
            DIGESTS.c.stories,
        )
        .where(DIGESTS.c.tenant_id == tenant.id)
        .order_by(DIGESTS.c.period_start.desc(), DIGESTS.c.id.desc())
        .limit(limit)
    )
    with service.reader.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query).all()]


def stored_digest(service: Platform, tenant: Tenant, digest_id: int) -> dict[str, Any] | None:
    """Stored digest ``digest_id`` if it is ``tenant``'s, else ``None``."""
    query = select(DIGESTS.c.document).where(
        DIGESTS.c.id == digest_id, DIGESTS.c.tenant_id == tenant.id
    )
    with service.reader.connect() as conn:
        return conn.execute(query).scalar()
