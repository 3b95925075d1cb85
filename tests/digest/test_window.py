"""--since / --until / --budget: what a user types, and one clear error for the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from podmill.digest.window import WindowError, parse_budget, parse_window

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("7d", NOW - timedelta(days=7)),
        ("24h", NOW - timedelta(hours=24)),
        ("2w", NOW - timedelta(weeks=2)),
        ("90m", NOW - timedelta(minutes=90)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T08:30:00+01:00", datetime(2026, 11, 20, 7, 30, tzinfo=UTC)),
    ],
)
def test_since_forms(since: str, expected: datetime) -> None:
    window = parse_window(since, None, NOW)
    assert window.since == expected
    assert window.until == NOW


def test_until_and_default_since() -> None:
    window = parse_window(None, "1d", NOW)
    assert window.until == NOW - timedelta(days=1)
    assert window.since == NOW - timedelta(days=7)


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("last week", None, "--since 'last week' is not a time: use e.g. 7d"),
        ("7x", None, "--since '7x' is not a time"),
        ("7d", "yesterday", "--until 'yesterday' is not a time"),
        ("1d", "2d", "the window is empty"),
        ("99999999d", None, "reaches too far back"),
    ],
)
def test_bad_window_is_one_clear_error(since: str, until: str | None, message: str) -> None:
    with pytest.raises(WindowError, match=message):
        parse_window(since, until, NOW)


def test_api_errors_name_the_parameter_without_dashes() -> None:
    with pytest.raises(WindowError, match=r"^since 'soon' is not a time"):
        parse_window("soon", None, NOW, prefix="")


@pytest.mark.parametrize(
    ("budget", "seconds"),
    [("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("90s", 90), ("45", 2700), ("1.5h", 5400)],
)
def test_budget_forms(budget: str, seconds: float) -> None:
    assert parse_budget(budget) == seconds


@pytest.mark.parametrize("budget", ["soon", "0m", "-5m", "30 minutes", "8d", "m"])
def test_bad_budget_is_one_clear_error(budget: str) -> None:
    with pytest.raises(WindowError, match=r"--budget .*(not a duration|more than 0)"):
        parse_budget(budget)


def test_no_budget_is_none() -> None:
    assert parse_budget(None) is None
