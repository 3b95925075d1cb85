"""``GET /events`` read by a real SSE client (httpx + httpx-sse) from a real ``podmill
serve`` process while real ``podmill worker`` processes (no-op stages) run whole jobs;
``podmill jobs watch`` follows the same job from the database; and the server process
delivers a result to a Redis stream."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from podmill.engine.store import Store
from podmill.pipeline.dag import STAGE_NAMES
from podmill.platform import Platform
from podmill.settings import Settings

from support.api import ServerProcess, podmill_env, start_server
from support.streams import REDIS_HOSTPORT, redis_client, results, stream_url, unique_stream
from support.workers import EngineDB, Workers, wait_for

httpx_sse = pytest.importorskip("httpx_sse", reason="pip install 'podmill[dev]'")

QUICK_EVENTS = {
    "PODMILL_SERVER__EVENTS_POLL_SECONDS": "0.1",
    "PODMILL_SERVER__EVENTS_HEARTBEAT_SECONDS": "0.5",
}


@dataclass
class Served:
    server: ServerProcess
    workers: Workers
    url: str
    data_dir: Path

    def key(self, tenant: str) -> str:
        service = Platform(Settings(db=self.url, data_dir=self.data_dir))
        try:
            service.create_tenant(tenant)
            return service.create_key(tenant)[1]
        finally:
            service.close()


@contextmanager
def serve(db_url: str, tmp_path: Path, env: dict[str, str]) -> Iterator[Served]:
    data_dir = tmp_path / "data"
    server = start_server(db_url, data_dir, tmp_path / "server.log", env)
    store = Store(db_url)
    workers = Workers(EngineDB(db_url, data_dir, tmp_path / "runs.log", store), tmp_path)
    try:
        yield Served(server, workers, db_url, data_dir)
    finally:
        workers.close()
        server.stop()
        store.close()


def sse_until_done(
    server: ServerProcess, key: str, job_id: int, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every event of ``GET /events`` until job ``job_id``'s own ``done`` event."""
    found = []
    with httpx.Client(base_url=server.url, timeout=60) as client:
        auth = {"Authorization": f"Bearer {key}", **(headers or {})}
        with httpx_sse.connect_sse(client, "GET", "/events", headers=auth) as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            for sse in source.iter_sse():
                event = json.loads(sse.data)
                assert sse.id == str(event["id"]) and sse.event == event["type"]
                found.append(event)
                if event == {**event, "type": "job", "job_id": job_id, "status": "done"}:
                    return found
    raise AssertionError(f"the stream ended before job {job_id} was done: {found}")


class RawReader:
    """Reads ``GET /events`` line by line in a thread (comments included) until stopped."""

    def __init__(self, server: ServerProcess, key: str) -> None:
        self.lines: list[str] = []
        self.stop = threading.Event()
        self.connected = threading.Event()
        self.client = httpx.Client(base_url=server.url, timeout=30)
        self.thread = threading.Thread(target=self._read, args=(key,), daemon=True)
        self.thread.start()
        assert self.connected.wait(30), "GET /events did not answer"

    def _read(self, key: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        try:
            with self.client.stream("GET", "/events", headers=headers) as response:
                self.connected.set()
                for line in response.iter_lines():
                    self.lines.append(line)
                    if self.stop.is_set():
                        return
        except httpx.HTTPError as exc:  # the server stopped: the test says what it missed
            self.lines.append(f"(connection lost: {exc})")

    def data(self) -> list[dict[str, Any]]:
        return [json.loads(line[6:]) for line in self.lines if line.startswith("data: ")]

    def close(self) -> None:
        self.stop.set()  # the next heartbeat (0.5 s) ends the read
        self.thread.join(timeout=10)
        self.client.close()


def test_events_follow_a_whole_job_per_tenant_and_resume(db_url: str, tmp_path: Path) -> None:
    with serve(db_url, tmp_path, QUICK_EVENTS) as served:
        alice_key, bob_key = served.key("alice"), served.key("bob")
        bob_reader = RawReader(served.server, bob_key)
        alice, bob = served.server.client(alice_key), served.server.client(bob_key)
        # alice listens before her job exists: the stream starts at the newest event
        with httpx_sse.connect_sse(
            alice, "GET", "/events", headers={"Accept": "text/event-stream"}
        ) as source:
            job_id = alice.post("/jobs", json={"url": "http://127.0.0.1:9/a.mp3"}).json()["job"][
                "id"
            ]
            bob_job = bob.post("/jobs", json={"url": "http://127.0.0.1:9/b.mp3"}).json()["job"][
                "id"
            ]
            watch = subprocess.Popen(
                [sys.executable, "-m", "podmill", "jobs", "watch", "--job", str(job_id),
                 "--json", "--db", db_url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=podmill_env(),
            )  # fmt: skip
            assert watch.stderr is not None
            for _ in range(20):  # its log lines come first
                said = watch.stderr.readline().decode()
                if not said or said.startswith(f"watching job {job_id}"):
                    break
            assert said.startswith("watching"), f"podmill jobs watch did not start: {said}"
            served.workers.start("--poll", "0.1")
            events = []
            for sse in source.iter_sse():
                event = json.loads(sse.data)
                assert sse.id == str(event["id"]) and sse.event == event["type"]
                events.append(event)
                if event["type"] == "job" and event["status"] == "done":
                    break
        wait_for(
            lambda: any(e["type"] == "job" and e["status"] == "done" for e in bob_reader.data()),
            60,
            "bob's job to be done",
            detail=served.server.log,
        )
        bob_reader.close()
        alice.close()
        bob.close()
        watched, watch_err = watch.communicate(timeout=60)
        assert watch.returncode == 0, watch_err.decode()

        # alice saw her job from queued to done, every stage running then done, in order
        assert {e["job_id"] for e in events} == {job_id}
        ids = [e["id"] for e in events]
        assert ids == sorted(set(ids))
        # her view starts where she asked for it (a worker may have claimed it already)
        assert events[0]["kind"] == "request" and events[0]["status"] in ("pending", "running")
        job_statuses = [e["status"] for e in events if e["kind"] == "job"]
        assert job_statuses[-2:] == ["running", "done"] or job_statuses == ["done"]
        for stage in STAGE_NAMES:
            steps = [e["status"] for e in events if e["stage"] == stage]
            assert steps[-2:] == ["running", "done"], (stage, steps)

        # bob's stream: his own job only, and heartbeats while nothing of his happened
        assert {e["job_id"] for e in bob_reader.data()} == {bob_job}
        assert ": heartbeat" in bob_reader.lines

        # a client that reconnects with Last-Event-ID gets the rest, nothing twice
        resumed = sse_until_done(
            served.server, alice_key, job_id, headers={"Last-Event-ID": str(ids[4])}
        )
        assert [e["id"] for e in resumed] == ids[5:]
        assert resumed == events[5:]

        # podmill jobs watch: the same transitions, from the database, ending with done
        lines = [json.loads(line) for line in watched.decode().splitlines()]
        assert lines == events[-len(lines) :] and lines[-1]["status"] == "done"
        assert len(lines) >= 2 * len(STAGE_NAMES)


def test_events_need_a_key_and_a_valid_cursor(db_url: str, tmp_path: Path) -> None:
    with serve(db_url, tmp_path, QUICK_EVENTS) as served:
        assert httpx.get(served.server.url + "/events").status_code == 401
        with served.server.client(served.key("alice")) as alice:
            bad = alice.get("/events", headers={"Last-Event-ID": "yesterday"})
            assert bad.status_code == 422 and "Last-Event-ID" in bad.json()["detail"]


def test_the_server_process_sends_results_to_streams(db_url: str, tmp_path: Path) -> None:
    redis = redis_client()
    mine, default = unique_stream("served"), unique_stream("served-default")
    env = {
        "PODMILL_SERVER__STREAM_HOSTS": json.dumps([REDIS_HOSTPORT]),
        "PODMILL_SERVER__DEFAULT_STREAM": stream_url(default),
        "PODMILL_SERVER__BASE_URL": "https://podmill.example",
    }
    try:
        with (
            serve(db_url, tmp_path, env) as served,
            served.server.client(served.key("alice")) as alice,
        ):
            job = alice.post(
                "/jobs", json={"url": "http://127.0.0.1:9/a.mp3", "reply_to": stream_url(mine)}
            ).json()["job"]
            served.workers.start("--poll", "0.1")
            wait_for(
                lambda: len(results(redis, mine)) == 1 and len(results(redis, default)) == 1,
                60,
                "the result in both streams",
                detail=served.server.log,
            )
            [result] = results(redis, mine)
            assert result["job_id"] == job["id"] and result["job"]["status"] == "done"
            assert result["job"]["url"] == f"https://podmill.example/jobs/{job['id']}"
            assert alice.get(f"/jobs/{job['id']}").json()["reply"]["delivered_at"] is not None
    finally:
        redis.delete(mine, default)
