"""Points in time as users type them: ``7d``, ``24h``, ``2w``, ``90m`` (that long ago), a
date (``2026-11-01``) or an ISO timestamp. The one reading of ``--since`` / ``--until``
for ``run``, ``submit``, ``search``, ``digest`` and the API's ``since`` / ``until``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from podmill.errors import PodmillError

_RELATIVE = re.compile(r"(\d+)\s*([mhdw])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1),
          "w": timedelta(weeks=1)}  # fmt: skip
_MAX_DAYS = 36400  # keeps timedelta and the database in range


class InvalidTime(PodmillError):
    """A ``since`` / ``until`` value that is not a time."""


def parse_time(
    value: str, *, option: str = "--since", now: datetime | None = None, end: bool = False
) -> datetime:
    """The aware UTC time ``value`` names.

    ``7d`` / ``24h`` / ``2w`` / ``90m`` count back from ``now`` (default: the current
    time). A bare date is the start of that day (UTC), or with ``end=True`` (an
    ``--until``) the start of the next, so ``--until 2026-11-20`` includes the 20th. A
    timestamp without a zone is UTC. ``option`` is how errors name the value.
    """
    text = value.strip()
    match = _RELATIVE.fullmatch(text.lower())
    if match:
        delta = int(match.group(1)) * _UNITS[match.group(2)]
        if delta > timedelta(days=_MAX_DAYS):
            raise InvalidTime(f"{option} {value!r} reaches too far back: use at most {_MAX_DAYS}d")
        return (now or datetime.now(UTC)) - delta
    try:
        if _DATE.fullmatch(text):
            day = date.fromisoformat(text) + (timedelta(days=1) if end else timedelta())
            return datetime.combine(day, time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidTime(
            f"{option} {value!r} is not a time: use e.g. 7d, 24h, 2w, 2026-11-01 or "
            "2026-11-01T08:00:00+00:00"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def optional_time(
    value: str | None, *, option: str = "--since", now: datetime | None = None, end: bool = False
) -> datetime | None:
    """:func:`parse_time`, with ``None`` or a blank value meaning no bound."""
    if value is None or not value.strip():
        return None
    return parse_time(value, option=option, now=now, end=end)


def clock(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
