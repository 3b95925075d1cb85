"""One call that makes a digest from a database and a data directory: what the CLI,
``GET /digest`` and the weekly schedule share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from podmill.digest.build import DigestOptions, build_digest
from podmill.digest.collect import collect, feed_choices
from podmill.digest.window import Window


def make_digest(
    engine: Engine,
    window: Window,
    artifact_dir: Callable[[str], Path | None],
    now: datetime,
    *,
    options: DigestOptions | None = None,
    feeds: Sequence[str] = (),
    visible: Any = None,
    prefix: str = "--",
) -> dict[str, Any]:
    """The digest of the episodes in ``window`` that ``visible`` admits (all if ``None``),
    limited to ``feeds`` (ids, keys, URLs or titles) if any are given."""
    options = options or DigestOptions()
    with engine.connect() as conn:
        feed_ids = feed_choices(conn, feeds, visible, prefix=prefix) if feeds else None
        episodes, pending = collect(conn, window, artifact_dir, feed_ids=feed_ids, visible=visible)
    if feed_ids:
        options = replace(options, feed_ids=tuple(feed_ids))
    return build_digest(episodes, window, now, options, not_processed=pending)
