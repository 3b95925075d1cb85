"""Where the engine's "now" comes from: the system clock, or a hand-driven one for tests.

Every timing rule of the engine (leases, retry back-off, lock expiry, reaping) reads the
clock it was given, so tests move time forward instead of sleeping.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; safe to share between threads."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2024, 1, 1, tzinfo=UTC)
        self._now = _aware_utc(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        """Move forward by ``seconds``; returns the new time."""
        if seconds < 0:
            raise ValueError(f"cannot advance by {seconds} s: a clock only moves forward")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, dt: datetime) -> None:
        """Jump to ``dt`` (timezone-aware)."""
        with self._lock:
            self._now = _aware_utc(dt)


def _aware_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: give the clock a timezone-aware time")
    return dt.astimezone(UTC)
