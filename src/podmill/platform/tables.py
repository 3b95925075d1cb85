"""The tables the platform reads and writes, as SQLAlchemy Core tables
(``podmill.storage.models`` declares them)."""

from __future__ import annotations

from podmill.storage.models import (
    ApiKeyRow,
    EpisodeRow,
    FeedItemRow,
    FeedPollRow,
    FeedRow,
    JobEventRow,
    JobReplyRow,
    JobRequestRow,
    JobRow,
    SubscriptionRow,
    TenantRow,
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
REPLIES = JobReplyRow.__table__
EVENTS = JobEventRow.__table__
