#!/usr/bin/env python3
"""Container health probe for every podmill role: GET a /health URL, exit 0 or 1.

Usage: ``podmill-healthcheck [URL]`` (default ``$PODMILL_HEALTH_URL``, else the API's
``http://127.0.0.1:8000/health``). podmill answers 200 for ``healthy`` and ``degraded``
and 503 for ``unhealthy``, so only an unhealthy process (database unreachable, disk full)
or one that does not answer fails the check. ``degraded`` (no workers, backlog, low disk)
is left to the Prometheus alerts: the container itself is not what is wrong.

Standard library only, so the probe works in the slim runtime image without podmill's
dependencies loaded, and prints one line Docker keeps in ``docker inspect`` output.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/health"
TIMEOUT_SECONDS = 4.0


def probe(url: str, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """(ok, one-line reason) for one GET of ``url``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read(65536)
            code = response.status
    except urllib.error.HTTPError as exc:  # 503 unhealthy, or any other error answer
        detail = exc.read(65536).decode("utf-8", "replace")
        return False, f"{url}: HTTP {exc.code} {_status_of(detail)}".rstrip()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{url}: no answer ({reason})"
    return 200 <= code < 300, f"{url}: HTTP {code} {_status_of(body.decode('utf-8', 'replace'))}"


def _status_of(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    return str(data.get("status", "")) if isinstance(data, dict) else ""


def main(argv: list[str]) -> int:
    """Entry point: probe the URL given (or the default) and print why."""
    url = argv[1] if len(argv) > 1 else os.environ.get("PODMILL_HEALTH_URL") or DEFAULT_URL
    ok, reason = probe(url)
    print(("ok: " if ok else "failing: ") + reason)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
