"""Turning user input into search filters: ``--since``/``--until`` times and ``--feed``
(an id, a URL, a feed key or a title). Shared by the CLI and ``GET /search``."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Connection, func, or_, select

from podmill.errors import PodmillError
from podmill.search.store import FEEDS


class InvalidTime(PodmillError):
    pass


_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_time(value: str | None, option: str = "--since", *, end: bool = False) -> datetime | None:
    """``7d`` / ``12h`` / ``2w`` (that long ago), ``YYYY-MM-DD`` or an ISO timestamp.

    A bare date is the start of that day (UTC), or with ``end=True`` (``--until``) the
    start of the next, so ``--until 2026-11-20`` includes the 20th.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    match = re.fullmatch(r"(\d+)\s*([hdw])", text.lower())
    if match:
        return datetime.now(UTC) - int(match.group(1)) * _UNITS[match.group(2)]
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text) + (timedelta(days=1) if end else timedelta())
            return datetime.combine(day, time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidTime(
            f"{option} {value!r} is not a time: use e.g. 7d, 12h, 2w, 2026-11-01 or "
            "2026-11-01T08:00:00+00:00"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
