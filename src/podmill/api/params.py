"""Parameters shared by the routers, bounded so no value reaches the database that it
cannot store (a 64-bit overflow is a 422, not a 500), and URLs checked when they are
given, not when podmill first fetches them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, Field

from podmill.feeds.urls import MAX_URL_LENGTH, fetchable_url

MAX_ID = 2**31 - 1

RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
EpisodeKey = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


FetchableUrl = Annotated[
    str, Field(min_length=1, max_length=MAX_URL_LENGTH), AfterValidator(fetchable_url)
]
