"""A Store with a manual clock on the ``db_url`` database (tests/conftest.py: a SQLite
file or a fresh Postgres schema)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from podmill.engine import ManualClock, Store


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def jitter_seed() -> int:
    """The seed of the store's retry jitter, for tests that replay it."""
    return 1234


@pytest.fixture
def store(db_url: str, clock: ManualClock, jitter_seed: int) -> Iterator[Store]:
    """A Store on a fresh database with a ManualClock, a 30 s lease and seeded jitter."""
    with Store(db_url, clock=clock, lease_seconds=30.0, rng=random.Random(jitter_seed)) as s:
        yield s
