"""Helpers for the API tests (tests/api): a tenant's client, a live feed, error checks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from podmill.platform import Platform
from podmill.settings import Settings

from support.feeds import item, rss
from support.httpserver import RequestHandler, TestHTTPServer
from support.paths import DEMO
from support.workers import wait_for


def assert_error(response: Any, status: int, error: str | None = None) -> dict[str, Any]:
    """``response`` is ``status`` with the JSON error shape ``{"error", "detail"}``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert body["detail"], body
    if error is not None:
        assert body["error"] == error, body
    return body


@dataclass
class Caller:
    """A tenant with a key, and a TestClient that sends it."""

    name: str
    key: str
    client: Any

    def get(self, url: str, **kw: object):  # type: ignore[no-untyped-def]
        return self.client.get(url, headers=self._auth(kw), **kw)

    def post(self, url: str, **kw: object):  # type: ignore[no-untyped-def]
        return self.client.post(url, headers=self._auth(kw), **kw)

    def delete(self, url: str, **kw: object):  # type: ignore[no-untyped-def]
        return self.client.delete(url, headers=self._auth(kw), **kw)

    def _auth(self, kw: dict[str, object]) -> dict[str, str]:
        headers = dict(kw.pop("headers", None) or {})  # type: ignore[call-overload]
        return {"Authorization": f"Bearer {self.key}", **headers}


class LiveFeed:
    """A feed on the test HTTP server that can grow, fail and answer conditional GETs.

    Items point at the demo MP3 served beside it. The ETag changes when the items do;
    a request carrying the current ETag gets 304. ``failing = True`` answers 500.
    """

    def __init__(self, server: TestHTTPServer, path: str = "/feed.xml") -> None:
        self.server = server
        self.path = path
        self.items: list[str] = []
        self.failing = False
        self.not_modified = 0
        self.version = 0
        self.audio_url = server.add_file(f"{path}.audio/ep.mp3", DEMO / "sonnet001.mp3")
        self.url = server.add_route(path, self._serve)

    def add_item(self, n: int) -> str:
        """Item ``n`` (guid ``item-n``), newest last; returns its audio URL."""
        url = self.server.add_file(f"{self.path}.audio/ep{n}.mp3", DEMO / "sonnet001.mp3")
        date = f"Mon, {n + 1:02d} Nov 2026 10:00:00 GMT"
        self.items.append(item(f"item-{n}", f"Episode {n}", url, date=date))
        return url

    @property
    def etag(self) -> str:
        return f'"v{len(self.items)}.{self.version}"'

    def touch(self) -> None:
        """A new ETag for the same items: the next poll reads the whole feed again."""
        self.version += 1

    def _serve(self, req: RequestHandler) -> None:
        if self.failing:
            req.send_body(b"broken\n", "text/plain", status=500)
        elif req.headers.get("If-None-Match") == self.etag:
            self.not_modified += 1
            req.send_body(b"", None, status=304, headers={"ETag": self.etag})
        else:
            req.send_body(rss(self.items), "application/rss+xml", headers={"ETag": self.etag})


def make_settings(tmp_path: Path, db_url: str, **server: object) -> Settings:
    """Hermetic settings: local servers allowed, quick retries, small upload cap."""
    return Settings(
        data_dir=tmp_path / "data",
        db=db_url,
        allow_private_networks=True,
        download={"max_attempts": 2, "backoff_seconds": 0.01, "read_timeout": 2},
        server={
            "max_upload_bytes": 2 * 1024 * 1024,
            "poll_interval_seconds": 600,
            "poll_error_backoff_seconds": 60,
            "backfill": 1,
            **server,
        },
    )


def make_caller(platform: Platform, client: Any, name: str, admin: bool = False) -> Caller:
    platform.create_tenant(name, admin=admin)
    _key_id, key = platform.create_key(name)
    return Caller(name, key, client)


class Receiver:
    """A webhook endpoint: records each POST, answers the next status in ``answers``
    (200 once they run out)."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((dict(self.headers.items()), body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------- a real server process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """``podmill serve`` in a subprocess; ``url`` is its base URL."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def podmill_env(env: dict[str, str | None] | None = None) -> dict[str, str]:
    """The environment of a test's podmill process: local feeds allowed, quick polls;
    a ``None`` in ``env`` unsets that variable."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PODMILL_")}
    full_env.update(
        {
            "PODMILL_ALLOW_PRIVATE_NETWORKS": "true",
            "PODMILL_SERVER__POLL_CHECK_SECONDS": "0.1",
            "PODMILL_LOG_LEVEL": "INFO",
            "COLUMNS": "200",
        }
    )
    full_env.update(env or {})
    return {k: v for k, v in full_env.items() if v is not None}


def start_server(
    db_url: str,
    data_dir: Path,
    log_path: Path,
    env: dict[str, str | None] | None = None,
    args: tuple[str, ...] = (),
) -> ServerProcess:
    """Start ``podmill serve`` on a free loopback port and wait until /health answers."""
    port = free_port()
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "podmill",
                "serve",
                "--port",
                str(port),
                "--db",
                db_url,
                "--data-dir",
                str(data_dir),
                *args,
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=podmill_env(env),
        )
    server = ServerProcess(proc, f"http://127.0.0.1:{port}", log_path)

    def healthy() -> bool:
        assert proc.poll() is None, f"podmill serve exited:\n{server.log()}"
        try:
            # degraded still serves (e.g. no worker yet while a feed's backlog is queued)
            status = httpx.get(server.url + "/health", timeout=2).json()["status"]
            return status in ("healthy", "degraded")
        except httpx.HTTPError:
            return False

    wait_for(healthy, 60, "podmill serve to answer /health", detail=server.log)
    return server
