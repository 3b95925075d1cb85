"""The event log's reader (platform/events.py) on SQLite and Postgres: a tenant's view
starts at its request, a missing id is waited for before it is skipped, old events are
pruned and ids never start over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from podmill.engine.clock import ManualClock
from podmill.platform import Platform
from podmill.platform.events import SETTLE_SECONDS, EventReader, latest_event_id, prune_events
from podmill.platform.tables import EVENTS

from support.api import Caller
from support.workers import finish_job

AUDIO = "http://127.0.0.1:9/shared.mp3"


def read(platform: Platform, reader: EventReader) -> list[dict[str, object]]:
    with platform.reader.connect() as conn:
        return reader.read(conn)


def test_a_tenant_sees_a_shared_job_from_its_own_request_on(
    alice: Caller, bob: Caller, platform: Platform
) -> None:
    alice_tenant, bob_tenant = platform.tenant("alice"), platform.tenant("bob")
    alices, bobs = EventReader(alice_tenant, 0), EventReader(bob_tenant, 0)
    job_id = alice.post("/jobs", json={"url": AUDIO}).json()["job"]["id"]
    claimed = platform.store.claim("w", ["fetch"], limit=1)
    assert claimed and platform.store.complete(claimed[0].step_id, claimed[0].lease_token)
    assert read(platform, bobs) == []  # not his job (yet)

    assert bob.post("/jobs", json={"url": AUDIO}).json()["job"]["id"] == job_id
    finish_job(platform.store, job_id)
    seen_by_bob = read(platform, bobs)
    assert seen_by_bob[0]["kind"] == "request" and seen_by_bob[0]["status"] == "running"
    assert not any(e["stage"] == "fetch" for e in seen_by_bob)  # before he asked
    assert seen_by_bob[-1]["status"] == "done"

    request = seen_by_bob[0]
    assert all(e["id"] >= request["id"] for e in seen_by_bob)
    seen_by_alice = read(platform, alices)
    assert [e["kind"] for e in seen_by_alice[:2]] == ["request", "step"]  # fetch running
    alice_ids = {e["id"] for e in seen_by_alice}
    assert request["id"] not in alice_ids  # bob's request is bob's
    assert {e["id"] for e in seen_by_bob[1:]} <= alice_ids  # the job's transitions: both
    operator = read(platform, EventReader(None, 0))
    assert operator[0]["kind"] == "created" and all(e["kind"] != "request" for e in operator)


def test_a_missing_id_is_waited_for_then_skipped(alice: Caller, platform: Platform) -> None:
    job_id = alice.post("/jobs", json={"url": AUDIO}).json()["job"]["id"]
    clock = ManualClock(datetime.now(UTC))
    with platform.reader.connect() as conn:
        start = latest_event_id(conn)
    reader = EventReader(None, start, clock=clock)
    with platform.engine.begin() as conn:  # id start+1 is "still committing"
        conn.execute(
            insert(EVENTS).values(id=start + 2, kind="job", job_id=job_id, status="running")
        )
    assert read(platform, reader) == []
    clock.advance(SETTLE_SECONDS - 0.5)
    assert read(platform, reader) == []
    clock.advance(0.5)
    [event] = read(platform, reader)
    assert event["id"] == start + 2 and reader.cursor == start + 2


def test_old_events_are_pruned_but_the_newest_is_kept(alice: Caller, platform: Platform) -> None:
    job_id = alice.post("/jobs", json={"url": AUDIO}).json()["job"]["id"]
    finish_job(platform.store, job_id)
    with platform.reader.connect() as conn:
        newest = latest_event_id(conn)
    later = datetime.now(UTC) + timedelta(hours=100)
    assert prune_events(platform.engine, timedelta(hours=72), datetime.now(UTC)) == 0
    assert prune_events(platform.engine, timedelta(hours=72), later) == newest - 1
    with platform.reader.connect() as conn:
        assert conn.execute(select(func.count()).select_from(EVENTS)).scalar_one() == 1
        assert latest_event_id(conn) == newest  # the next event's id follows it
