"""One tenant cannot freeze the API by subscribing to feeds on a server that never
answers. anyio runs every sync route (``/health``, ``GET /jobs``) on one threadpool of
40 threads; before, each validating fetch held one of them, so 40 slow subscribes left
none. Now a tenant runs at most ``server.validations_per_tenant`` at once (more: 429
with Retry-After), on threads of their own, each within a short overall deadline.

A real ``podmill serve`` process; the slow feed server holds every request until the
test releases it, so the prompt answers provably came while the fetches were hanging.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi", reason="pip install 'podmill[server]'")

import anyio
from anyio.to_thread import current_default_thread_limiter

from podmill.api.errors import status_of
from podmill.platform import Invalid, Platform
from podmill.settings import Settings

from support.api import ServerProcess, start_server
from support.feeds import item, rss
from support.httpserver import RequestHandler, TestHTTPServer
from support.rawserver import RawServer, trickle
from support.workers import wait_for

SAFETY = 30.0
REQUEST_THREADS = 40  # anyio's default thread limiter, shared by every sync route
ATTEMPTS = REQUEST_THREADS + 5


class HangingFeeds:
    """Feeds at ``/slow.xml?n=…`` that answer only once :attr:`release` is set."""

    def __init__(self, server: TestHTTPServer) -> None:
        self.release = threading.Event()
        self.held = 0
        self._lock = threading.Lock()
        self.feed = rss([item("only", "Only", server.url_for("/slow/ep.mp3"))])
        self.base = server.add_route("/slow.xml", self._serve)

    def _serve(self, req: RequestHandler) -> None:
        with self._lock:
            self.held += 1
        while not self.release.wait(0.05):
            if req.stopping.is_set():
                return
        req.send_body(self.feed, "application/rss+xml")


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, Platform]]:
    server = start_server(
        db_url,
        tmp_path / "data",
        tmp_path / "serve.log",
        env={"PODMILL_SERVER__VALIDATION_TIMEOUT_SECONDS": "120"},  # only the release ends them
    )
    platform = Platform(Settings(db=db_url, data_dir=tmp_path / "data"))
    try:
        yield server, platform
    finally:
        server.stop()
        platform.close()


async def _request_threads() -> float:
    return current_default_thread_limiter().total_tokens


def key(platform: Platform, tenant: str) -> str:
    platform.create_tenant(tenant)
    return platform.create_key(tenant)[1]


# POST /jobs {"url"} fetches a URL without an audio file name to see what it is (here a
# feed: a 422 once released); subscribing fetches the feed (201 once released).
ROUTES = [("/subscriptions", 201), ("/jobs", 422)]


@pytest.mark.parametrize(("route", "released"), ROUTES, ids=[r for r, _ in ROUTES])
def test_slow_fetches_do_not_hold_health_or_reads(
    served: tuple[ServerProcess, Platform], http_server: TestHTTPServer, route: str, released: int
) -> None:
    assert anyio.run(_request_threads) == REQUEST_THREADS
    server, platform = served
    feeds = HangingFeeds(http_server)
    mallory = server.client(key(platform, "mallory"))
    alice = server.client(key(platform, "alice"))
    stranger = httpx.Client(base_url=server.url, timeout=SAFETY)

    def subscribe(n: int) -> httpx.Response:
        return mallory.post(route, json={"url": f"{feeds.base}?n={n}"})

    with ThreadPoolExecutor(ATTEMPTS) as pool:
        try:
            calls: list[Future[httpx.Response]] = [
                pool.submit(subscribe, n) for n in range(ATTEMPTS)
            ]
            wait_for(
                lambda: sum(c.done() for c in calls) == ATTEMPTS - 2,
                SAFETY,
                "all but two requests to be refused",
                detail=server.log,
            )
            refused = [c.result() for c in calls if c.done()]
            assert {r.status_code for r in refused} == {429}, refused[0].text
            assert all(r.headers.get("Retry-After") == "5" for r in refused)
            assert "server.validations_per_tenant" in refused[0].json()["detail"]
            wait_for(lambda: feeds.held == 2, SAFETY, "two fetches to reach the feed server")

            # While mallory's two fetches hang: health, and another tenant's reads.
            for _ in range(3):
                assert stranger.get("/health").status_code in (200, 503)
                assert alice.get("/jobs").status_code == 200
                assert alice.get("/episodes").status_code == 200
                assert alice.get("/subscriptions").json() == []
            hanging = [c for c in calls if not c.done()]
            assert len(hanging) == 2, "the two fetches should still hang"
        finally:
            feeds.release.set()
        held = [c.result(timeout=SAFETY) for c in hanging]
    assert [r.status_code for r in held] == [released] * 2, [r.text for r in held]
    assert subscribe(ATTEMPTS).status_code == released  # the slots are free again


def test_the_validating_fetch_has_a_short_overall_deadline(tmp_path: Path, db_url: str) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        db=db_url,
        allow_private_networks=True,
        server={"validation_timeout_seconds": 1},
    )
    platform = Platform(settings)
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n<rss>"
    try:
        with RawServer(trickle(answer)) as slow, pytest.raises(Invalid) as caught:
            platform.fetch_and_parse(slow.url_for("/feed.xml"))
    finally:
        platform.close()
    assert status_of(caught.value) == 422
    assert "server.validation_timeout_seconds = 1 s overall" in caught.value.detail
