"""``reply_to`` Redis streams and the default stream, against the local Redis: the entry
is the result (tree, artifact links), only allowed hosts are used, failures show in
the job and are retried with backoff, subscriptions carry a reply_to."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from podmill.api.webhooks import Notifier
from podmill.engine.clock import ManualClock
from podmill.errors import MissingExtraError
from podmill.platform import Platform
from podmill.platform.poller import Poller
from podmill.platform.streams import StreamSender
from podmill.settings import Settings

from support.api import Caller, LiveFeed, assert_error, make_settings
from support.streams import (
    REDIS_HOSTPORT,
    entries,
    publish_set,
    redis_client,
    results,
    stream_url,
    unique_stream,
)
from support.workers import finish_job

BASE = "https://podmill.example/api"
AUDIO = "http://127.0.0.1:9/talk.mp3"


@pytest.fixture
def redis() -> Any:
    return redis_client()


@pytest.fixture
def streams(redis: Any) -> Iterator[tuple[str, str]]:
    """A tenant's stream and the default stream, deleted afterwards."""
    mine, default = unique_stream("mine"), unique_stream("default")
    try:
        yield mine, default
    finally:
        redis.delete(mine, default)


@pytest.fixture
def api_settings(tmp_path: Path, db_url: str, streams: tuple[str, str]) -> Settings:
    return make_settings(
        tmp_path,
        db_url,
        base_url=BASE,
        stream_hosts=[REDIS_HOSTPORT, "127.0.0.1:1"],  # :1 is allowed, but nothing listens
        default_stream=stream_url(streams[1]),
        webhook_attempts=3,
    )


def notifier(platform: Platform) -> tuple[Notifier, ManualClock]:
    clock = ManualClock(datetime.now(UTC))
    return Notifier(platform, clock=clock), clock


def finished_job(platform: Platform, caller: Caller, url: str = AUDIO, **body: object) -> int:
    """A job of ``caller`` run to done, with a finished artifact set."""
    response = caller.post("/jobs", json={"url": url, **body})
    assert response.status_code == 202, response.text
    job = response.json()["job"]
    finish_job(platform.store, job["id"])
    publish_set(platform.artifacts, job["episode_key"], job["fingerprint"])
    return job["id"]


def test_the_stream_entry_is_the_result(
    alice: Caller, platform: Platform, redis: Any, streams: tuple[str, str]
) -> None:
    mine, _default = streams
    job_id = finished_job(platform, alice, reply_to=stream_url(mine))
    notify, _clock = notifier(platform)
    delivered = notify.deliver_due()
    assert sorted((d.delivered, d.owed) for d in delivered) == [(True, False), (True, True)]

    [entry] = entries(redis, mine)
    assert entry["job_id"] == str(job_id) and entry["status"] == "done"
    assert entry["tenant"] == "alice" and entry["event"] == "job.finished"
    result = json.loads(entry["result"])
    key = result["job"]["episode_key"]
    assert entry["episode_key"] == key and entry["fingerprint"] == result["job"]["fingerprint"]
    assert result["job_id"] == job_id
    assert result["tree"]["title"] == "A show about rivers"
    assert (result["tree"]["start"], result["tree"]["end"]) == (0.0, 20.0)
    assert [(t["title"], t["start"], t["end"]) for t in result["tree"]["topics"]] == [
        ("Rivers", 0.0, 12.5),
        ("Bridges", 12.5, 20.0),
    ]
    links = result["artifacts"]
    assert set(links) == {"topics", "transcript_json", "vtt", "summary_md", "manifest"}
    assert links["vtt"]["url"] == f"{BASE}/episodes/{key}/transcript?format=vtt"
    assert links["topics"]["url"] == f"{BASE}/episodes/{key}"
    assert links["summary_md"]["url"] is None and len(links["summary_md"]["sha256"]) == 64
    assert result["job"]["url"] == f"{BASE}/jobs/{job_id}"
    # the links work: the API serves what they name, to the tenant that asked
    path = links["vtt"]["url"].removeprefix(BASE)
    assert alice.get(path).text == "WEBVTT\n"
    published = result["published"]
    assert published == {
        name: f"{BASE}/episodes/{key}/{name}"
        for name in ("transcript.json", "transcript.vtt", "transcript.srt", "chapters.json")
    }
    chapters = alice.get(published["chapters.json"].removeprefix(BASE)).json()
    assert [c["title"] for c in chapters["chapters"]] == ["Rivers", "Bridges"]

    shown = alice.get(f"/jobs/{job_id}").json()["reply"]
    assert shown["to"] == stream_url(mine) and shown["attempts"] == 1
    assert shown["delivered_at"] is not None and shown["error"] is None
    assert notify.deliver_due() == []  # delivered once


def test_the_default_stream_gets_every_result(
    alice: Caller, bob: Caller, platform: Platform, redis: Any, streams: tuple[str, str]
) -> None:
    mine, default = streams
    first = finished_job(platform, alice, reply_to=stream_url(mine))
    second = finished_job(platform, bob, "http://127.0.0.1:9/other.mp3")  # no reply_to
    notify, _clock = notifier(platform)
    notify.deliver_due()
    assert [r["job_id"] for r in results(redis, default)] == [first, second]
    assert {r["tenant"] for r in results(redis, default)} == {None}  # nobody's in particular
    assert [r["job_id"] for r in results(redis, mine)] == [first]
    assert bob.get(f"/jobs/{second}").json()["reply"] is None


def test_a_stream_host_not_allowed_is_refused(alice: Caller, platform: Platform) -> None:
    for reply_to, says in [
        ("redis://10.0.0.8:6379/0#results", "not in server.stream_hosts"),
        ("redis://127.0.0.1:6390/0#results", "127.0.0.1:6390 is not in server.stream_hosts"),
        (f"redis://{REDIS_HOSTPORT}/0", "stream name after '#'"),
        (f"redis://:secret@{REDIS_HOSTPORT}/0#x", "no credentials"),
        (f"redis://{REDIS_HOSTPORT}/zero#x", "not a number"),
    ]:
        body = assert_error(
            alice.post("/jobs", json={"url": AUDIO, "reply_to": reply_to}), 422, "invalid_reply_to"
        )
        assert says in body["detail"], (reply_to, body)
    assert alice.get("/jobs").json() == []
    refused = alice.post(
        "/subscriptions", json={"url": "http://127.0.0.1:9/f.xml", "reply_to": "redis://h:1/0#x"}
    )
    assert_error(refused, 422, "invalid_reply_to")


def test_a_failing_stream_shows_in_the_job_and_is_retried_with_backoff(
    alice: Caller, platform: Platform
) -> None:
    job_id = finished_job(platform, alice, reply_to="redis://127.0.0.1:1/0#nowhere")
    notify, clock = notifier(platform)
    [failed] = [d for d in notify.deliver_due() if not d.owed]
    assert not failed.delivered and "ConnectionError" in (failed.error or "")
    reply = alice.get(f"/jobs/{job_id}").json()["reply"]
    assert (
        reply["attempts"] == 1 and "cannot XADD to redis://127.0.0.1:1/0#nowhere" in reply["error"]
    )
    assert reply["next_try_at"] is not None and reply["delivered_at"] is None

    assert [d for d in notify.deliver_due() if not d.owed] == []  # backing off: 5 s
    clock.advance(5)
    [second] = notify.deliver_due()
    assert second.attempt == 2 and not second.delivered
    clock.advance(10)
    [third] = notify.deliver_due()
    assert third.attempt == 3
    reply = alice.get(f"/jobs/{job_id}").json()["reply"]
    assert reply["error"].startswith("gave up: ") and reply["next_try_at"] is None
    clock.advance(10_000)
    assert notify.deliver_due() == []


def test_a_subscription_reply_to_goes_with_every_episode_of_the_feed(
    alice: Caller, bob: Caller, platform: Platform, live_feed: LiveFeed, streams: tuple[str, str]
) -> None:
    mine = stream_url(streams[0])
    made = alice.post("/subscriptions", json={"url": live_feed.url, "reply_to": mine})
    assert made.status_code == 201, made.text
    assert made.json()["reply_to"] == mine
    assert bob.post("/subscriptions", json={"url": live_feed.url}).status_code == 201
    [backfilled] = alice.get("/jobs").json()
    assert backfilled["reply"]["to"] == mine

    live_feed.add_item(3)
    clock = ManualClock(datetime.now(UTC))
    clock.advance(601)
    [outcome] = Poller(platform, clock=clock).poll_due()
    [new_job] = outcome.enqueued
    assert alice.get(f"/jobs/{new_job}").json()["reply"]["to"] == mine
    assert bob.get(f"/jobs/{new_job}").json()["reply"] is None  # bob's subscription has none


def test_without_the_streams_extra_one_line_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # `import redis` fails, as if not installed
    with pytest.raises(MissingExtraError) as caught:
        StreamSender(1.0).send(stream_url("x"), {})
    assert "streams" in str(caught.value) and "\n" not in str(caught.value)


def test_podmill_submit_reply_to_owes_the_result_to_the_stream(
    tmp_path: Path, db_url: str, redis: Any, streams: tuple[str, str]
) -> None:
    """The operator's ``podmill submit --reply-to``: an allowed stream gets the result
    (no tenant); another host, or a webhook, is one error line."""
    from sqlalchemy import select

    from podmill.storage.replies import REPLIES

    from support.cli import run_cli
    from support.paths import DEMO

    mine = stream_url(streams[0])
    data = tmp_path / "cli-data"
    env = {"PODMILL_SERVER__STREAM_HOSTS": json.dumps([REDIS_HOSTPORT])}
    flags = ("--db", db_url, "--data-dir", str(data))
    audio = DEMO / "sonnet001.mp3"
    submitted = run_cli("submit", audio, *flags, "--reply-to", mine, "--json", env=env)
    assert submitted.code == 0, submitted.stderr
    [row] = submitted.json_lines()

    for refused, says in [
        ("redis://127.0.0.1:6390/0#x", "not in server.stream_hosts"),
        ("https://example.com/hook", "a webhook needs a tenant"),
    ]:
        failed = run_cli("submit", audio, *flags, "--reply-to", refused, env=env)
        assert failed.code == 1 and says in failed.stderr, failed.stderr
        assert failed.stderr.count("\n") == 1, failed.stderr

    platform = Platform(
        Settings(db=db_url, data_dir=data, server={"stream_hosts": [REDIS_HOSTPORT]})
    )
    try:
        with platform.reader.connect() as conn:
            owed = conn.execute(select(REPLIES.c.target).where(REPLIES.c.job_id == row["job_id"]))
            assert owed.scalars().all() == [mine]
        finish_job(platform.store, row["job_id"])
        [delivered] = Notifier(platform).deliver_due()
        assert delivered.delivered and delivered.owed
        [result] = results(redis, streams[0])
        assert result["job_id"] == row["job_id"] and result["tenant"] is None
    finally:
        platform.close()
