"""The work ``podmill serve`` (or ``podmill scheduler``) does besides answering requests:
the feed poller and the webhook notifier, each a daemon thread. No FastAPI here, so the
scheduler runs without the server extra."""

from __future__ import annotations

import threading

from podmill.api.platform import Platform


def background_threads(service: Platform, stop: threading.Event) -> list[threading.Thread]:
    """The feed poller and the webhook notifier, as daemon threads that end on ``stop``
    (``podmill serve`` runs them unless ``--no-background``; ``podmill scheduler`` too)."""
    from podmill.api.poller import Poller
    from podmill.api.webhooks import Notifier

    return [
        threading.Thread(
            target=Poller(service).run, args=(stop,), name="podmill-poller", daemon=True
        ),
        threading.Thread(
            target=Notifier(service).run, args=(stop,), name="podmill-webhooks", daemon=True
        ),
    ]
