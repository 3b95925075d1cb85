"""Redis streams as ``reply_to``: ``redis://host:port/db#stream`` (docs/delivery.md).

A tenant may name only a Redis server the operator allowed (``server.stream_hosts``):
podmill never connects to an address a caller chose. A result is one ``XADD`` of the
fields in :func:`stream_fields`; the ``job_id`` field is the idempotency key (delivery is
at least once: a consumer keeps one result per ``job_id``).

The ``redis`` client is the ``streams`` extra, imported when a message is sent, so the
rest of podmill (and a check of a ``reply_to``) works without it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from podmill.errors import PodmillError, require
from podmill.settings import ServerSettings

STREAM_SCHEMES = ("redis", "rediss")
DEFAULT_PORT = 6379
# A stream name a consumer can type: no spaces, no control characters, at most 200.
_STREAM_NAME = re.compile(r"[A-Za-z0-9_.:{}\-]{1,200}")


class BadStream(PodmillError):
    """A ``reply_to`` stream URL podmill will not use (malformed, or its host is not allowed)."""


@dataclass(frozen=True)
class StreamTarget:
    """Where a result is XADDed: a Redis server, a database number and a stream key."""

    scheme: str
    host: str
    port: int
    db: int
    stream: str

    @property
    def server_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/{self.db}"

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"


def is_stream(url: str) -> bool:
    """Whether ``url`` names a Redis stream (else it is a webhook)."""
    return urlsplit(url).scheme.lower() in STREAM_SCHEMES


def parse_stream(url: str) -> StreamTarget:
    """``redis://host[:port][/db]#stream`` as a :class:`StreamTarget`, or :class:`BadStream`
    saying what is wrong. Credentials are refused: a password in a tenant's ``reply_to``
    would be stored and shown with the job."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    form = "redis://host:port/db#stream"
    if scheme not in STREAM_SCHEMES:
        raise BadStream(f"{url!r} is not a Redis stream URL ({form})")
    if parts.username or parts.password:
        raise BadStream(f"{form}: no credentials in the URL (the operator configures the server)")
    if not parts.hostname:
        raise BadStream(f"{url!r} names no host ({form})")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise BadStream(f"{url!r}: the port is not a number ({form})") from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise BadStream(f"{url!r}: the database {path!r} is not a number ({form})")
    if parts.query:
        raise BadStream(f"{url!r}: no query string ({form})")
    if not _STREAM_NAME.fullmatch(parts.fragment):
        raise BadStream(
            f"{url!r}: the stream name after '#' must be 1-200 letters, digits or _.:-{{}} ({form})"
        )
    return StreamTarget(scheme, parts.hostname.lower(), port, int(path or 0), parts.fragment)


def check_stream(url: str, settings: ServerSettings) -> StreamTarget:
    """A stream a tenant (or ``podmill submit``) may name: well formed, and on a server in
    ``server.stream_hosts``; else :class:`BadStream` with the allowed hosts."""
    target = parse_stream(url)
    allowed = {_hostport(entry) for entry in settings.stream_hosts}
    if target.hostport not in allowed:
        shown = ", ".join(sorted(allowed)) or "none"
        raise BadStream(
            f"Redis server {target.hostport} is not in server.stream_hosts (allowed: {shown}); "
            "the operator adds hosts there"
        )
    return target


def _hostport(entry: str) -> str:
    host, _, port = entry.strip().lower().rpartition(":")
    if not host or not port.isdigit():
        return f"{entry.strip().lower()}:{DEFAULT_PORT}"
    return f"{host}:{port}"


def stream_fields(result: dict[str, Any]) -> dict[str, str]:
    """The fields of the XADD of ``result`` (:func:`podmill.platform.results.result_of`):
    the keys a consumer filters on, flat, and the whole result as JSON."""
    job = result["job"]
    return {
        "event": result["event"],
        "job_id": str(job["id"]),
        "episode_key": job["episode_key"],
        "fingerprint": job["fingerprint"],
        "status": job["status"],
        "tenant": result.get("tenant") or "",
        "result": json.dumps(result, separators=(",", ":")),
    }


class StreamSender:
    """XADDs results; one connection pool per Redis server, made on first use."""

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout = timeout_seconds
        self._clients: dict[str, Any] = {}

    def send(self, url: str, result: dict[str, Any]) -> str:
        """XADD ``result`` to the stream ``url`` names; the entry id. Raises
        :class:`PodmillError` (a missing extra, a bad URL) or a Redis error."""
        target = parse_stream(url)
        client = self._client(target)
        entry = client.xadd(target.stream, stream_fields(result))
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    def _client(self, target: StreamTarget) -> Any:
        client = self._clients.get(target.server_url)
        if client is None:
            redis = require("redis", "streams", "reply_to Redis streams")
            client = redis.Redis.from_url(
                target.server_url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
            )
            self._clients[target.server_url] = client
        return client

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
