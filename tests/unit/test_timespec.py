"""--since / --until as users type them: one reading for run, submit, search and digest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from podmill.timespec import InvalidTime, optional_time, parse_time

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", NOW - timedelta(days=7)),
        ("24H", NOW - timedelta(hours=24)),
        ("2 w", NOW - timedelta(weeks=2)),
        ("90m", NOW - timedelta(minutes=90)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T08:30:00+01:00", datetime(2026, 11, 20, 7, 30, tzinfo=UTC)),
        ("2026-11-20T08:30", datetime(2026, 11, 20, 8, 30, tzinfo=UTC)),
    ],
)
def test_forms(text: str, expected: datetime) -> None:
    parsed = parse_time(text, now=NOW)
    assert parsed == expected and parsed.tzinfo == UTC


def test_a_bare_until_date_includes_that_day() -> None:
    assert parse_time("2026-11-20", now=NOW, end=True) == datetime(2026, 11, 21, tzinfo=UTC)
    # a timestamp is taken as given, end or not
    assert parse_time("2026-11-20T00:00", end=True) == datetime(2026, 11, 20, tzinfo=UTC)


def test_relative_times_count_back_from_the_clock() -> None:
    before = datetime.now(UTC)
    parsed = parse_time("1h")
    assert before - timedelta(hours=1) <= parsed <= datetime.now(UTC) - timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("last tuesday", "--until 'last tuesday' is not a time: use e.g. 7d"),
        ("7x", "--until '7x' is not a time"),
        ("2026-13-01", "--until '2026-13-01' is not a time"),
        ("99999999d", "--until '99999999d' reaches too far back"),
    ],
)
def test_bad_values_are_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(InvalidTime, match=message):
        parse_time(text, option="--until", now=NOW)


def test_blank_means_no_bound() -> None:
    assert optional_time(None) is None and optional_time("  ") is None
    assert optional_time("1d", now=NOW) == NOW - timedelta(days=1)
