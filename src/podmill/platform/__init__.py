"""The platform: tenants, job requests, the catalog (with its poller) and episodes, as
the API, the background passes and the digest use them. No HTTP here (``podmill.api``
maps it to routes); :class:`Platform` (``service.py``) composes the parts."""

from podmill.platform.episodes import visible_episodes
from podmill.platform.errors import Conflict, Invalid, NotFound, PlatformError
from podmill.platform.service import Platform
from podmill.platform.tenants import Tenant

__all__ = [
    "Conflict",
    "Invalid",
    "NotFound",
    "Platform",
    "PlatformError",
    "Tenant",
    "visible_episodes",
]
