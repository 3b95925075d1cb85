"""The work ``podmill serve`` (or ``podmill scheduler``) does besides answering requests:
the feed poller, the result notifier (webhooks and streams), the weekly digests and the
pruning of old job events, each a daemon thread. No
FastAPI here, so the scheduler runs without the server extra."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from podmill.platform import Platform

log = logging.getLogger(__name__)


def background_threads(service: Platform, stop: threading.Event) -> list[threading.Thread]:
    """The feed poller and the webhook notifier, as daemon threads that end on ``stop``
    (``podmill serve`` runs them unless ``--no-background``; ``podmill scheduler`` too)."""
    from podmill.api.webhooks import Notifier
    from podmill.digest.weekly import WeeklyDigests
    from podmill.platform.poller import Poller

    seconds = service.settings.server.poll_check_seconds
    # Polls and deliveries run on their own pools (a few per host); a pass only queues
    # them, so one slow host never holds the next pass up.
    passes = {
        "poller": Poller(service).start_due,
        "webhooks": Notifier(service).start_due,
        "digests": WeeklyDigests(service).store_due,  # one per tenant per week
        "events": lambda: _prune_events(service),  # GET /events keeps events_keep_hours
    }
    return [
        threading.Thread(
            target=_every, args=(stop, work, seconds, name), name=f"podmill-{name}", daemon=True
        )
        for name, work in passes.items()
    ]


def _prune_events(service: Platform) -> None:
    from datetime import timedelta

    from podmill.platform.events import prune_events
    from podmill.storage.models import utcnow

    keep = timedelta(hours=service.settings.server.events_keep_hours)
    prune_events(service.engine, keep, utcnow())


def _every(stop: threading.Event, work: Callable[[], object], seconds: float, name: str) -> None:
    """Run ``work`` every ``seconds`` until ``stop`` is set; errors are logged, never fatal."""
    while not stop.is_set():
        try:
            work()
        except Exception:  # the database restarting, a bug: try again next round
            log.exception("%s pass failed", name)
        stop.wait(seconds)
