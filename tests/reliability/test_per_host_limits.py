"""Polls and webhook deliveries run concurrently with a per-host limit: one very slow
host does not delay another tenant's feed or webhook. Real HTTP servers, a real
database; the slow host hangs until the test releases it, so the fast one provably
finished while the slow one was still hanging (no timing decides the test).

The two hosts are told apart by name: ``localhost`` (slow) and ``127.0.0.1`` (fast).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="pip install 'podmill[server]'")

from fastapi.testclient import TestClient

from podmill.api.app import create_app
from podmill.api.webhooks import Notifier
from podmill.engine.clock import ManualClock
from podmill.pipeline.dag import STAGE_NAMES
from podmill.platform import Platform
from podmill.platform.hostpool import HostPool
from podmill.platform.poller import Poller
from podmill.settings import Settings

from support.api import Caller, LiveFeed, Receiver, make_caller, make_settings
from support.feeds import item, rss
from support.httpserver import RequestHandler, TestHTTPServer
from support.rawserver import RawServer, hang_until, trickle
from support.workers import wait_for

SAFETY = 30.0


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    base = make_settings(tmp_path, db_url, webhook_timeout_seconds=2)
    # Reads may wait long: only the test's release ends the slow host's hang.
    download = base.download.model_copy(update={"read_timeout": 60.0, "feed_timeout": 120.0})
    return base.model_copy(update={"download": download})


@pytest.fixture
def service(settings: Settings) -> Iterator[tuple[Platform, TestClient]]:
    platform = Platform(settings)
    with TestClient(create_app(settings)) as client:
        yield platform, client
    platform.close()


class SlowFeed:
    """A feed on ``localhost`` that answers at once until :attr:`hang` is set; then
    each request waits for :attr:`release`."""

    def __init__(self, server: TestHTTPServer) -> None:
        self.hang = False
        self.entered = threading.Event()
        self.release = threading.Event()
        self.feed = rss([item("slow-1", "Slow 1", server.url_for("/slow/1.mp3"))])
        server.add_route("/slow.xml", self._serve)
        self.url = server.url_for("/slow.xml").replace("127.0.0.1", "localhost")

    def _serve(self, req: RequestHandler) -> None:
        if self.hang:
            self.entered.set()
            while not self.release.wait(0.05):
                if req.stopping.is_set():
                    return
        req.send_body(self.feed, "application/rss+xml")


def test_a_hanging_feed_host_does_not_delay_another_tenants_feed(
    service: tuple[Platform, TestClient], http_server: TestHTTPServer
) -> None:
    platform, client = service
    alice = make_caller(platform, client, "alice")
    bob = make_caller(platform, client, "bob")
    slow = SlowFeed(http_server)
    fast = LiveFeed(http_server, "/fast.xml")
    fast.add_item(1)
    # Alice's slow feed is due first: a poller going one feed at a time would wait on it.
    assert alice.post("/subscriptions", json={"url": slow.url}).status_code == 201
    assert bob.post("/subscriptions", json={"url": fast.url}).status_code == 201
    clock = ManualClock(datetime.now(UTC))
    poller = Poller(platform, clock=clock)
    slow.hang = True
    new_audio = fast.add_item(2)
    clock.advance(601)

    slow_poll, fast_poll = poller.start_due()
    try:
        assert slow.entered.wait(SAFETY), "the slow feed was never polled"
        outcome = fast_poll.result(timeout=SAFETY)
        assert not slow_poll.done(), "the slow host answered: the test proves nothing"
        assert outcome.status == "new" and len(outcome.enqueued) == 1
        assert platform.episode_for_url(_tenant(platform, "bob"), new_audio) is not None
        assert outcome.enqueued[0] in [job["id"] for job in bob.get("/jobs").json()]
    finally:
        slow.release.set()
    assert slow_poll.result(timeout=SAFETY).status == "new"


def test_at_most_per_host_limit_calls_to_one_host_at_once() -> None:
    pool = HostPool("test", workers=6, per_host=2)
    release = threading.Event()
    started: list[str] = []
    lock = threading.Lock()

    def call(host: str) -> str:
        with lock:
            started.append(host)
        release.wait(SAFETY)
        return host

    slow = [pool.submit("slow.example", lambda: call("slow")) for _ in range(5)]
    fast = pool.submit("fast.example", lambda: "fast")
    assert fast.result(timeout=SAFETY) == "fast"  # a free thread, though 5 wait for slow
    wait_for(lambda: len(started) == 2, SAFETY, "two calls to the slow host")
    assert pool.in_flight("slow.example") == 2 and started == ["slow", "slow"]
    release.set()
    assert [f.result(timeout=SAFETY) for f in slow] == ["slow"] * 5


def finish(platform: Platform, job_id: int) -> None:
    """Run the job's steps to done through the engine (claim, complete), as a worker."""
    while platform.store.job(job_id)["status"] != "done":
        for step in platform.store.claim("test-worker", STAGE_NAMES, limit=10):
            assert platform.store.complete(step.step_id, step.lease_token)


def _tenant(platform: Platform, name: str):  # type: ignore[no-untyped-def]
    tenant = platform.tenant(name)
    assert tenant is not None
    return tenant


def _job_with_hook(caller: Caller, platform: Platform, audio: str, hook: str) -> int:
    response = caller.post("/jobs", json={"url": audio, "reply_to": hook})
    assert response.status_code == 202, response.text
    job_id = response.json()["job"]["id"]
    finish(platform, job_id)
    return job_id


def test_a_hanging_webhook_receiver_does_not_delay_another_tenants_webhook(
    service: tuple[Platform, TestClient],
) -> None:
    platform, client = service
    alice = make_caller(platform, client, "alice")
    bob = make_caller(platform, client, "bob")
    release, entered = threading.Event(), threading.Event()
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    fast = Receiver([])
    with RawServer(hang_until(release, ok, entered)) as slow:
        try:
            _job_with_hook(
                alice, platform, "http://127.0.0.1:9/a.mp3", slow.url_for("/hook", "localhost")
            )
            _job_with_hook(bob, platform, "http://127.0.0.1:9/b.mp3", fast.url)
            notifier = Notifier(platform)
            # long enough that only the release ends the slow call
            notifier.settings = notifier.settings.model_copy(update={"webhook_timeout_seconds": 60})
            slow_call, fast_call = notifier.start_due()
            assert entered.wait(SAFETY), "the slow receiver was never called"
            delivered = fast_call.result(timeout=SAFETY)
            assert not slow_call.done(), "the slow receiver answered: the test proves nothing"
            assert delivered.delivered and len(fast.calls) == 1
        finally:
            release.set()
            fast.close()
        assert slow_call.result(timeout=SAFETY).delivered


def test_a_webhook_receiver_trickling_its_answer_is_cut_off_at_the_deadline(
    service: tuple[Platform, TestClient],
) -> None:
    platform, client = service
    alice = make_caller(platform, client, "alice")
    with RawServer(trickle(b"HTTP/1.1 200 OK\r\nX-Slow: ")) as slow:
        _job_with_hook(alice, platform, "http://127.0.0.1:9/a.mp3", slow.url_for("/hook"))
        [delivery] = _ended(Notifier(platform).start_due())
    assert not delivery.delivered
    assert "took longer than server.webhook_timeout_seconds = 2 s overall" in (delivery.error or "")


def test_a_webhook_answer_body_is_never_read(
    service: tuple[Platform, TestClient],
) -> None:
    # 200 and then an endless body: the status is all that counts, nothing is read.
    platform, client = service
    alice = make_caller(platform, client, "alice")
    with RawServer(trickle(b"HTTP/1.1 200 OK\r\n\r\n", filler=b"x" * 65536, every=0.01)) as hook:
        _job_with_hook(alice, platform, "http://127.0.0.1:9/a.mp3", hook.url_for("/hook"))
        [delivery] = _ended(Notifier(platform).start_due())
    assert delivery.delivered, delivery.error


def _ended(futures: list[Future[object]]) -> list:  # type: ignore[type-arg]
    return [future.result(timeout=SAFETY) for future in futures]


def test_idle_pool_threads_end_and_come_back() -> None:
    pool = HostPool("idle", workers=3, per_host=2, idle_seconds=0.05)
    assert pool.submit("a.example", lambda: 1).result(timeout=SAFETY) == 1
    names = {f"podmill-idle-{n}" for n in range(3)}
    wait_for(
        lambda: not names & {t.name for t in threading.enumerate()},
        SAFETY,
        "the idle threads to end",
    )
    assert pool.submit("a.example", lambda: 2).result(timeout=SAFETY) == 2
