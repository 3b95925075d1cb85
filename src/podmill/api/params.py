"""Path parameters shared by the routers, bounded so no value reaches the database
that it cannot store (a 64-bit overflow is a 422, not a 500)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

MAX_ID = 2**31 - 1

RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
EpisodeKey = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
