"""A worker's HTTP endpoints: ``GET /metrics`` (Prometheus text) and ``GET /health``.

Plain ``http.server`` in a daemon thread: a worker must not need FastAPI, and the two
answers are small. Each request runs in its own thread (``ThreadingHTTPServer``), so a
slow health probe (a database timing out) never blocks a scrape.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)


class WorkerEndpoints:
    """The running server; :meth:`close` stops it."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_worker_endpoints(
    host: str,
    port: int,
    metrics: Callable[[], tuple[bytes, str]],
    health: Callable[[], dict[str, Any]],
    *,
    metrics_token: str | None = None,
) -> WorkerEndpoints:
    """Serve ``metrics()`` at ``/metrics`` and ``health()`` at ``/health`` (503 when
    unhealthy) on ``host:port``, from a daemon thread. ``/metrics`` answers a local
    caller, or with ``metrics_token`` set only a request bearing it (obs/exposure.py)."""
    from podmill.obs.exposure import (
        is_local_caller,
        may_scrape_without_key,
        metrics_refused,
        status_only,
    )
    from podmill.obs.health import http_status

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    if not may_scrape_without_key(
                        self.client_address[0], self.headers, metrics_token
                    ):
                        self._refuse()
                        return
                    body, content_type = metrics()
                    self._send(200, body, content_type)
                elif path == "/health":
                    document = health()
                    if not is_local_caller(self.client_address[0], self.headers):
                        document = status_only(document)  # obs/exposure.py
                    self._send(
                        http_status(document), json.dumps(document).encode(), "application/json"
                    )
                else:
                    self._send(
                        404,
                        b'{"error": "not_found", "detail": "GET /metrics or /health"}',
                        "application/json",
                    )
            except Exception:  # an endpoint must answer, even when a check breaks
                log.exception("worker endpoint %s failed", path)
                # the error text stays in the log: it may name paths or hosts
                detail = json.dumps(
                    {"error": "internal", "detail": "the endpoint failed; see the worker's log"}
                ).encode()
                self._send(500, detail, "application/json")

        def _refuse(self) -> None:
            detail = {"error": "unauthorized", "detail": metrics_refused(admin_keys=False)}
            body = json.dumps(detail).encode()
            self._send(401, body, "application/json", {"WWW-Authenticate": "Bearer"})

        def _send(
            self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics endpoint: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="metrics-endpoint", daemon=True)
    thread.start()
    return WorkerEndpoints(server, thread)
