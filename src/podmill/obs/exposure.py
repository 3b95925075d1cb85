"""What a stranger may see of health (docs/security.md, "What is exposed without a key").

``/health`` answers everybody with its status (and 503 when unhealthy), so load
balancers and orchestrators need no key. The checks behind it (database errors, disk
paths, worker counts, version and git sha) are shown to a caller on this machine, or
with an admin key on the API. A request that carries a forwarding header came through a
proxy and counts as remote even when the proxy itself connects from loopback.

``/metrics`` is not for strangers either: with ``server.metrics_token`` set, a scrape
sends it as ``Authorization: Bearer TOKEN`` (from anywhere, loopback included); without
one, only a local caller may scrape. The API also lets an admin's key scrape.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podmill.settings import Settings

FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")

METRICS_REFUSED = (
    "GET /metrics needs 'Authorization: Bearer TOKEN' with the value of server.metrics_token "
    "(PODMILL_SERVER__METRICS_TOKEN){admin}; without a token set, only callers on this "
    "machine may scrape (docs/security.md)"
)


def is_local_caller(peer: str | None, headers: Mapping[str, str]) -> bool:
    """Whether the peer address is loopback and no proxy forwarded the request."""
    if any(headers.get(name) for name in FORWARDING_HEADERS):
        return False
    try:
        return ipaddress.ip_address((peer or "").strip("[]")).is_loopback
    except ValueError:
        return False


def status_only(document: dict[str, Any]) -> dict[str, Any]:
    """The health document a stranger gets: its overall status, nothing else."""
    return {"status": document["status"]}


def metrics_token(settings: Settings) -> str | None:
    """``server.metrics_token``, or ``None`` when it is unset or blank."""
    secret = settings.server.metrics_token
    return (secret.get_secret_value().strip() or None) if secret is not None else None


def metrics_token_sent(headers: Mapping[str, str], token: str | None) -> bool:
    """Whether the request carries ``Authorization: Bearer TOKEN`` with this token."""
    if not token:
        return False
    scheme, _, sent = (headers.get("authorization") or "").strip().partition(" ")
    # compare_digest: how long a wrong guess took says nothing about the token
    return scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), token.encode())


def may_scrape_without_key(peer: str | None, headers: Mapping[str, str], token: str | None) -> bool:
    """``/metrics`` before any API key is looked at: the token when one is set (a proxy's
    loopback connection must not open it), else a local caller."""
    if token:
        return metrics_token_sent(headers, token)
    return is_local_caller(peer, headers)


def metrics_refused(*, admin_keys: bool) -> str:
    """The one-line 401 detail of a refused scrape (the API also takes an admin's key)."""
    return METRICS_REFUSED.format(admin=" or an admin's API key" if admin_keys else "")
