"""The service behind ``podmill serve``: :class:`Platform`, one object that composes the
platform's parts so the API, the background passes and the digest take one thing.

Each of its methods is one part's, named in the class body: tenants and keys
(``tenants.py``), job requests (``requests.py``), the catalog and subscriptions
(``catalog.py``), episodes and their artifacts (``episodes.py``), what a podcaster
publishes (``publishing.py``). No HTTP here: what the platform refuses it raises as a
domain error (``errors.py``), which ``podmill.api.errors`` maps to a status.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from podmill.platform.catalog import Catalog
from podmill.platform.context import Context, Part
from podmill.platform.episodes import Episodes
from podmill.platform.publishing import Publishing
from podmill.platform.requests import Requests
from podmill.platform.tenants import Tenants
from podmill.settings import Settings
from podmill.storage.models import utcnow

P = ParamSpec("P")
R = TypeVar("R")


def _of(part: str, method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
    """``method`` of the part in attribute ``part``, as a method of :class:`Platform`
    (same signature and docstring)."""

    @functools.wraps(method)
    def call(self: Any, *args: P.args, **kwargs: P.kwargs) -> R:
        return method(getattr(self, part), *args, **kwargs)

    return call


class Platform(Part):
    """The platform, one per process, safe to share between threads (a connection per
    call). ``settings.db`` (or the SQLite file in the data directory) is the database;
    it must be migrated (``podmill db upgrade``)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(Context(settings))
        self.url = self.ctx.url
        self.dialect = self.ctx.dialect
        self._tenants = Tenants(self.ctx)
        self._episodes = Episodes(self.ctx)
        self._requests = Requests(self.ctx, self._episodes)
        self._catalog = Catalog(self.ctx, self._requests)
        self._publishing = Publishing(self.ctx, self._episodes)

    def close(self) -> None:
        self.ctx.close()

    def workers(self) -> list[dict[str, Any]]:
        """The fleet's workers, each with the age of its last heartbeat (admin)."""
        now = utcnow()
        return [
            {**w, "heartbeat_age_seconds": round((now - w["heartbeat_at"]).total_seconds(), 3)}
            for w in self.store.workers()
        ]

    # tenants and keys
    create_tenant = _of("_tenants", Tenants.create_tenant)
    tenant = _of("_tenants", Tenants.tenant)
    ensure_tenant = _of("_tenants", Tenants.ensure_tenant)
    me = _of("_tenants", Tenants.me)
    create_key = _of("_tenants", Tenants.create_key)
    revoke_key = _of("_tenants", Tenants.revoke_key)
    list_keys = _of("_tenants", Tenants.list_keys)
    authenticate = _of("_tenants", Tenants.authenticate)
    authenticate_key = _of("_tenants", Tenants.authenticate_key)
    key_tenant = _of("_tenants", Tenants.key_tenant)

    # job requests
    request_episode = _of("_requests", Requests.request_episode)
    add_requests = _of("_requests", Requests.add_requests)
    job = _of("_requests", Requests.job)
    jobs = _of("_requests", Requests.jobs)
    check_reply_to = _of("_requests", Requests.check_reply_to)
    episode_for_submission = _of("_requests", Requests.episode_for_submission)
    cancel = _of("_requests", Requests.cancel)
    retry = _of("_requests", Requests.retry)

    # episodes and their artifacts
    episode_for_url = _of("_episodes", Episodes.episode_for_url)
    episode_by_key = _of("_episodes", Episodes.episode_by_key)
    episodes = _of("_episodes", Episodes.episodes)
    library_feeds = _of("_episodes", Episodes.library_feeds)
    episode = _of("_episodes", Episodes.episode)
    transcript = _of("_episodes", Episodes.transcript)
    artifact_dir = _of("_episodes", Episodes.artifact_dir)

    # Podcasting 2.0 documents (platform/publishing.py)
    podcast_transcript = _of("_publishing", Publishing.podcast_transcript)
    chapters = _of("_publishing", Publishing.chapters)
    published_files = _of("_publishing", Publishing.published_files)
    enriched_feed = _of("_publishing", Publishing.enriched_feed)
    feed_items = _of("_publishing", Publishing.feed_items)

    # the catalog and subscriptions
    fetch_and_parse = _of("_catalog", Catalog.fetch_and_parse)
    add_feed = _of("_catalog", Catalog.add_feed)
    merge_feed = _of("_catalog", Catalog.merge_feed)
    feed = _of("_catalog", Catalog.feed)
    feeds = _of("_catalog", Catalog.feeds)
    delete_feed = _of("_catalog", Catalog.delete_feed)
    mark_seen = _of("_catalog", Catalog.mark_seen)
    subscribe = _of("_catalog", Catalog.subscribe)
    subscription = _of("_catalog", Catalog.subscription)
    subscriptions = _of("_catalog", Catalog.subscriptions)
    unsubscribe = _of("_catalog", Catalog.unsubscribe)
    import_opml = _of("_catalog", Catalog.import_opml)
    export_opml = _of("_catalog", Catalog.export_opml)
    subscribers = _of("_catalog", Catalog.subscribers)
    has_subscribers = _of("_catalog", Catalog.has_subscribers)
