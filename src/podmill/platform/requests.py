"""Job requests: a tenant asking for an episode, reading, cancelling and retrying the
jobs it asked for.

Process once, serve many: a job is one ``(episode_key, fingerprint)``
(:func:`podmill.engine.submit.submit_episode` is idempotent on it); a tenant asking for
it adds a ``job_requests`` row, and sees the jobs it requested.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, func, select, update

from podmill.domain import Episode
from podmill.engine.submit import submit_episode
from podmill.errors import PodmillError
from podmill.platform.context import Context, Part
from podmill.platform.episodes import Episodes
from podmill.platform.errors import Conflict, Invalid, NotFound
from podmill.platform.streams import check_stream, is_stream
from podmill.platform.tables import JOBS, REQUESTS
from podmill.platform.tenants import Tenant
from podmill.storage.models import utcnow
from podmill.storage.replies import add_replies, default_replies, replies_due_again


class Requests(Part):
    """What tenants ask for: the jobs of episodes, each request a ``job_requests`` row."""

    def __init__(self, ctx: Context, episodes: Episodes) -> None:
        super().__init__(ctx)
        self.episodes = episodes

    def request_episode(
        self,
        tenant_ids: list[int],
        episode: Episode,
        *,
        feed_id: int | None = None,
        reply_to: str | None = None,
        reply_to_of: Mapping[int, str | None] | None = None,
        correlation_id: str | None = None,
    ) -> tuple[int, bool]:
        """Submit ``episode`` (idempotent on episode key and fingerprint) on behalf of
        ``tenant_ids``: ``(job_id, created)``. A job that had failed or that everybody
        had cancelled runs again (:func:`podmill.engine.submit.submit_episode`) and
        notifies again. ``reply_to_of`` gives a tenant its own ``reply_to`` (its
        subscription's), else ``reply_to``; the default stream is owed the result too. A
        new job takes ``correlation_id`` (default: a new one); an existing job keeps its
        own."""

        def attach(job_id: int) -> None:
            with self.engine.begin() as conn:
                for tenant_id in tenant_ids:
                    own = (reply_to_of or {}).get(tenant_id) or reply_to
                    self.add_requests(conn, job_id, [tenant_id], own)
                add_replies(conn, job_id, default_replies(self.settings))

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

    def add_requests(
        self, conn: Connection, job_id: int, tenant_ids: list[int], reply_to: str | None
    ) -> None:
        """Record that ``tenant_ids`` want job ``job_id`` (a cancelled request of theirs
        is live again; ``reply_to``, if given, replaces theirs), in ``conn``'s
        transaction."""
        now = utcnow()
        # the job row's lock orders this with a concurrent cancel (Store.cancel_unless_wanted)
        conn.execute(select(JOBS.c.id).where(JOBS.c.id == job_id).with_for_update())
        for tenant_id in tenant_ids:
            stmt = self.ctx.insert(REQUESTS).values(
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
        """Job ``job_id`` if ``tenant`` requested it, else :class:`NotFound` (another's
        job is not found)."""
        mine = select(REQUESTS.c.job_id).where(
            REQUESTS.c.tenant_id == tenant.id, REQUESTS.c.job_id == job_id
        )
        found = self.store.jobs(limit=1, job_ids=mine)
        if not found:
            raise NotFound(f"no job {job_id} among this tenant's jobs (GET /jobs lists them)")
        return self._with_replies(tenant, found)[0]

    def _with_replies(self, tenant: Tenant, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each job with ``reply``: ``tenant``'s ``reply_to`` and how its delivery stands
        (``None`` without one), so a failed delivery shows in the job."""
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(REQUESTS).where(
                    REQUESTS.c.tenant_id == tenant.id,
                    REQUESTS.c.job_id.in_([job["id"] for job in jobs]),
                    REQUESTS.c.reply_to.is_not(None),
                )
            ).all()
        replies = {
            row.job_id: {
                "to": row.reply_to,
                "attempts": row.reply_attempts,
                "delivered_at": row.replied_at,
                "next_try_at": None if row.replied_at else row.reply_next_at,
                "error": row.reply_error,
            }
            for row in rows
        }
        return [{**job, "reply": replies.get(job["id"])} for job in jobs]

    def check_reply_to(self, url: str) -> str:
        """A ``reply_to`` podmill may use: a webhook URL it may call (http(s); public
        unless allow_private_networks), or a Redis stream on a server in
        ``server.stream_hosts`` (docs/delivery.md); else :class:`Invalid`."""
        from podmill.feeds.download import check_url

        try:
            if is_stream(url):
                check_stream(url, self.settings.server)
            else:
                check_url(url, self.settings)
        except PodmillError as exc:
            raise Invalid(f"reply_to: {exc}", code="invalid_reply_to") from None
        return url

    def jobs(self, tenant: Tenant, status: str | None, limit: int) -> list[dict[str, Any]]:
        jobs = self.store.jobs(status, limit=limit, job_ids=self._requested(tenant))
        return self._with_replies(tenant, jobs)

    def episode_for_submission(self, tenant: Tenant, url: str) -> tuple[Episode, int | None]:
        """The episode ``POST /jobs {"url": …}`` asks for, and its feed id: an episode
        ``tenant`` may see whose enclosure is ``url``, else the audio at ``url`` as a
        bare audio URL (another tenant's episode with that enclosure stays theirs). A
        feed, a page that is not audio, or a URL that cannot be fetched is :class:`Invalid`."""
        from podmill.feeds.sources import resolve

        if not url.startswith(("http://", "https://")):
            raise Invalid(f"url {url!r} must be an http(s):// audio URL", code="invalid_url")
        found = self.episodes.episode_for_url(tenant, url)
        if found is not None:
            return found
        try:
            resolved = resolve(url, self.settings)
        except PodmillError as exc:
            raise Invalid(f"cannot use {url}: {exc}", code="invalid_url") from None
        if resolved.feed is not None:
            raise Invalid(
                f"{url} is a feed ({len(resolved.feed.episodes)} "
                "episodes), not audio: subscribe with POST /subscriptions, or give one "
                "item's audio URL",
                code="invalid_url",
            )
        return resolved.episodes[0], None

    def cancel(self, tenant: Tenant, job_id: int) -> dict[str, Any]:
        """Withdraw ``tenant``'s request; the job itself is cancelled once no tenant
        wants it any more (another tenant's request keeps it running)."""
        job = self.job(tenant, job_id)
        if job["status"] in ("done", "cancelled"):
            raise Conflict(f"job {job_id} is {job['status']}: nothing to cancel")

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
            self.add_requests(conn, job_id, [tenant.id], None)
        if self.store.retry_job(job_id) == 0:
            raise Conflict(f"job {job_id} has no failed, dead or cancelled steps to retry")
        self._notify_again(job_id)
        return self.job(tenant, job_id)

    def _notify_again(self, job_id: int) -> None:
        """The job will finish again: its ``reply_to`` webhooks and streams, and the
        default stream's result, are due again then."""
        with self.engine.begin() as conn:
            conn.execute(
                update(REQUESTS)
                .where(REQUESTS.c.job_id == job_id, REQUESTS.c.reply_to.is_not(None))
                .values(replied_at=None, reply_attempts=0, reply_next_at=None, reply_error=None)
            )
            replies_due_again(conn, job_id)
