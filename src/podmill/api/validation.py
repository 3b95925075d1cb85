"""Feed validation off the request threads.

``POST /subscriptions``, ``POST /feeds`` and ``POST /jobs {"url": …}`` fetch someone
else's server before they answer. Run in the request threadpool (anyio's default: 40
threads for every route of the process), a tenant sending 40 of them to a server that
never answers would leave no thread for ``/health`` or ``GET /jobs``. So:

- at most ``server.validations_per_tenant`` run at once for one tenant; one more answers
  429 with ``Retry-After`` at once (no thread, no fetch);
- they run on their own ``server.validation_threads`` threads, never the request
  threadpool; a request waiting for one of those waits without holding a thread;
- each validating fetch ends after ``server.validation_timeout_seconds`` overall
  (``Platform.fetch_and_parse``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

from podmill.api.errors import Problem
from podmill.platform import Tenant
from podmill.settings import ServerSettings

T = TypeVar("T")

RETRY_AFTER_SECONDS = 5


class TooManyValidations(Problem):
    """429: the tenant already has its share of validations running."""

    def __init__(self, running: int) -> None:
        super().__init__(
            429,
            "too_many_requests",
            f"this tenant already has {running} feed validations running "
            "(server.validations_per_tenant); wait for them to finish, then try again",
        )
        self.headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class FeedValidations:
    """Admits and runs validating calls; one per app (``app.state.feed_validations``).

    The counts are touched only on the event loop, between awaits, so they need no lock.
    """

    def __init__(self, server: ServerSettings) -> None:
        self.per_tenant = server.validations_per_tenant
        self.threads = CapacityLimiter(server.validation_threads)
        self._running: dict[int, int] = {}

    def running(self, tenant: Tenant) -> int:
        return self._running.get(tenant.id, 0)

    async def run(self, tenant: Tenant, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` on a validation thread, or :class:`TooManyValidations`."""
        running = self.running(tenant)
        if running >= self.per_tenant:
            raise TooManyValidations(running)
        self._running[tenant.id] = running + 1
        try:
            # A client that hangs up does not free the slot early: the thread runs on
            # until its fetch's deadline, and the count says so.
            return await anyio.to_thread.run_sync(partial(call, *args), limiter=self.threads)
        finally:
            left = self._running[tenant.id] - 1
            if left:
                self._running[tenant.id] = left
            else:
                del self._running[tenant.id]


def feed_validations(request: Any) -> FeedValidations:
    """The app's :class:`FeedValidations` (made by ``create_app``)."""
    return request.app.state.feed_validations
