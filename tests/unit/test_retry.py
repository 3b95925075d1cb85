"""The one backoff rule and the one Retry-After reader (podmill.retry)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from podmill.retry import Backoff, RetryAfterTooLong, parse_retry_after

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_equal_jitter_stays_in_the_upper_half_and_under_the_cap() -> None:
    backoff = Backoff(1.0, cap=10.0)
    rng = random.Random(7)
    for attempt in range(1, 30):
        ceiling = min(10.0, 2.0 ** (attempt - 1))
        assert backoff.ceiling(attempt) == ceiling
        assert ceiling / 2 <= backoff.delay(attempt, rng) <= ceiling


def test_without_jitter_the_schedule_is_exact_and_survives_a_huge_count() -> None:
    backoff = Backoff(60.0, cap=6 * 3600.0, jitter=False)
    assert [backoff.delay(n) for n in (1, 2, 3)] == [60.0, 120.0, 240.0]
    # a feed failing every 6 h for a year: 60 × 2^1459 is no float
    assert backoff.delay(1460) == 6 * 3600.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("120", NOW, cap=300) == 120.0
    assert parse_retry_after(" 1.5 ", NOW, cap=300) == 1.5
    in_90 = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(in_90, NOW, cap=300) == 90.0
    past = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(past, NOW, cap=300) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "inf", "nan", "1e3"])
def test_an_absent_or_unreadable_retry_after_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW, cap=300) is None


def test_a_retry_after_over_the_cap_is_refused_whatever_its_form() -> None:
    with pytest.raises(RetryAfterTooLong, match="asked to wait 3600 s") as caught:
        parse_retry_after("3600", NOW, cap=60)
    assert caught.value.seconds == 3600.0
    tomorrow = format_datetime(NOW + timedelta(days=1), usegmt=True)
    with pytest.raises(RetryAfterTooLong, match="asked to wait 86400 s"):
        parse_retry_after(tomorrow, NOW, cap=60)
