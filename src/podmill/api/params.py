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


def reply_to_url(url: str) -> str:
    """``url`` if it has the form of a ``reply_to``: a webhook podmill could call
    (:func:`fetchable_url`) or a Redis stream, ``redis://host:port/db#stream``. Whether
    podmill may use it (a public address, an allowed Redis server) is the platform's
    :meth:`~podmill.platform.Platform.check_reply_to`."""
    from podmill.platform.streams import is_stream, parse_stream

    if is_stream(url):
        parse_stream(url)  # BadStream is a ValueError's message for pydantic below
        return url
    return fetchable_url(url)


def _reply_to(url: str) -> str:
    from podmill.errors import PodmillError

    try:
        return reply_to_url(url)
    except PodmillError as exc:
        raise ValueError(str(exc)) from None


ReplyTo = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="where the job's result goes when it finishes: an https:// webhook "
        "(HMAC-signed) or a Redis stream redis://host:port/db#stream on a server in "
        "server.stream_hosts (docs/delivery.md)",
    ),
    AfterValidator(_reply_to),
]
