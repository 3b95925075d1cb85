"""Parameters shared by the routers, bounded so no value reaches the database that it
cannot store (a 64-bit overflow is a 422, not a 500), and URLs checked when they are
given, not when podmill first fetches them."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Path
from pydantic import AfterValidator, Field

MAX_ID = 2**31 - 1

RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
EpisodeKey = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def fetchable_url(url: str) -> str:
    """``url`` if podmill could send a request to it: http(s), a host that is a valid
    DNS name or IP literal, a port in 1-65535, no spaces or control characters. A URL
    that would only fail at download time is refused here, as a 422 when it is given."""
    shown = url if len(url) <= 100 else url[:100] + "…"
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ValueError(
            f"URL {shown!r} contains a space or a control character; percent-encode it"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", …
        raise ValueError(f"URL {shown!r} is malformed ({exc}); give an http(s):// URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"URL {shown!r} must start with http:// or https://")
    host = parts.hostname
    if not host:
        raise ValueError(f"URL {shown!r} has no host; give a full http(s):// URL")
    if port == 0:
        raise ValueError(f"URL {shown!r} has port 0; give a port in 1-65535 or none")
    if parts.netloc.rpartition("@")[2].startswith("["):
        if not _IPV6_NETLOC.fullmatch(parts.netloc.rpartition("@")[2]) or not _is_ip(host):
            raise ValueError(f"URL {shown!r} has an invalid IPv6 host; write it as [::1]:PORT")
        return url
    if not _valid_hostname(host):
        raise ValueError(
            f"URL {shown!r} has an invalid host {host[:80]!r}: labels of letters, digits and "
            "hyphens, 63 characters at most, none empty"
        )
    return url


_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


_IPV6_NETLOC = re.compile(r"\[[0-9A-Fa-f:.]+(%[\w.~-]+)?\](:\d+)?")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True


def _valid_hostname(host: str) -> bool:
    try:
        ascii_host = host.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:  # an empty or over-long label, a character IDNA refuses
        return False
    labels = ascii_host.split(".")
    return (
        len(ascii_host) <= 253
        and all(_LABEL.fullmatch(label.lower()) for label in labels)
        and all(_valid_a_label(label) for label in labels if label.lower().startswith("xn--"))
    )


def _valid_a_label(label: str) -> bool:
    # "xn--" promises punycode; one that does not decode fails only at download time
    try:
        label.encode("ascii").decode("idna")
    except UnicodeError:
        return False
    return True


FetchableUrl = Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(fetchable_url)]


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
        max_length=4000,
        description="where the job's result goes when it finishes: an https:// webhook "
        "(HMAC-signed) or a Redis stream redis://host:port/db#stream on a server in "
        "server.stream_hosts (docs/delivery.md)",
    ),
    AfterValidator(_reply_to),
]

