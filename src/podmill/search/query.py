"""Turning user input into search filters: ``--since``/``--until`` times and ``--feed``
(an id, a URL, a feed key or a title). Shared by the CLI and ``GET /search``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, or_, select

from podmill.errors import PodmillError
from podmill.search.store import FEEDS
from podmill.timespec import InvalidTime, optional_time

__all__ = ["InvalidTime", "parse_time", "resolve_feed"]


def parse_time(value: str | None, option: str = "--since", *, end: bool = False) -> datetime | None:
    """``--since``/``--until`` as :mod:`podmill.timespec` reads them; blank means no bound."""
    return optional_time(value, option=option, end=end)


def resolve_feed(conn: Connection, value: str) -> int:
    """The id of the feed ``value`` names: an id, its URL, its feed key, or its title
    (exactly, ignoring case, or a unique part of it)."""
    text = value.strip()
    if text.isdigit():
        found = conn.execute(select(FEEDS.c.id).where(FEEDS.c.id == int(text))).scalar()
        if found is not None:
            return found
    exact = conn.execute(
        select(FEEDS.c.id).where(
            or_(
                FEEDS.c.url == text,
                FEEDS.c.feed_key == text,
                func.lower(FEEDS.c.title) == text.lower(),
            )
        )
    ).scalars()
    ids = sorted(set(exact))
    if len(ids) == 1:
        return ids[0]
    if not ids:
        like = f"%{text.lower()}%"
        ids = sorted(
            set(
                conn.execute(
                    select(FEEDS.c.id).where(func.lower(FEEDS.c.title).like(like))
                ).scalars()
            )
        )
    if len(ids) == 1:
        return ids[0]
    feeds = conn.execute(select(FEEDS.c.id, FEEDS.c.title).order_by(FEEDS.c.id)).all()
    known = "; ".join(f"{f.id}: {f.title}" for f in feeds[:10]) or "none yet"
    what = "matches several feeds" if ids else "matches no feed"
    raise PodmillError(f"--feed {value!r} {what}; give an id, URL or title (feeds: {known})")
