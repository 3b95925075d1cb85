"""``podmill digest``."""

from __future__ import annotations


def digest() -> None:
    """What happened across your feeds: new episodes, stories, a time-budgeted listen list."""
    raise NotImplementedError
