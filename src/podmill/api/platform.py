"""What the API and the poller do to the database: tenants, keys, job requests, the
catalog, subscriptions and entitlements. No HTTP here; ``podmill.api.routes`` maps these
to routes and :class:`Problem` to JSON errors.

Process once, serve many: a job is one ``(episode_key, fingerprint)`` (the engine's
``Store.submit`` is idempotent on it); a tenant asking for it adds a ``job_requests`` row.
A tenant sees the jobs it requested and the episodes of its subscriptions and jobs.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from podmill.domain import Episode
from podmill.engine.store import Store
from podmill.engine.submit import JobSpec, submit_episode
from podmill.errors import PodmillError
from podmill.feeds.deadline import Deadline
from podmill.feeds.download import FeedFetch, fetch_feed
from podmill.feeds.identity import fetch_url_identity, normalize_url
from podmill.feeds.parse import ParsedFeed, parse_feed
from podmill.settings import Settings
from podmill.storage import repo
from podmill.storage.artifacts import TRANSCRIPTS, Artifact, ArtifactStore
from podmill.storage.db import DEFERRED, dialect_insert
from podmill.storage.models import (
    ApiKeyRow,
    EpisodeRow,
    FeedItemRow,
    FeedPollRow,
    FeedRow,
    JobRequestRow,
    JobRow,
    SubscriptionRow,
    TenantRow,
    utcnow,
)

TENANTS = TenantRow.__table__
KEYS = ApiKeyRow.__table__
REQUESTS = JobRequestRow.__table__
SUBSCRIPTIONS = SubscriptionRow.__table__
POLLS = FeedPollRow.__table__
ITEMS = FeedItemRow.__table__
FEEDS = FeedRow.__table__
EPISODES = EpisodeRow.__table__
JOBS = JobRow.__table__

KEY_PREFIX = "pm_"


class Problem(PodmillError):
    """A request that cannot be served, with the HTTP status that says why."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def not_found(what: str) -> Problem:
    return Problem(404, "not_found", what)


@dataclass(frozen=True)
class Tenant:
    id: int
    name: str
    is_admin: bool


def visible_episodes(tenant: Tenant) -> Any:
    """The entitlement rule, as a condition on ``episodes``: the episodes of the
    tenant's subscriptions, and of the jobs it requested (search filters with it too)."""
    subscribed = select(SUBSCRIPTIONS.c.feed_id).where(SUBSCRIPTIONS.c.tenant_id == tenant.id)
    requested = (
        select(JOBS.c.episode_key)
        .join(REQUESTS, REQUESTS.c.job_id == JOBS.c.id)
        .where(REQUESTS.c.tenant_id == tenant.id)
    )
    return or_(EPISODES.c.feed_id.in_(subscribed), EPISODES.c.episode_key.in_(requested))


def hash_key(key: str) -> str:
    """What is stored for a key: its SHA-256. Keys carry 256 random bits, so a plain
    hash is enough (no salt or slow hash: nothing to brute-force)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and the prefix shown in listings (``pm_`` + 8 characters)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[:11]


class Platform:
    """The service behind ``podmill serve``: one per process, safe to share between
    threads (a connection per call). ``settings.db`` (or the SQLite file in the data
    directory) is the database; it must be migrated (``podmill db upgrade``)."""

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

    def _insert(self, table: Any) -> Any:
        return dialect_insert(self.dialect, table)

    # ------------------------------------------------------------- tenants, keys

    def create_tenant(self, name: str, *, admin: bool = False) -> Tenant:
        name = name.strip()
        if not name or len(name) > 100:
            raise PodmillError(f"tenant name {name!r}: use 1 to 100 characters")
        with self.engine.begin() as conn:
            if conn.execute(select(TENANTS.c.id).where(TENANTS.c.name == name)).first():
                raise PodmillError(f"tenant {name!r} exists already")
            tenant_id = conn.execute(
                TENANTS.insert().values(
                    name=name,
                    is_admin=admin,
                    webhook_secret=secrets.token_hex(32),
                    created_at=utcnow(),
                )
            ).inserted_primary_key[0]
        return Tenant(tenant_id, name, admin)

    def tenant(self, name: str) -> Tenant | None:
        with self.reader.connect() as conn:
            row = conn.execute(select(TENANTS).where(TENANTS.c.name == name)).first()
        return Tenant(row.id, row.name, row.is_admin) if row else None

    def me(self, tenant: Tenant) -> dict[str, Any]:
        """The tenant's name, role and webhook signing secret."""
        with self.reader.connect() as conn:
            secret = conn.execute(
                select(TENANTS.c.webhook_secret).where(TENANTS.c.id == tenant.id)
            ).scalar_one()
        role = "admin" if tenant.is_admin else "member"
        return {"tenant": tenant.name, "role": role, "webhook_secret": secret}

    def ensure_tenant(self, name: str, *, admin: bool) -> Tenant:
        return self.tenant(name) or self.create_tenant(name, admin=admin)

    def create_key(self, tenant_name: str) -> tuple[int, str]:
        """A new key for ``tenant_name``: ``(key id, key)``. Only the hash is stored."""
        tenant = self.tenant(tenant_name)
        if tenant is None:
            raise PodmillError(
                f"no tenant {tenant_name!r}: create it with `podmill tenants create NAME`"
            )
        key, prefix = new_key()
        with self.engine.begin() as conn:
            key_id = conn.execute(
                KEYS.insert().values(
                    tenant_id=tenant.id, prefix=prefix, key_hash=hash_key(key), created_at=utcnow()
                )
            ).inserted_primary_key[0]
        return key_id, key

    def revoke_key(self, key_id: int) -> bool:
        """Revoke key ``key_id``; ``False`` if there is no such key or it was revoked."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(KEYS)
                .where(KEYS.c.id == key_id, KEYS.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return result.rowcount > 0

    def list_keys(self) -> list[dict[str, Any]]:
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(
                    KEYS.c.id,
                    TENANTS.c.name.label("tenant"),
                    KEYS.c.prefix,
                    KEYS.c.created_at,
                    KEYS.c.revoked_at,
                )
                .join(TENANTS, TENANTS.c.id == KEYS.c.tenant_id)
                .order_by(KEYS.c.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    def authenticate(self, key: str) -> Tenant | None:
        """The tenant of a live key, or ``None`` (unknown or revoked)."""
        with self.reader.connect() as conn:
            row = conn.execute(
                select(TENANTS.c.id, TENANTS.c.name, TENANTS.c.is_admin)
                .join(KEYS, KEYS.c.tenant_id == TENANTS.c.id)
                .where(KEYS.c.key_hash == hash_key(key), KEYS.c.revoked_at.is_(None))
            ).first()
        return Tenant(row.id, row.name, row.is_admin) if row else None

    # ---------------------------------------------------------------------- jobs

    def request_episode(
        self,
        tenant_ids: list[int],
        episode: Episode,
        *,
        feed_id: int | None = None,
        reply_to: str | None = None,
        correlation_id: str | None = None,
    ) -> tuple[int, bool]:
        """Submit ``episode`` (idempotent on episode key and fingerprint) on behalf of
        ``tenant_ids``: ``(job_id, created)``. A job that had failed or that everybody
        had cancelled runs again (:func:`podmill.engine.submit.submit_episode`) and
        notifies again. A new job takes ``correlation_id`` (default: a new one); an
        existing job keeps its own."""

        def attach(job_id: int) -> None:
            with self.engine.begin() as conn:
                self._add_requests(conn, job_id, tenant_ids, reply_to)

        submitted = submit_episode(
            self.store,
            self.job_spec,
            episode,
            feed_id=feed_id,
            correlation_id=correlation_id,
            attach=attach,
        )
        if submitted.revived:
            self._notify_again(submitted.job_id)
        return submitted.job_id, submitted.created

    def _add_requests(
        self, conn: Connection, job_id: int, tenant_ids: list[int], reply_to: str | None
    ) -> None:
        now = utcnow()
        # the job row's lock orders this with a concurrent cancel (Store.cancel_unless_wanted)
        conn.execute(select(JOBS.c.id).where(JOBS.c.id == job_id).with_for_update())
        for tenant_id in tenant_ids:
            stmt = self._insert(REQUESTS).values(
                tenant_id=tenant_id, job_id=job_id, created_at=now, reply_to=reply_to
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["tenant_id", "job_id"],
                    set_={
                        "cancelled_at": None,
                        "reply_to": func.coalesce(stmt.excluded.reply_to, REQUESTS.c.reply_to),
                    },
                )
            )

    def _requested(self, tenant: Tenant) -> Any:
        return select(REQUESTS.c.job_id).where(REQUESTS.c.tenant_id == tenant.id)

    def job(self, tenant: Tenant, job_id: int) -> dict[str, Any]:
        """Job ``job_id`` if ``tenant`` requested it, else 404 (never another's data)."""
        mine = select(REQUESTS.c.job_id).where(
            REQUESTS.c.tenant_id == tenant.id, REQUESTS.c.job_id == job_id
        )
        found = self.store.jobs(limit=1, job_ids=mine)
        if not found:
            raise not_found(f"no job {job_id} among this tenant's jobs (GET /jobs lists them)")
        return found[0]

    def check_reply_to(self, url: str) -> str:
        """A webhook URL podmill may call (http(s); public unless allow_private_networks)."""
        from podmill.feeds.download import check_url

        try:
            check_url(url, self.settings)
        except PodmillError as exc:
            raise Problem(422, "invalid_reply_to", f"reply_to: {exc}") from None
        return url

    def jobs(self, tenant: Tenant, status: str | None, limit: int) -> list[dict[str, Any]]:
        return self.store.jobs(status, limit=limit, job_ids=self._requested(tenant))

    def episode_for_submission(self, tenant: Tenant, url: str) -> tuple[Episode, int | None]:
        """The episode ``POST /jobs {"url": …}`` asks for, and its feed id: an episode
        ``tenant`` may see whose enclosure is ``url``, else the audio at ``url`` as a
        bare audio URL (another tenant's episode with that enclosure stays theirs). A
        feed, a page that is not audio, or a URL that cannot be fetched is a 422."""
        from podmill.feeds.sources import resolve

        if not url.startswith(("http://", "https://")):
            raise Problem(422, "invalid_url", f"url {url!r} must be an http(s):// audio URL")
        found = self.episode_for_url(tenant, url)
        if found is not None:
            return found
        try:
            resolved = resolve(url, self.settings)
        except PodmillError as exc:
            raise Problem(422, "invalid_url", f"cannot use {url}: {exc}") from None
        if resolved.feed is not None:
            raise Problem(
                422,
                "invalid_url",
                f"{url} is a feed ({len(resolved.feed.episodes)} "
                "episodes), not audio: subscribe with POST /subscriptions, or give one "
                "item's audio URL",
            )
        return resolved.episodes[0], None

    def episode_for_url(self, tenant: Tenant, url: str) -> tuple[Episode, int | None] | None:
        """The episode ``tenant`` may see whose enclosure is ``url`` (a feed item's
        audio). Knowing an enclosure URL is no entitlement: others' rows are not found."""
        with self.reader.connect() as conn:
            row = conn.execute(
                select(EPISODES, FEEDS.c.feed_key, FEEDS.c.title.label("feed_title"))
                .outerjoin(FEEDS, FEEDS.c.id == EPISODES.c.feed_id)
                .where(EPISODES.c.audio_url == url, self._visible(tenant))
                .order_by(EPISODES.c.id)
                .limit(1)
            ).first()
        return (_episode_from_row(row), row.feed_id) if row else None

    def episode_by_key(self, tenant: Tenant, key: str) -> tuple[Episode, int | None]:
        with self.reader.connect() as conn:
            row = conn.execute(
                select(EPISODES, FEEDS.c.feed_key, FEEDS.c.title.label("feed_title"))
                .outerjoin(FEEDS, FEEDS.c.id == EPISODES.c.feed_id)
                .where(EPISODES.c.episode_key == key, self._visible(tenant))
            ).first()
        if row is None:
            raise not_found(f"no episode {key!r} among this tenant's episodes")
        return _episode_from_row(row), row.feed_id

    def cancel(self, tenant: Tenant, job_id: int) -> dict[str, Any]:
        """Withdraw ``tenant``'s request; the job itself is cancelled once no tenant
        wants it any more (another tenant's request keeps it running)."""
        job = self.job(tenant, job_id)
        if job["status"] in ("done", "cancelled"):
            raise Problem(409, "conflict", f"job {job_id} is {job['status']}: nothing to cancel")

        def still_wanted(conn: Connection) -> bool:
            # one transaction with the cancel, the job row locked (Store): a request
            # added meanwhile is either counted here or revives the cancelled job
            conn.execute(
                update(REQUESTS)
                .where(REQUESTS.c.tenant_id == tenant.id, REQUESTS.c.job_id == job_id)
                .values(cancelled_at=utcnow())
            )
            live = conn.execute(
                select(func.count())
                .select_from(REQUESTS)
                .where(REQUESTS.c.job_id == job_id, REQUESTS.c.cancelled_at.is_(None))
            ).scalar_one()
            return live > 0

        # the operator's `podmill submit` holds a job too (jobs.held_by_operator)
        self.store.cancel_unless_wanted(job_id, still_wanted)
        return self.job(tenant, job_id)

    def retry(self, tenant: Tenant, job_id: int) -> dict[str, Any]:
        self.job(tenant, job_id)
        with self.engine.begin() as conn:
            self._add_requests(conn, job_id, [tenant.id], None)
        if self.store.retry_job(job_id) == 0:
            raise Problem(
                409, "conflict", f"job {job_id} has no failed, dead or cancelled steps to retry"
            )
        self._notify_again(job_id)
        return self.job(tenant, job_id)

    def _notify_again(self, job_id: int) -> None:
        """The job will finish again: its ``reply_to`` webhooks are due again then."""
        with self.engine.begin() as conn:
            conn.execute(
                update(REQUESTS)
                .where(REQUESTS.c.job_id == job_id, REQUESTS.c.reply_to.is_not(None))
                .values(replied_at=None, reply_attempts=0, reply_next_at=None, reply_error=None)
            )

    # ------------------------------------------------------------------ episodes

    def _visible(self, tenant: Tenant) -> Any:
        return visible_episodes(tenant)

    def episodes(
        self,
        tenant: Tenant,
        *,
        feed_id: int | None,
        since: datetime | None,
        status: str | None,
        limit: int,
        offset: int,
    ) -> list[dict[str, Any]]:
        """The tenant's episodes, newest first, with the status of this server's job."""
        job = JOBS.alias("job")
        ours = and_(
            job.c.episode_key == EPISODES.c.episode_key, job.c.fingerprint == self.fingerprint
        )
        newest_first = (EPISODES.c.published_at.desc().nulls_last(), EPISODES.c.id.desc())
        # The page is chosen first and only its rows are joined to their jobs, so the
        # cost does not grow with the number of episodes a tenant can see.
        page = select(EPISODES.c.id).where(self._visible(tenant))
        if feed_id is not None:
            page = page.where(EPISODES.c.feed_id == feed_id)
        if since is not None:
            page = page.where(EPISODES.c.published_at >= since)
        if status == "new":
            page = page.where(~exists().where(ours))
        elif status is not None:
            page = page.join(job, ours).where(job.c.status == status)
        chosen = page.order_by(*newest_first).limit(limit).offset(offset).subquery()
        query = (
            select(
                EPISODES.c.episode_key,
                EPISODES.c.title,
                EPISODES.c.feed_id,
                EPISODES.c.audio_url,
                EPISODES.c.published_at,
                EPISODES.c.duration_seconds,
                job.c.id.label("job_id"),
                func.coalesce(job.c.status, "new").label("status"),
            )
            .join(chosen, chosen.c.id == EPISODES.c.id)
            .outerjoin(job, ours)
            .order_by(*newest_first)
        )
        with self.reader.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query).all()]

    def episode(self, tenant: Tenant, key: str) -> dict[str, Any]:
        with self.reader.connect() as conn:
            row = conn.execute(
                select(EPISODES).where(EPISODES.c.episode_key == key, self._visible(tenant))
            ).first()
            if row is None:
                raise not_found(f"no episode {key!r} among this tenant's episodes")
            jobs = conn.execute(
                select(JOBS.c.id, JOBS.c.fingerprint, JOBS.c.status)
                .where(JOBS.c.episode_key == key)
                .order_by(JOBS.c.id.desc())
            ).all()
        episode = {c: getattr(row, c) for c in row._fields if c not in ("id",)}
        current = next((j for j in jobs if j.fingerprint == self.fingerprint), None)
        folder = self._artifact_dir(key)
        tree = None
        if folder is not None:
            # checked: a damaged file is a 409 and a re-run (api/errors.py), never a 500
            tree = self.artifacts.read_json(key, folder.name, Artifact.TOPICS)
        episode.update(
            job_id=current.id if current else None,
            status=current.status if current else "new",
            fingerprint=folder.name if folder else None,
            topics=tree,
            transcript_formats=[
                f for f, name in TRANSCRIPTS.items() if folder and (folder / name).is_file()
            ],
        )
        return episode

    def transcript(self, tenant: Tenant, key: str, fmt: str) -> Path:
        self.episode_by_key(tenant, key)  # 404 unless visible
        name = TRANSCRIPTS[fmt]
        folder = self._artifact_dir(key, name)
        if folder is None:
            raise not_found(
                f"episode {key} has no transcript yet: GET /episodes/{key} shows its job status"
            )
        self.artifacts.read_checked(key, folder.name, name)  # 409 if damaged
        return folder / name

    def _artifact_dir(self, key: str, name: str = Artifact.TOPICS) -> Path | None:
        """The finished artifact set of ``key`` that has ``name``: this server's, else the
        one published last (:meth:`ArtifactStore.newest_finished`)."""
        fingerprint = self.artifacts.newest_finished(key, prefer=self.fingerprint, having=name)
        return None if fingerprint is None else self.artifacts.episode_dir(key, fingerprint)

    # ------------------------------------------------------------------- catalog

    def fetch_and_parse(self, url: str) -> tuple[ParsedFeed, FeedFetch]:
        """Validate a feed URL: fetch (SSRF-guarded) and parse, or 422 with the reason.
        The fetch ends after ``server.validation_timeout_seconds``, every try included:
        a request is waiting for it."""
        if not url.startswith(("http://", "https://")):
            raise Problem(422, "invalid_feed", f"feed URL {url!r} must start with http(s)://")
        deadline = Deadline(
            self.settings.server.validation_timeout_seconds, "server.validation_timeout_seconds"
        )
        try:
            fetched = fetch_feed(url, self.settings, deadline=deadline)
            assert fetched.body is not None
            parsed = parse_feed(fetched.body, fetched.final_url, limits=self.settings.feeds)
            return parsed, fetched
        except PodmillError as exc:
            raise Problem(422, "invalid_feed", f"{url} is not a usable feed: {exc}") from None

    def add_feed(
        self, url: str, interval_seconds: int | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Add a feed to the catalog after fetching and parsing it; ``(feed, created)``.

        Its current items are marked seen: the poller enqueues only items that appear
        later; subscribing backfills the newest ``server.backfill`` episodes.
        """
        existing = self._feed_by_url(url)
        if existing is not None:
            return existing, False
        parsed, fetched = self.fetch_and_parse(url)
        now = utcnow()
        interval = interval_seconds or self.settings.server.poll_interval_seconds
        with self.store.sessions.begin() as session:
            feed_id, created, parsed = self._catalog_row(session, url, parsed)
            for episode in parsed.episodes:
                repo.upsert_episode(session, episode, feed_id=feed_id)
            conn = session.connection()
            conn.execute(
                self._insert(POLLS)
                .values(
                    feed_id=feed_id,
                    interval_seconds=interval,
                    next_poll_at=now + timedelta(seconds=interval),
                    etag=fetched.etag,
                    last_modified=fetched.last_modified,
                    last_polled_at=now,
                    error_count=0,
                )
                .on_conflict_do_nothing(index_elements=["feed_id"])
            )
            self.mark_seen(conn, feed_id, [e.episode_key for e in parsed.episodes])
        return self.feed(feed_id), created

    def _catalog_row(
        self, session: Session, url: str, parsed: ParsedFeed
    ) -> tuple[int, bool, ParsedFeed]:
        """The catalog row of the feed fetched from ``url``: ``(id, created, parsed)``,
        ``parsed`` keyed as that row.

        A document's identity (``podcast:guid``, self link) is a claim: it names a new
        row, or the row that was added from this same URL. A claim held by a feed at
        another URL never moves that feed, renames it or touches its episodes: this URL
        becomes a feed of its own, keyed by its fetch URL, until an admin merges the two
        (``POST /feeds/{id}/merge``)."""
        row_id = repo.insert_feed(
            session,
            feed_key=parsed.feed_key,
            identity=parsed.identity,
            url=url,
            title=parsed.title,
            podcast_guid=parsed.podcast_guid,
        )
        if row_id is not None:
            return row_id, True, parsed
        holder = session.execute(
            select(FEEDS.c.id, FEEDS.c.url).where(FEEDS.c.feed_key == parsed.feed_key)
        ).one()
        if normalize_url(holder.url) == normalize_url(url):
            repo.refresh_feed(session, holder.id, title=parsed.title, identity=parsed.identity)
            return holder.id, False, parsed
        own = parsed.keyed_as(fetch_url_identity(url))
        row_id = repo.insert_feed(
            session,
            feed_key=own.feed_key,
            identity=own.identity,
            url=url,
            title=own.title,
            podcast_guid=own.podcast_guid,
        )
        if row_id is not None:
            return row_id, True, own
        # that key is derived from this URL: its row was added from this URL too
        same = session.execute(select(FEEDS.c.id).where(FEEDS.c.feed_key == own.feed_key))
        return same.scalar_one(), False, own

    def merge_feed(self, feed_id: int, into: int, poll_url: str | None = None) -> dict[str, Any]:
        """An admin's word that catalog feeds ``feed_id`` and ``into`` are one show (a
        feed that moved, or a mirror): ``into`` keeps its identity and episodes and is
        polled at ``poll_url`` (either feed's URL; default ``feed_id``'s, the newer
        one); the subscribers of ``feed_id`` become subscribers of ``into``, and
        ``feed_id`` leaves the catalog as :meth:`delete_feed` leaves it."""
        if feed_id == into:
            raise Problem(422, "invalid_merge", f"feed {feed_id} cannot be merged into itself")
        source, target = self.feed(feed_id), self.feed(into)
        poll_url = poll_url or source["url"]
        if poll_url not in (source["url"], target["url"]):
            raise Problem(
                422,
                "invalid_merge",
                f"url {poll_url!r} is neither feed's URL: give {source['url']!r} or "
                f"{target['url']!r}, or leave it out",
            )
        with self.engine.begin() as conn:
            already = select(SUBSCRIPTIONS.c.tenant_id).where(SUBSCRIPTIONS.c.feed_id == into)
            conn.execute(
                update(SUBSCRIPTIONS)
                .where(
                    SUBSCRIPTIONS.c.feed_id == feed_id, SUBSCRIPTIONS.c.tenant_id.not_in(already)
                )
                .values(feed_id=into)
            )
            for table in (SUBSCRIPTIONS, POLLS, ITEMS):
                conn.execute(delete(table).where(table.c.feed_id == feed_id))
            if poll_url != target["url"]:
                conn.execute(
                    update(FEEDS)
                    .where(FEEDS.c.id == into)
                    .values(url=poll_url, updated_at=utcnow())
                )
                # the validators belong to the old URL's answers
                conn.execute(
                    update(POLLS)
                    .where(POLLS.c.feed_id == into)
                    .values(etag=None, last_modified=None)
                )
        return self.feed(into)

    def mark_seen(self, conn: Connection, feed_id: int, keys: list[str]) -> set[str]:
        """Record items as seen; returns the keys that were new (the cursor moves once)."""
        fresh: set[str] = set()
        now = utcnow()
        for key in keys:
            inserted = conn.execute(
                self._insert(ITEMS)
                .values(feed_id=feed_id, episode_key=key, seen_at=now)
                .on_conflict_do_nothing(index_elements=["feed_id", "episode_key"])
                .returning(ITEMS.c.id)
            ).first()
            if inserted is not None:
                fresh.add(key)
        return fresh

    def _feed_by_url(self, url: str) -> dict[str, Any] | None:
        with self.reader.connect() as conn:
            feed_id = conn.execute(
                select(FEEDS.c.id)
                .join(POLLS, POLLS.c.feed_id == FEEDS.c.id)
                .where(FEEDS.c.url == url)
            ).scalar()
        return self.feed(feed_id) if feed_id is not None else None

    def _feed_query(self) -> Any:
        subscribers = (
            select(func.count())
            .select_from(SUBSCRIPTIONS)
            .where(SUBSCRIPTIONS.c.feed_id == FEEDS.c.id)
            .scalar_subquery()
        )
        return select(
            FEEDS.c.id,
            FEEDS.c.feed_key,
            FEEDS.c.url,
            FEEDS.c.title,
            FEEDS.c.created_at,
            POLLS.c.interval_seconds,
            POLLS.c.next_poll_at,
            POLLS.c.last_polled_at,
            POLLS.c.error_count,
            POLLS.c.last_error,
            subscribers.label("subscribers"),
        ).join(POLLS, POLLS.c.feed_id == FEEDS.c.id)

    def feed(self, feed_id: int) -> dict[str, Any]:
        with self.reader.connect() as conn:
            row = conn.execute(self._feed_query().where(FEEDS.c.id == feed_id)).first()
        if row is None:
            raise not_found(f"no feed {feed_id} in the catalog (GET /feeds lists them)")
        return dict(row._mapping)

    def feeds(self) -> list[dict[str, Any]]:
        with self.reader.connect() as conn:
            rows = conn.execute(self._feed_query().order_by(FEEDS.c.id)).all()
        return [dict(r._mapping) for r in rows]

    def delete_feed(self, feed_id: int) -> None:
        """Drop a feed from the catalog: its subscriptions and polling state go; its
        episodes and their artifacts stay (they may be jobs of tenants)."""
        self.feed(feed_id)
        with self.engine.begin() as conn:
            for table in (SUBSCRIPTIONS, POLLS, ITEMS):
                conn.execute(delete(table).where(table.c.feed_id == feed_id))

    # ------------------------------------------------------------- subscriptions

    def subscribe(self, tenant: Tenant, url: str) -> tuple[dict[str, Any], bool]:
        """Subscribe ``tenant`` to the feed at ``url`` (added to the catalog if new);
        backfills the newest ``server.backfill`` episodes. ``(subscription, created)``."""
        feed, _ = self.add_feed(url)
        with self.engine.begin() as conn:
            inserted = conn.execute(
                self._insert(SUBSCRIPTIONS)
                .values(tenant_id=tenant.id, feed_id=feed["id"], created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["tenant_id", "feed_id"])
                .returning(SUBSCRIPTIONS.c.id)
            ).first()
        if inserted is not None:
            self._backfill(tenant, feed["id"])
        return self.subscription(tenant, feed_id=feed["id"]), inserted is not None

    def _backfill(self, tenant: Tenant, feed_id: int) -> None:
        count = self.settings.server.backfill
        if count <= 0:
            return
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(EPISODES, FEEDS.c.feed_key, FEEDS.c.title.label("feed_title"))
                .join(FEEDS, FEEDS.c.id == EPISODES.c.feed_id)
                .where(EPISODES.c.feed_id == feed_id)
                .order_by(EPISODES.c.published_at.desc().nulls_last(), EPISODES.c.id.desc())
                .limit(count)
            ).all()
        for row in rows:
            job_id, _ = self.request_episode([tenant.id], _episode_from_row(row), feed_id=feed_id)
            with self.engine.begin() as conn:
                conn.execute(
                    update(ITEMS)
                    .where(ITEMS.c.feed_id == feed_id, ITEMS.c.episode_key == row.episode_key)
                    .values(job_id=job_id)
                )

    def subscription(
        self, tenant: Tenant, *, subscription_id: int | None = None, feed_id: int | None = None
    ) -> dict[str, Any]:
        query = self._subscription_query(tenant)
        if subscription_id is not None:
            query = query.where(SUBSCRIPTIONS.c.id == subscription_id)
        if feed_id is not None:
            query = query.where(SUBSCRIPTIONS.c.feed_id == feed_id)
        with self.reader.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise not_found(
                f"no subscription {subscription_id} of this tenant (GET /subscriptions)"
            )
        return dict(row._mapping)

    def _subscription_query(self, tenant: Tenant) -> Any:
        return (
            select(
                SUBSCRIPTIONS.c.id,
                SUBSCRIPTIONS.c.feed_id,
                FEEDS.c.url,
                FEEDS.c.title,
                SUBSCRIPTIONS.c.created_at,
            )
            .join(FEEDS, FEEDS.c.id == SUBSCRIPTIONS.c.feed_id)
            .where(SUBSCRIPTIONS.c.tenant_id == tenant.id)
        )

    def subscriptions(self, tenant: Tenant) -> list[dict[str, Any]]:
        with self.reader.connect() as conn:
            rows = conn.execute(self._subscription_query(tenant).order_by(SUBSCRIPTIONS.c.id)).all()
        return [dict(r._mapping) for r in rows]

    def unsubscribe(self, tenant: Tenant, subscription_id: int) -> None:
        with self.engine.begin() as conn:
            gone = conn.execute(
                delete(SUBSCRIPTIONS).where(
                    SUBSCRIPTIONS.c.id == subscription_id, SUBSCRIPTIONS.c.tenant_id == tenant.id
                )
            ).rowcount
        if not gone:
            raise not_found(f"no subscription {subscription_id} of this tenant")

    def subscribers(self, conn: Connection, feed_id: int) -> list[int]:
        return list(
            conn.execute(
                select(SUBSCRIPTIONS.c.tenant_id).where(SUBSCRIPTIONS.c.feed_id == feed_id)
            ).scalars()
        )

    def has_subscribers(self) -> Any:
        return exists().where(SUBSCRIPTIONS.c.feed_id == POLLS.c.feed_id)

    # --------------------------------------------------------------------- admin

    def workers(self) -> list[dict[str, Any]]:
        now = utcnow()
        return [
            {**w, "heartbeat_age_seconds": round((now - w["heartbeat_at"]).total_seconds(), 3)}
            for w in self.store.workers()
        ]


def _episode_from_row(row: Any) -> Episode:
    meta = row.metadata_json or {}
    return Episode.from_dict(
        {
            "episode_key": row.episode_key,
            "title": row.title,
            "audio_url": row.audio_url,
            "feed_key": getattr(row, "feed_key", None),
            "feed_title": getattr(row, "feed_title", None),
            "guid": row.guid,
            "published": row.published_at.isoformat() if row.published_at else None,
            "mime_type": meta.get("mime_type"),
            "enclosure_length": meta.get("enclosure_length"),
            "description": meta.get("description"),
            "transcripts": meta.get("transcripts") or [],
            "chapters_url": meta.get("chapters_url"),
            "chapters": meta.get("chapters") or [],
            "persons": meta.get("persons") or [],
        }
    )
