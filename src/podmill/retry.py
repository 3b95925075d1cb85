"""How long to wait before trying again: one backoff rule and one ``Retry-After`` reader.

Every retry loop in podmill (engine steps, downloads, webhooks, the feed poller, the LLM
client, a worker waiting for its database or for disk space) reads :class:`Backoff`; every
HTTP client that honours ``Retry-After`` reads :func:`parse_retry_after`.

The rule: the ``n``-th retry waits ``min(cap, base × factor^(n−1))``; with ``jitter`` it
waits a uniform draw from the upper half of that (*equal jitter*). Equal jitter spreads
retries from many clients that failed together, never exceeds ``cap`` and never retries
at once (full jitter can draw ~0 and hammer a server that just failed). Schedules a user
reads off a row (a feed's ``next_poll_at``, a webhook's next try) and a worker's own pause
are exact: ``jitter=False``.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# The longest one outbound call (a download, an LLM request) waits between its tries;
# a server that asks for longer is not waited for (RetryAfterTooLong).
MAX_RETRY_AFTER_SECONDS = 60.0

_DELTA_SECONDS = re.compile(r"\d+(\.\d+)?")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``base`` seconds before the first retry, times ``factor`` per
    retry, at most ``cap``, with equal jitter unless ``jitter`` is false."""

    base: float
    factor: float = 2.0
    cap: float = math.inf
    jitter: bool = True

    def ceiling(self, attempt: int) -> float:
        """The most the wait after failed try ``attempt`` (counting from 1) can be."""
        try:
            grown = self.base * self.factor ** max(0, attempt - 1)
        except OverflowError:  # a feed failing for years: its count outgrows a float
            grown = math.inf
        return min(self.cap, grown)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed try ``attempt`` (counting from 1); ``rng`` draws
        the jitter (inject a seeded one to replay it)."""
        ceiling = self.ceiling(attempt)
        if not self.jitter:
            return ceiling
        return ceiling * (rng or random).uniform(0.5, 1.0)


class RetryAfterTooLong(Exception):
    """A server asked to wait longer than the caller waits: give up on this call."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the server asked to wait {seconds:.0f} s")
        self.seconds = seconds


def parse_retry_after(
    value: str | None, now: datetime, cap: float = MAX_RETRY_AFTER_SECONDS
) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait: delta-seconds (``120``; a decimal
    fraction is accepted) or an HTTP-date (``Wed, 21 Oct 2015 07:28:00 GMT``, read
    against ``now``; a date in the past is 0). ``None`` when the header is absent or
    unreadable. More than ``cap`` raises :class:`RetryAfterTooLong`.
    """
    value = (value or "").strip()
    if not value:
        return None
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = max(0.0, (when - now).total_seconds())
    if seconds > cap:
        raise RetryAfterTooLong(seconds)
    return seconds
