"""The feed poller: polls catalog feeds that have subscribers and enqueues new items.

Runs as a thread inside ``podmill serve`` or on its own as ``podmill scheduler``; any
number may run against one database:

- a feed is **claimed** for one poll by moving its ``next_poll_at`` forward with a
  compare-and-set ``UPDATE … WHERE next_poll_at = <what we read>``, so two pollers never
  poll the same feed at once;
- the request is a **conditional GET** (``If-None-Match`` / ``If-Modified-Since`` from
  the last answer); a 304 costs nothing more;
- the **cursor** is the ``feed_items`` table: an item is enqueued only by the poll that
  inserted its row, so a restarted poller (or a second one) never enqueues it again;
- a failing feed **backs off**: the next poll waits ``poll_error_backoff_seconds`` ×
  2^(errors − 1), at most ``poll_max_backoff_seconds``; a success resets it;
- polls run **concurrently**, ``server.poll_workers`` at once and at most
  ``server.per_host_limit`` per host (platform/hostpool.py), each fetch within
  ``download.feed_timeout``: a slow host delays only its own feeds.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from podmill.engine.clock import Clock, SystemClock
from podmill.errors import PodmillError
from podmill.feeds.download import fetch_feed
from podmill.feeds.parse import parse_feed
from podmill.platform.hostpool import HostPool, host_of
from podmill.platform.service import Platform
from podmill.platform.tables import FEEDS, POLLS
from podmill.retry import Backoff
from podmill.storage import repo

log = logging.getLogger(__name__)

# How long a claimed poll may take before another poller may take the feed over
# (longer than download.feed_timeout, the fetch's overall deadline, by default).
CLAIM_SECONDS = 300


@dataclass
class PollOutcome:
    feed_id: int
    status: str  # "new" | "not_modified" | "error"
    enqueued: list[int]
    error: str | None = None


class Poller:
    """Polls due feeds: :meth:`start_due` claims them and hands them to the pool (the
    background thread's pass: it does not wait), :meth:`poll_due` also waits for them."""

    def __init__(self, platform: Platform, *, clock: Clock | None = None) -> None:
        self.platform = platform
        self.settings = platform.settings.server
        self.clock: Clock = clock or SystemClock()
        self.pool = HostPool(
            "poll", workers=self.settings.poll_workers, per_host=self.settings.per_host_limit
        )

    def poll_due(self) -> list[PollOutcome]:
        """Poll every due feed that has subscribers, once each, and wait for them."""
        return [future.result() for future in self.start_due()]

    def start_due(self) -> list[Future[PollOutcome]]:
        """Claim every due feed that has subscribers and queue its poll."""
        now = self.clock.now()
        with self.platform.reader.connect() as conn:
            due = conn.execute(
                select(POLLS.c.feed_id, POLLS.c.next_poll_at, FEEDS.c.url)
                .join(FEEDS, FEEDS.c.id == POLLS.c.feed_id)
                .where(POLLS.c.next_poll_at <= now, self.platform.has_subscribers())
                .order_by(POLLS.c.next_poll_at)
            ).all()
        futures = []
        for feed_id, next_poll_at, url in due:
            if self._claim(feed_id, next_poll_at, now):
                future = self.pool.submit(host_of(url), lambda f=feed_id: self.poll(f))
                future.add_done_callback(_log_failure)
                futures.append(future)
        return futures

    def _claim(self, feed_id: int, seen_next: datetime, now: datetime) -> bool:
        with self.platform.engine.begin() as conn:
            claimed = conn.execute(
                update(POLLS)
                .where(POLLS.c.feed_id == feed_id, POLLS.c.next_poll_at == seen_next)
                .values(next_poll_at=now + timedelta(seconds=CLAIM_SECONDS))
            ).rowcount
        return claimed == 1

    def poll(self, feed_id: int) -> PollOutcome:
        """Fetch one feed (conditionally), record new items, enqueue them."""
        platform = self.platform
        with platform.reader.connect() as conn:
            row = conn.execute(
                select(FEEDS.c.url, FEEDS.c.feed_key, FEEDS.c.identity, POLLS)
                .join(POLLS, POLLS.c.feed_id == FEEDS.c.id)
                .where(FEEDS.c.id == feed_id)
            ).first()
        if row is None:
            return PollOutcome(feed_id, "error", [], "feed left the catalog")
        try:
            fetched = fetch_feed(
                row.url, platform.settings, etag=row.etag, last_modified=row.last_modified
            )
            parsed = (
                None
                if fetched.body is None
                else parse_feed(fetched.body, fetched.final_url, limits=platform.settings.feeds)
            )
        except PodmillError as exc:
            return self._failed(feed_id, row.error_count + 1, str(exc))
        enqueued: list[int] = []
        if parsed is not None:
            identity = row.identity or (
                parsed.identity if parsed.feed_key == row.feed_key else None
            )
            if identity is None:
                return self._failed(
                    feed_id,
                    row.error_count + 1,
                    f"feed {feed_id} ({row.url}) no longer carries the identity it was added "
                    "with and has none recorded (added before migration 0009): delete it and "
                    "add it again",
                )
            if parsed.identity != identity:
                # The document claims another identity now (a new podcast:guid, or a copy
                # of another feed's): this row keeps its own, so no other catalog feed or
                # its episodes are touched, and its own items keep their keys.
                parsed = parsed.keyed_as(identity)
            with platform.store.sessions.begin() as session:
                repo.refresh_feed(session, feed_id, title=parsed.title, identity=identity)
                conn = session.connection()
                fresh = platform.mark_seen(conn, feed_id, [e.episode_key for e in parsed.episodes])
                subscribers = platform.subscribers(conn, feed_id)
            for episode in parsed.episodes:
                if episode.episode_key in fresh and subscribers:
                    job_id, _ = platform.request_episode(
                        list(subscribers), episode, feed_id=feed_id, reply_to_of=subscribers
                    )
                    enqueued.append(job_id)
        now = self.clock.now()
        with platform.engine.begin() as conn:
            conn.execute(
                update(POLLS)
                .where(POLLS.c.feed_id == feed_id)
                .values(
                    etag=fetched.etag,
                    last_modified=fetched.last_modified,
                    last_polled_at=now,
                    next_poll_at=now + timedelta(seconds=row.interval_seconds),
                    error_count=0,
                    last_error=None,
                )
            )
        if enqueued:
            log.info("feed %s: %d new item(s) enqueued", feed_id, len(enqueued))
        return PollOutcome(feed_id, "not_modified" if parsed is None else "new", enqueued)

    def _failed(self, feed_id: int, errors: int, reason: str) -> PollOutcome:
        delay = Backoff(
            self.settings.poll_error_backoff_seconds,
            cap=self.settings.poll_max_backoff_seconds,
            jitter=False,
        ).delay(errors)
        now = self.clock.now()
        with self.platform.engine.begin() as conn:
            conn.execute(
                update(POLLS)
                .where(POLLS.c.feed_id == feed_id)
                .values(
                    last_polled_at=now,
                    next_poll_at=now + timedelta(seconds=delay),
                    error_count=errors,
                    last_error=reason[:2000],
                )
            )
        log.warning(
            "feed %s poll failed (%d in a row, next in %.0f s): %s", feed_id, errors, delay, reason
        )
        return PollOutcome(feed_id, "error", [], reason)


def _log_failure(future: Future[PollOutcome]) -> None:
    """A poll that raised (the database went away, a bug): nobody else may look."""
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.error("feed poll failed", exc_info=exc)
