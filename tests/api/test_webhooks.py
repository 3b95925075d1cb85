"""``reply_to`` webhooks: signed, sent once the job finishes, retried with backoff."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from podmill.api.webhooks import Notifier, sign
from podmill.engine.clock import ManualClock
from podmill.platform import Platform
from podmill.settings import Settings

from support.api import Caller, Receiver, assert_error, make_caller, make_settings
from support.workers import finish_job


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver([500, 503])
    yield hook
    hook.close()


def finish(platform: Platform, job_id: int) -> None:
    finish_job(platform.store, job_id)


def test_reply_to_is_signed_and_retried_until_delivered(
    alice: Caller, platform: Platform, receiver: Receiver
) -> None:
    url = "http://127.0.0.1:9/talk.mp3"
    response = alice.post("/jobs", json={"url": url, "reply_to": receiver.url})
    assert response.status_code == 202, response.text
    job_id = response.json()["job"]["id"]
    clock = ManualClock(datetime.now(UTC))
    notifier = Notifier(platform, clock=clock)
    assert notifier.deliver_due() == []  # not finished yet

    finish(platform, job_id)
    [first] = notifier.deliver_due()
    assert not first.delivered and "500" in (first.error or "")
    assert notifier.deliver_due() == []  # backing off: 5 s
    clock.advance(5)
    [second] = notifier.deliver_due()
    assert not second.delivered and second.attempt == 2
    clock.advance(9)
    assert notifier.deliver_due() == []  # 10 s after the second failure
    clock.advance(1)
    [third] = notifier.deliver_due()
    assert third.delivered and third.attempt == 3
    clock.advance(3600)
    assert notifier.deliver_due() == []  # delivered once

    headers, body = receiver.calls[-1]
    secret = alice.get("/me").json()["webhook_secret"]
    assert headers["X-Podmill-Signature"] == sign(secret, headers["X-Podmill-Timestamp"], body)
    assert headers["X-Podmill-Delivery"].endswith(".3")
    event = json.loads(body)
    assert event["event"] == "job.finished" and event["tenant"] == "alice"
    assert event["job"]["id"] == job_id and event["job"]["status"] == "done"
    assert len(receiver.calls) == 3


def test_a_webhook_that_keeps_failing_is_given_up(tmp_path: Path, db_url: str) -> None:
    settings: Settings = make_settings(tmp_path, db_url, webhook_attempts=2)
    hook = Receiver([500] * 10)
    try:
        from podmill.api.app import create_app

        with TestClient(create_app(settings)) as client:
            platform = client.app.state.platform  # type: ignore[attr-defined]
            alice = make_caller(platform, client, "alice")
            job_id = alice.post(
                "/jobs", json={"url": "http://127.0.0.1:9/a.mp3", "reply_to": hook.url}
            ).json()["job"]["id"]
            finish(platform, job_id)
            clock = ManualClock(datetime.now(UTC))
            notifier = Notifier(platform, clock=clock)
            assert not notifier.deliver_due()[0].delivered
            clock.advance(5)
            assert not notifier.deliver_due()[0].delivered
            clock.advance(10_000)
            assert notifier.deliver_due() == []
            assert len(hook.calls) == 2
    finally:
        hook.close()


def test_reply_to_must_be_http(alice: Caller) -> None:
    body = assert_error(
        alice.post("/jobs", json={"url": "http://127.0.0.1:9/a.mp3", "reply_to": "ftp://x/y"}),
        422,
        "invalid_reply_to",
    )
    assert "ftp" in body["detail"]
    assert alice.get("/jobs").json() == []
