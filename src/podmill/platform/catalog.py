"""The catalog: feeds (added after a validating fetch, merged, deleted), which items of
each were seen, and tenants' subscriptions to them. The poller (``platform/poller.py``)
keeps the feeds current.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, delete, exists, func, select, update
from sqlalchemy.orm import Session

from podmill.errors import PodmillError
from podmill.feeds.deadline import Deadline
from podmill.feeds.download import FeedFetch, fetch_feed
from podmill.feeds.identity import fetch_url_identity, normalize_url
from podmill.feeds.opml import OpmlFeed, OpmlList, write_opml
from podmill.feeds.parse import ParsedFeed, parse_feed
from podmill.platform.context import Context, Part
from podmill.platform.episodes import episode_from_row
from podmill.platform.errors import Invalid, NotFound
from podmill.platform.requests import Requests
from podmill.platform.tables import EPISODES, FEEDS, ITEMS, POLLS, SUBSCRIPTIONS
from podmill.platform.tenants import Tenant
from podmill.storage import repo
from podmill.storage.models import utcnow


class Catalog(Part):
    """Catalog feeds and subscriptions (a subscription backfills through ``requests``)."""

    def __init__(self, ctx: Context, requests: Requests) -> None:
        super().__init__(ctx)
        self.requests = requests

    def fetch_and_parse(self, url: str) -> tuple[ParsedFeed, FeedFetch]:
        """Validate a feed URL: fetch (SSRF-guarded) and parse, or :class:`Invalid` with the reason.
        The fetch ends after ``server.validation_timeout_seconds``, every try included:
        a request is waiting for it."""
        if not url.startswith(("http://", "https://")):
            raise Invalid(f"feed URL {url!r} must start with http(s)://", code="invalid_feed")
        deadline = Deadline(
            self.settings.server.validation_timeout_seconds, "server.validation_timeout_seconds"
        )
        try:
            fetched = fetch_feed(url, self.settings, deadline=deadline)
            assert fetched.body is not None
            parsed = parse_feed(fetched.body, fetched.final_url, limits=self.settings.feeds)
            return parsed, fetched
        except PodmillError as exc:
            raise Invalid(f"{url} is not a usable feed: {exc}", code="invalid_feed") from None

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
                self.ctx.insert(POLLS)
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
        row_id = _insert_feed(session, url, parsed)
        if row_id is not None:
            return row_id, True, parsed
        holder = session.execute(
            select(FEEDS.c.id, FEEDS.c.url).where(FEEDS.c.feed_key == parsed.feed_key)
        ).one()
        if normalize_url(holder.url) == normalize_url(url):
            repo.refresh_feed(session, holder.id, title=parsed.title, identity=parsed.identity)
            return holder.id, False, parsed
        own = parsed.keyed_as(fetch_url_identity(url))
        row_id = _insert_feed(session, url, own)
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
            raise Invalid(f"feed {feed_id} cannot be merged into itself", code="invalid_merge")
        source, target = self.feed(feed_id), self.feed(into)
        poll_url = poll_url or source["url"]
        if poll_url not in (source["url"], target["url"]):
            raise Invalid(
                f"url {poll_url!r} is neither feed's URL: give {source['url']!r} or "
                f"{target['url']!r}, or leave it out",
                code="invalid_merge",
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
                self.ctx.insert(ITEMS)
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
            raise NotFound(f"no feed {feed_id} in the catalog (GET /feeds lists them)")
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

    def subscribe(
        self, tenant: Tenant, url: str, reply_to: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Subscribe ``tenant`` to the feed at ``url`` (added to the catalog if new);
        backfills the newest ``server.backfill`` episodes. ``reply_to`` (checked by the
        caller: :meth:`Requests.check_reply_to`) goes with every episode of the feed
        queued for ``tenant``; given again, it replaces the subscription's.
        ``(subscription, created)``."""
        feed, _ = self.add_feed(url)
        with self.engine.begin() as conn:
            inserted = conn.execute(
                self.ctx.insert(SUBSCRIPTIONS)
                .values(
                    tenant_id=tenant.id, feed_id=feed["id"], created_at=utcnow(), reply_to=reply_to
                )
                .on_conflict_do_nothing(index_elements=["tenant_id", "feed_id"])
                .returning(SUBSCRIPTIONS.c.id)
            ).first()
            if inserted is None and reply_to is not None:
                conn.execute(
                    update(SUBSCRIPTIONS)
                    .where(
                        SUBSCRIPTIONS.c.tenant_id == tenant.id,
                        SUBSCRIPTIONS.c.feed_id == feed["id"],
                    )
                    .values(reply_to=reply_to)
                )
        if inserted is not None:
            self._backfill(tenant, feed["id"], reply_to)
        return self.subscription(tenant, feed_id=feed["id"]), inserted is not None

    def _backfill(self, tenant: Tenant, feed_id: int, reply_to: str | None) -> None:
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
            job_id, _ = self.requests.request_episode(
                [tenant.id], episode_from_row(row), feed_id=feed_id, reply_to=reply_to
            )
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
            raise NotFound(f"no subscription {subscription_id} of this tenant (GET /subscriptions)")
        return dict(row._mapping)

    def _subscription_query(self, tenant: Tenant) -> Any:
        return (
            select(
                SUBSCRIPTIONS.c.id,
                SUBSCRIPTIONS.c.feed_id,
                FEEDS.c.url,
                FEEDS.c.title,
                SUBSCRIPTIONS.c.created_at,
                SUBSCRIPTIONS.c.reply_to,
            )
            .join(FEEDS, FEEDS.c.id == SUBSCRIPTIONS.c.feed_id)
            .where(SUBSCRIPTIONS.c.tenant_id == tenant.id)
        )

    def subscriptions(self, tenant: Tenant) -> list[dict[str, Any]]:
        with self.reader.connect() as conn:
            rows = conn.execute(self._subscription_query(tenant).order_by(SUBSCRIPTIONS.c.id)).all()
        return [dict(r._mapping) for r in rows]

    def import_opml(self, tenant: Tenant, opml: OpmlList) -> dict[str, Any]:
        """Subscribe ``tenant`` to every feed of an OPML list (``feeds/opml.py`` read
        it), one outline at a time, as :meth:`subscribe` does: a bad outline is
        rejected with its reason and the others still import.

        Answers the list's title and its outlines in three lists, each in document
        order: ``imported`` (a new subscription), ``already_subscribed`` and
        ``rejected`` (with ``reason``: the outline's own problem, or why the catalog
        refused its feed)."""
        answer: dict[str, Any] = {
            "title": opml.title,
            "imported": [],
            "already_subscribed": [],
            "rejected": [],
        }
        for outline in opml.outlines:
            item: dict[str, Any] = {
                "outline": outline.position,
                "title": outline.title,
                "url": outline.url,
            }
            if outline.problem is not None or outline.url is None:
                answer["rejected"].append({**item, "reason": outline.problem})
                continue
            try:
                subscription, created = self.subscribe(tenant, outline.url)
            except Invalid as exc:
                answer["rejected"].append({**item, "reason": exc.detail})
                continue
            item.update(subscription_id=subscription["id"], feed_id=subscription["feed_id"])
            item["title"] = item["title"] or subscription["title"]
            answer["imported" if created else "already_subscribed"].append(item)
        return answer

    def export_opml(self, tenant: Tenant) -> bytes:
        """``tenant``'s subscriptions as an OPML 2.0 document, oldest first: what a
        podcast app (or :meth:`import_opml` for another tenant) imports."""
        feeds = [OpmlFeed(s["title"], s["url"]) for s in self.subscriptions(tenant)]
        return write_opml(f"podmill subscriptions of {tenant.name}", feeds, created=utcnow())

    def unsubscribe(self, tenant: Tenant, subscription_id: int) -> None:
        with self.engine.begin() as conn:
            gone = conn.execute(
                delete(SUBSCRIPTIONS).where(
                    SUBSCRIPTIONS.c.id == subscription_id, SUBSCRIPTIONS.c.tenant_id == tenant.id
                )
            ).rowcount
        if not gone:
            raise NotFound(f"no subscription {subscription_id} of this tenant")

    def subscribers(self, conn: Connection, feed_id: int) -> dict[int, str | None]:
        """The tenants subscribed to ``feed_id``, each with its subscription's ``reply_to``."""
        rows = conn.execute(
            select(SUBSCRIPTIONS.c.tenant_id, SUBSCRIPTIONS.c.reply_to).where(
                SUBSCRIPTIONS.c.feed_id == feed_id
            )
        ).all()
        return {row.tenant_id: row.reply_to for row in rows}

    def has_subscribers(self) -> Any:
        return exists().where(SUBSCRIPTIONS.c.feed_id == POLLS.c.feed_id)


def _insert_feed(session: Session, url: str, parsed: ParsedFeed) -> int | None:
    """A new catalog row for ``parsed`` (fetched from ``url``), keyed as it is keyed;
    ``None`` when a feed holds that key already (:func:`podmill.storage.repo.insert_feed`)."""
    return repo.insert_feed(
        session,
        feed_key=parsed.feed_key,
        identity=parsed.identity,
        url=url,
        title=parsed.title,
        podcast_guid=parsed.podcast_guid,
    )
