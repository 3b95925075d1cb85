"""What a stranger may see of health (docs/security.md, "What is exposed without a key").

``/health`` answers everybody with its status (and 503 when unhealthy), so load
balancers and orchestrators need no key. The checks behind it (database errors, disk
paths, worker counts, version and git sha) are shown to a caller on this machine, or
with an admin key on the API. A request that carries a forwarding header came through a
proxy and counts as remote even when the proxy itself connects from loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


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
