"""The digest's time window and listening budget, parsed from what a user types.

``--since 7d`` / ``?since=7d`` (also ``24h``, ``2w``, ``90m``, a date or an ISO
timestamp), ``--until`` likewise (default: now), ``--budget 30m`` (also ``1h``,
``1h30m``, ``45s``, or a bare number of minutes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from podmill.errors import PodmillError
from podmill.timespec import InvalidTime, parse_time

DEFAULT_SINCE = "7d"
MAX_BUDGET_SECONDS = 7 * 24 * 3600.0
_BUDGET = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


class WindowError(PodmillError):
    """A ``since``/``until``/``budget`` value that cannot be read."""


@dataclass(frozen=True)
class Window:
    """Episodes published in ``[since, until)``."""

    since: datetime
    until: datetime

    @property
    def seconds(self) -> float:
        return (self.until - self.since).total_seconds()


def parse_window(
    since: str | None, until: str | None, now: datetime, *, prefix: str = "--"
) -> Window:
    """The window ``[since, until)``; ``since`` defaults to 7 days, ``until`` to ``now``.
    ``prefix`` is how errors name the options (``--`` on the command line, none in the API)."""
    try:
        end = parse_time(until, option=f"{prefix}until", now=now, end=True) if until else now
        start = parse_time(since or DEFAULT_SINCE, option=f"{prefix}since", now=now)
    except InvalidTime as exc:
        raise WindowError(str(exc)) from None
    if start >= end:
        raise WindowError(
            f"the window is empty: since {start.isoformat()} is not before until "
            f"{end.isoformat()} (check {prefix}since / {prefix}until)"
        )
    return Window(start.astimezone(UTC), end.astimezone(UTC))


def parse_budget(value: str | None, *, prefix: str = "--") -> float | None:
    """Listening budget in seconds: ``30m``, ``1h``, ``1h30m``, ``45s`` or minutes (``30``)."""
    if value is None or value.strip() == "":
        return None
    text = value.strip().lower().replace(" ", "")
    seconds: float | None = None
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text) * 60
    else:
        match = _BUDGET.fullmatch(text)
        if match and any(match.groups()):
            hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
            seconds = hours * 3600 + minutes * 60 + secs
    if seconds is None:
        raise WindowError(
            f"{prefix}budget {value!r} is not a duration: use e.g. 30m, 1h, 1h30m, 90s "
            "or a number of minutes"
        )
    if not 0 < seconds <= MAX_BUDGET_SECONDS:
        raise WindowError(f"{prefix}budget {value!r} must be more than 0 and at most 7 days")
    return seconds
