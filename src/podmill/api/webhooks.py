"""Delivering results: every ``reply_to`` of a finished job (done, failed or cancelled) —
an https webhook, a Redis stream — and the results owed to the default stream and to
``podmill submit --reply-to`` (``job_replies``), retried with backoff. Each carries the
result document of :func:`podmill.platform.results.result_of` (docs/delivery.md).
Delivery is at least once: the job id is the idempotency key.

A webhook is::

    POST <reply_to>
    Content-Type: application/json
    X-Podmill-Delivery: <job_request id>.<attempt>
    X-Podmill-Timestamp: <unix seconds>
    X-Podmill-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

    {"event": "job.finished", "job_id": …, "tenant": …, "job": {…}, "tree": …, "artifacts": …}

A stream delivery is an ``XADD`` (``platform/streams.py``) to a server the allow-list
names. A 2xx answer (an accepted XADD) is a delivery; anything else (or no answer) is
retried after ``webhook_backoff_seconds`` × 2^(attempt − 1) (at most an hour, no jitter:
:class:`~podmill.retry.Backoff`), up to ``webhook_attempts`` tries; the last error is
kept in the row's ``reply_error`` (shown in the tenant's job as ``reply``), ``gave up: …``
after the last. Redirects are not followed, and a webhook URL must pass the download SSRF
guard (``allow_private_networks``).

Each call ends after ``webhook_timeout_seconds`` overall, and the answer's body is never
read (only its status counts), so a receiver cannot hold a thread or fill memory, and
its bytes never reach ``reply_error``. Deliveries run concurrently,
``server.webhook_workers`` at once and at most ``server.per_host_limit`` per host
(platform/hostpool.py): a slow receiver delays only its own deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Row, Table, select, update

from podmill.domain import JOB_TERMINAL
from podmill.engine.clock import Clock, SystemClock
from podmill.errors import PodmillError, first_line
from podmill.feeds.deadline import Deadline
from podmill.feeds.download import check_url
from podmill.platform import Platform
from podmill.platform.hostpool import HostPool, host_of
from podmill.platform.results import result_of
from podmill.platform.streams import StreamSender, check_stream, is_stream
from podmill.platform.tables import EPISODES, JOBS, REPLIES, REQUESTS, TENANTS
from podmill.retry import Backoff
from podmill.storage.artifacts import ArtifactDamaged

log = logging.getLogger(__name__)

WEBHOOK_MAX_DELAY_SECONDS = 3600.0
# How long a claimed delivery may take before another notifier may take it over.
CLAIM_SECONDS = 120


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Podmill-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass
class Delivery:
    request_id: int  # the job_requests row; a job_replies row's id when ``owed`` is set
    job_id: int
    attempt: int
    delivered: bool
    error: str | None = None
    owed: bool = False  # a job_replies row: the default stream, or podmill submit's


@dataclass(frozen=True)
class _Due:
    """One result owed to one target: a tenant's request, or a ``job_replies`` row."""

    table: Table
    row_id: int
    target: str
    attempts: int
    tenant: str | None
    secret: str | None
    job: dict[str, Any]
    title: str | None

    @property
    def owed(self) -> bool:
        return self.table is REPLIES


def _due(table: Table, now: datetime) -> Any:
    """The rows of ``table`` whose result is due: not delivered, not given up (a row that
    failed keeps its last error and a next try), its job finished, its time come."""
    return (
        table.c.replied_at.is_(None),
        table.c.reply_error.is_(None) | table.c.reply_next_at.is_not(None),
        JOBS.c.status.in_(JOB_TERMINAL),
        table.c.reply_next_at.is_(None) | (table.c.reply_next_at <= now),
    )


_JOB_COLUMNS = (
    JOBS.c.id.label("job_id"),
    JOBS.c.episode_key,
    JOBS.c.fingerprint,
    JOBS.c.status,
    JOBS.c.error,
    JOBS.c.finished_at,
    EPISODES.c.title,
)


class Notifier:
    """Delivers due results to webhooks and Redis streams: :meth:`start_due` claims them
    and hands them to the pool (the background thread's pass: it does not wait),
    :meth:`deliver_due` also waits."""

    def __init__(
        self,
        platform: Platform,
        *,
        clock: Clock | None = None,
        client: httpx.Client | None = None,
        streams: StreamSender | None = None,
    ) -> None:
        self.platform = platform
        self.settings = platform.settings.server
        self.clock: Clock = clock or SystemClock()
        self.client = client or httpx.Client(
            timeout=self.settings.webhook_timeout_seconds, follow_redirects=False
        )
        self.streams = streams or StreamSender(self.settings.stream_timeout_seconds)
        self.pool = HostPool(
            "webhook", workers=self.settings.webhook_workers, per_host=self.settings.per_host_limit
        )
        self._backoff = Backoff(
            self.settings.webhook_backoff_seconds, cap=WEBHOOK_MAX_DELAY_SECONDS, jitter=False
        )

    def deliver_due(self) -> list[Delivery]:
        """Deliver every due result once, and wait for them."""
        return [future.result() for future in self.start_due()]

    def start_due(self) -> list[Future[Delivery]]:
        """Claim every due result and queue its delivery."""
        now = self.clock.now()
        episode = EPISODES.c.episode_key == JOBS.c.episode_key
        with self.platform.reader.connect() as conn:
            requested = conn.execute(
                select(
                    REQUESTS.c.id,
                    REQUESTS.c.reply_to.label("target"),
                    REQUESTS.c.reply_attempts,
                    TENANTS.c.name,
                    TENANTS.c.webhook_secret,
                    *_JOB_COLUMNS,
                )
                .join(JOBS, JOBS.c.id == REQUESTS.c.job_id)
                .join(TENANTS, TENANTS.c.id == REQUESTS.c.tenant_id)
                .outerjoin(EPISODES, episode)
                .where(
                    REQUESTS.c.reply_to.is_not(None),
                    REQUESTS.c.cancelled_at.is_(None),
                    *_due(REQUESTS, now),
                )
                .order_by(REQUESTS.c.id)
            ).all()
            owed = conn.execute(
                select(REPLIES.c.id, REPLIES.c.target, REPLIES.c.reply_attempts, *_JOB_COLUMNS)
                .join(JOBS, JOBS.c.id == REPLIES.c.job_id)
                .outerjoin(EPISODES, episode)
                .where(*_due(REPLIES, now))
                .order_by(REPLIES.c.id)
            ).all()
        due = [_of_row(REQUESTS, r, r.name, r.webhook_secret) for r in requested]
        due += [_of_row(REPLIES, r, None, None) for r in owed]
        futures = []
        for item in due:
            if self._claim(item):
                future = self.pool.submit(host_of(item.target), lambda d=item: self._deliver(d))
                future.add_done_callback(_log_failure)
                futures.append(future)
        return futures

    def _claim(self, item: _Due) -> bool:
        now = self.clock.now()
        table = item.table
        with self.platform.engine.begin() as conn:
            return (
                conn.execute(
                    update(table)
                    .where(
                        table.c.id == item.row_id,
                        table.c.reply_attempts == item.attempts,
                        table.c.replied_at.is_(None),
                    )
                    .values(reply_next_at=now + timedelta(seconds=CLAIM_SECONDS))
                ).rowcount
                == 1
            )

    def _deliver(self, item: _Due) -> Delivery:
        attempt = item.attempts + 1
        try:
            result = result_of(
                item.job,
                tenant=item.tenant,
                title=item.title,
                artifacts=self.platform.artifacts,
                base_url=self.settings.base_url,
            )
        except ArtifactDamaged as exc:  # re-queued by the next read; the result waits
            error: str | None = f"cannot read the result: {exc}"
        else:
            if is_stream(item.target):
                error = self._xadd(item.target, result)
            else:
                error = self._webhook(item, attempt, result)
        self._record(item, attempt, error)
        return Delivery(item.row_id, item.job["id"], attempt, error is None, error, item.owed)

    def _webhook(self, item: _Due, attempt: int, result: dict[str, Any]) -> str | None:
        body = json.dumps(result).encode()
        timestamp = str(int(self.clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.platform.settings.download.user_agent,
            "X-Podmill-Delivery": f"{item.row_id}.{attempt}",
            "X-Podmill-Timestamp": timestamp,
            "X-Podmill-Signature": sign(item.secret or "", timestamp, body),
        }
        return self._post(item.target, body, headers)

    def _xadd(self, url: str, result: dict[str, Any]) -> str | None:
        """XADD ``result`` to the stream; ``None`` once Redis accepted it, else what went
        wrong in words. The host is checked again (the allow-list may have shrunk), except
        for the operator's own default stream."""
        try:
            if url != self.settings.default_stream:
                check_stream(url, self.settings)
            self.streams.send(url, result)
        except PodmillError as exc:
            return str(exc)
        except Exception as exc:  # redis.RedisError, OSError: the extra is imported lazily
            return f"cannot XADD to {url}: {type(exc).__name__}: {first_line(exc)}"
        return None

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> str | None:
        """POST within the overall deadline; ``None`` on a 2xx, else what went wrong in
        words (the receiver's bytes are not read, so never quoted)."""
        seconds = self.settings.webhook_timeout_seconds
        deadline = Deadline(seconds, "server.webhook_timeout_seconds")
        try:
            check_url(url, self.platform.settings)
            request = self.client.build_request(
                "POST",
                url,
                content=body,
                headers=headers,
                timeout=max(0.001, min(seconds, deadline.remaining())),
                extensions={"trace": deadline.trace},
            )
            with deadline.enforced():
                response = self.client.send(request, stream=True, follow_redirects=False)
                response.close()  # the body is not read: only the status counts
        except PodmillError as exc:
            return str(exc)
        except httpx.HTTPError as exc:
            if deadline.expired:
                return str(deadline.error(url))
            if isinstance(exc, httpx.TimeoutException):
                return f"no answer from {url} within server.webhook_timeout_seconds = {seconds:g} s"
            if isinstance(exc, httpx.ProtocolError):
                return f"{url} did not answer with valid HTTP ({type(exc).__name__})"
            return f"cannot connect to {url}: {type(exc).__name__}: {exc}"
        if not response.is_success:
            return f"HTTP {response.status_code} from {url}"
        return None

    def _record(self, item: _Due, attempt: int, error: str | None) -> None:
        """The delivery's outcome on its row: delivered; or the error and the next try
        (shown in the tenant's job as ``reply``); or given up after the last try."""
        now = self.clock.now()
        what = "result" if item.owed else "reply_to"
        if error is None:
            values: dict[str, object] = {
                "reply_attempts": attempt,
                "replied_at": now,
                "reply_error": None,
            }
        elif attempt >= self.settings.webhook_attempts:
            values = {
                "reply_attempts": attempt,
                "reply_error": f"gave up: {error}"[:2000],
                "reply_next_at": None,
            }
            log.warning("%s %s: gave up after %d attempts: %s", what, item.row_id, attempt, error)
        else:
            delay = self._backoff.delay(attempt)
            values = {
                "reply_attempts": attempt,
                "reply_error": error[:2000],
                "reply_next_at": now + timedelta(seconds=delay),
            }
            log.info(
                "%s %s attempt %d failed (%s); retry in %.0f s",
                what,
                item.row_id,
                attempt,
                error,
                delay,
            )
        table = item.table
        with self.platform.engine.begin() as conn:
            conn.execute(update(table).where(table.c.id == item.row_id).values(**values))


def _of_row(table: Table, row: Row[Any], tenant: str | None, secret: str | None) -> _Due:
    job = {
        "id": row.job_id,
        "episode_key": row.episode_key,
        "fingerprint": row.fingerprint,
        "status": row.status,
        "error": row.error,
        "finished_at": row.finished_at,
    }
    return _Due(table, row.id, row.target, row.reply_attempts, tenant, secret, job, row.title)


def _log_failure(future: Future[Delivery]) -> None:
    """A delivery that raised (the database went away, a bug): nobody else may look."""
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.error("webhook delivery failed", exc_info=exc)
