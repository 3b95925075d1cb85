"""``reply_to`` webhooks: a POST to the URL a tenant gave with its job, once the job
finishes (done, failed or cancelled), signed with the tenant's secret and retried with
backoff. Delivery is at least once: receivers should ignore a repeated delivery id.

The request::

    POST <reply_to>
    Content-Type: application/json
    X-Podmill-Delivery: <job_request id>.<attempt>
    X-Podmill-Timestamp: <unix seconds>
    X-Podmill-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

    {"event": "job.finished", "tenant": …, "job": {"id", "episode_key", "status", …}}

A 2xx answer is a delivery; anything else (or no answer) is retried after
``webhook_backoff_seconds`` × 2^(attempt − 1) (at most an hour, no jitter:
:class:`~podmill.retry.Backoff`), up to ``webhook_attempts`` tries; the
last error is kept in ``job_requests.reply_error``. Redirects are not followed, and the
URL must pass the download SSRF guard (``allow_private_networks``).

Each call ends after ``webhook_timeout_seconds`` overall, and the answer's body is never
read (only its status counts), so a receiver cannot hold a thread or fill memory, and
its bytes never reach ``reply_error``. Deliveries run concurrently,
``server.webhook_workers`` at once and at most ``server.per_host_limit`` per host
(platform/hostpool.py): a slow receiver delays only its own webhooks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Row, select, update

from podmill.domain import JOB_TERMINAL
from podmill.engine.clock import Clock, SystemClock
from podmill.errors import PodmillError
from podmill.feeds.deadline import Deadline
from podmill.feeds.download import check_url
from podmill.platform import Platform
from podmill.platform.hostpool import HostPool, host_of
from podmill.platform.tables import JOBS, REQUESTS, TENANTS
from podmill.retry import Backoff

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
    request_id: int
    job_id: int
    attempt: int
    delivered: bool
    error: str | None = None


class Notifier:
    """Delivers due webhooks: :meth:`start_due` claims them and hands them to the pool
    (the background thread's pass: it does not wait), :meth:`deliver_due` also waits."""

    def __init__(
        self,
        platform: Platform,
        *,
        clock: Clock | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.platform = platform
        self.settings = platform.settings.server
        self.clock: Clock = clock or SystemClock()
        self.client = client or httpx.Client(
            timeout=self.settings.webhook_timeout_seconds, follow_redirects=False
        )
        self.pool = HostPool(
            "webhook", workers=self.settings.webhook_workers, per_host=self.settings.per_host_limit
        )
        self._backoff = Backoff(
            self.settings.webhook_backoff_seconds, cap=WEBHOOK_MAX_DELAY_SECONDS, jitter=False
        )

    def deliver_due(self) -> list[Delivery]:
        """Deliver every due webhook once, and wait for them."""
        return [future.result() for future in self.start_due()]

    def start_due(self) -> list[Future[Delivery]]:
        """Claim every due webhook and queue its delivery."""
        now = self.clock.now()
        with self.platform.reader.connect() as conn:
            due = conn.execute(
                select(
                    REQUESTS.c.id,
                    REQUESTS.c.reply_to,
                    REQUESTS.c.reply_attempts,
                    REQUESTS.c.reply_next_at,
                    TENANTS.c.name,
                    TENANTS.c.webhook_secret,
                    JOBS.c.id.label("job_id"),
                    JOBS.c.episode_key,
                    JOBS.c.fingerprint,
                    JOBS.c.status,
                    JOBS.c.error,
                    JOBS.c.finished_at,
                )
                .join(JOBS, JOBS.c.id == REQUESTS.c.job_id)
                .join(TENANTS, TENANTS.c.id == REQUESTS.c.tenant_id)
                .where(
                    REQUESTS.c.reply_to.is_not(None),
                    REQUESTS.c.replied_at.is_(None),
                    REQUESTS.c.reply_error.is_(None),
                    REQUESTS.c.cancelled_at.is_(None),
                    JOBS.c.status.in_(JOB_TERMINAL),
                    (REQUESTS.c.reply_next_at.is_(None)) | (REQUESTS.c.reply_next_at <= now),
                )
                .order_by(REQUESTS.c.id)
            ).all()
        futures = []
        for row in due:
            if self._claim(row):
                future = self.pool.submit(host_of(row.reply_to), lambda r=row: self._deliver(r))
                future.add_done_callback(_log_failure)
                futures.append(future)
        return futures

    def _claim(self, row: Row[Any]) -> bool:
        now = self.clock.now()
        with self.platform.engine.begin() as conn:
            return (
                conn.execute(
                    update(REQUESTS)
                    .where(
                        REQUESTS.c.id == row.id,
                        REQUESTS.c.reply_attempts == row.reply_attempts,
                        REQUESTS.c.replied_at.is_(None),
                    )
                    .values(reply_next_at=now + timedelta(seconds=CLAIM_SECONDS))
                ).rowcount
                == 1
            )

    def _deliver(self, r: Row[Any]) -> Delivery:
        attempt = r.reply_attempts + 1
        body = json.dumps(
            {
                "event": "job.finished",
                "tenant": r.name,
                "job": {
                    "id": r.job_id,
                    "episode_key": r.episode_key,
                    "fingerprint": r.fingerprint,
                    "status": r.status,
                    "error": r.error,
                    "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                    "url": f"/jobs/{r.job_id}",
                },
            }
        ).encode()
        timestamp = str(int(self.clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.platform.settings.download.user_agent,
            "X-Podmill-Delivery": f"{r.id}.{attempt}",
            "X-Podmill-Timestamp": timestamp,
            "X-Podmill-Signature": sign(r.webhook_secret or "", timestamp, body),
        }
        error = self._post(r.reply_to, body, headers)
        self._record(r.id, attempt, error)
        return Delivery(r.id, r.job_id, attempt, error is None, error)

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

    def _record(self, request_id: int, attempt: int, error: str | None) -> None:
        now = self.clock.now()
        if error is None:
            values: dict[str, object] = {"reply_attempts": attempt, "replied_at": now}
        elif attempt >= self.settings.webhook_attempts:
            values = {"reply_attempts": attempt, "reply_error": f"gave up: {error}"[:2000]}
            log.warning("webhook %s: gave up after %d attempts: %s", request_id, attempt, error)
        else:
            delay = self._backoff.delay(attempt)
            values = {"reply_attempts": attempt, "reply_next_at": now + timedelta(seconds=delay)}
            log.info(
                "webhook %s attempt %d failed (%s); retry in %.0f s",
                request_id,
                attempt,
                error,
                delay,
            )
        with self.platform.engine.begin() as conn:
            conn.execute(update(REQUESTS).where(REQUESTS.c.id == request_id).values(**values))


def _log_failure(future: Future[Delivery]) -> None:
    """A delivery that raised (the database went away, a bug): nobody else may look."""
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.error("webhook delivery failed", exc_info=exc)
