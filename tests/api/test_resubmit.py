"""Asking again for a job: the revive rule of podmill.engine.submit, seen through POST /jobs.

A job that failed runs again (it used to stay failed: only a cancelled one came back) and
notifies its ``reply_to`` again when it finishes again; a done job is never run again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from podmill.api.webhooks import Notifier
from podmill.engine.clock import ManualClock
from podmill.platform import Platform

from support.api import Caller, Receiver
from support.workers import finish_job


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver([])  # 200 to every call
    yield hook
    hook.close()


def fail_fetch(platform: Platform, job_id: int) -> None:
    """The job's fetch dies as a worker's would on a 404: the job is failed."""
    [fetch] = platform.store.claim("test-worker", ["fetch"])
    assert fetch.job_id == job_id
    assert platform.store.fail(fetch.step_id, fetch.lease_token, "HTTP 404", retryable=False)
    assert platform.store.job(job_id)["status"] == "failed"


def test_asking_again_for_a_failed_job_runs_it_again_and_notifies_again(
    alice: Caller, platform: Platform, receiver: Receiver
) -> None:
    url = "http://127.0.0.1:9/talk.mp3"
    first = alice.post("/jobs", json={"url": url, "reply_to": receiver.url}).json()["job"]
    notifier = Notifier(platform, clock=ManualClock(datetime.now(UTC)))
    fail_fetch(platform, first["id"])
    [told] = notifier.deliver_due()
    assert told.delivered

    again = alice.post("/jobs", json={"url": url})
    assert again.status_code == 202, again.text
    body = again.json()
    assert body["created"] is False and body["job"]["id"] == first["id"]
    assert body["job"]["status"] == "running"  # started before: it goes on
    fetch = body["job"]["steps"]["fetch"]
    assert (fetch["status"], fetch["attempts"], fetch["error"]) == ("pending", 0, None)

    finish_job(platform.store, first["id"])
    [told_again] = notifier.deliver_due()
    assert told_again.delivered
    events = [json.loads(sent)["job"]["status"] for _, sent in receiver.calls]
    assert events == ["failed", "done"]

    # a done job is never run again: the same fingerprint gives the same artifacts
    done = alice.post("/jobs", json={"url": url}).json()["job"]
    assert done["status"] == "done"
    assert {s["status"] for s in done["steps"].values()} == {"done"}
    assert notifier.deliver_due() == []
