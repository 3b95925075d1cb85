"""``podmill serve`` as a real process, with real ``podmill worker`` processes.

Workers run no-op stages (``PODMILL_TEST_NOOP_STAGES=1``) and log every stage they
run (``PODMILL_TEST_RUN_LOG``), so the tests count real executions; the tiny-model run
at the end processes real audio.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from podmill.api.webhooks import sign
from podmill.engine.store import Store
from podmill.platform import Platform
from podmill.settings import Settings

from support.api import LiveFeed, Receiver, ServerProcess, podmill_env, start_server
from support.cli import run_cli
from support.paths import DEMO, FIXTURES
from support.workers import EngineDB, Workers, wait_for


@dataclass
class Served:
    server: ServerProcess
    db: EngineDB
    workers: Workers
    url: str

    def key(self, tenant: str, *, admin: bool = False) -> str:
        """Create a tenant and a key in the database (quicker than the commands)."""
        service = Platform(Settings(db=self.url, data_dir=self.db.data_dir))
        try:
            service.create_tenant(tenant, admin=admin)
            return service.create_key(tenant)[1]
        finally:
            service.close()

    def key_by_cli(self, tenant: str, *, admin: bool = False) -> str:
        """Create a tenant and a key with the real commands, as an operator would."""
        flags = ["--admin"] if admin else []
        created = run_cli("tenants", "create", tenant, *flags, "--db", self.url)
        assert created.code == 0, created.stderr
        made = run_cli("keys", "create", tenant, "--db", self.url, "--json")
        assert made.code == 0, made.stderr
        [row] = made.json_lines()
        return row["key"]


@contextmanager
def serve(db_url: str, tmp_path: Path, *args: str, **env: str) -> Iterator[Served]:
    data_dir = tmp_path / "data"
    server = start_server(db_url, data_dir, tmp_path / "server.log", env, args)
    store = Store(db_url)
    db = EngineDB(db_url, data_dir, tmp_path / "runs.log", store)
    workers = Workers(db, tmp_path)
    try:
        yield Served(server, db, workers, db_url)
    finally:
        workers.close()
        server.stop()
        db.engine.dispose()
        store.close()


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[Served]:
    # webhooks retried after 1 s, so the retry test is quick
    with serve(
        db_url, tmp_path, PODMILL_SERVER__BACKFILL="1", PODMILL_SERVER__WEBHOOK_BACKOFF_SECONDS="1"
    ) as handle:
        yield handle


def test_end_to_end_tenants_feed_poll_workers_episodes(served: Served, live_feed: LiveFeed) -> None:
    admin = served.server.client(served.key_by_cli("root", admin=True))
    alice = served.server.client(served.key("alice"))
    bob = served.server.client(served.key("bob"))

    feed = admin.post("/feeds", json={"url": live_feed.url, "interval_seconds": 1})
    assert feed.status_code == 201, feed.text
    for client in (alice, bob):
        assert client.post("/subscriptions", json={"url": live_feed.url}).status_code == 201
    [backfilled] = alice.get("/jobs").json()
    assert [j["id"] for j in bob.get("/jobs").json()] == [backfilled["id"]]

    served.workers.start("--poll", "0.1")
    live_feed.add_item(3)  # the poller finds it within a second or two
    wait_for(
        lambda: len(alice.get("/jobs?status=done").json()) == 2,
        60,
        "the backfilled and the polled episode to be done",
        detail=lambda: served.server.log() + served.workers.logs(),
    )
    jobs = alice.get("/jobs").json()
    assert [j["id"] for j in bob.get("/jobs").json()] == [j["id"] for j in jobs]
    episodes = alice.get("/episodes").json()
    assert [(e["title"], e["status"]) for e in episodes] == [
        ("Episode 3", "done"),
        ("Episode 2", "done"),
        ("Episode 1", "new"),
        ("Episode 0", "new"),
    ]
    # processed once: one job per episode, each stage ran once although two tenants asked
    runs = served.db.runs()
    assert {job_id for job_id, _stage in runs} == {j["id"] for j in jobs}
    assert set(runs.values()) == {1}
    assert Counter(stage for _job, stage in runs)["transcribe"] == 2

    queues = {q["stage"]: q for q in admin.get("/admin/queues").json()}
    assert queues["publish"]["done"] == 2
    [worker] = admin.get("/admin/workers").json()
    assert worker["status"] == "running" and worker["heartbeat_age_seconds"] < 30
    assert alice.get("/admin/workers").status_code == 403


def test_reply_to_webhook_from_the_server_process(served: Served) -> None:
    """The server's background thread signs and delivers the webhook once the job is done."""
    hook = Receiver([503])  # the first call fails: retried after 1 s
    try:
        alice = served.server.client(served.key("alice"))
        job = alice.post(
            "/jobs", json={"url": "http://127.0.0.1:9/a.mp3", "reply_to": hook.url}
        ).json()["job"]
        served.workers.start("--poll", "0.1")
        wait_for(lambda: len(hook.calls) == 2, 60, "the webhook to be retried and delivered")
        headers, body = hook.calls[-1]
        secret = alice.get("/me").json()["webhook_secret"]
        assert headers["X-Podmill-Signature"] == sign(secret, headers["X-Podmill-Timestamp"], body)
        assert json.loads(body)["job"] == {
            **json.loads(body)["job"],
            "id": job["id"],
            "status": "done",
        }
    finally:
        hook.close()


def test_fifty_concurrent_submissions(served: Served) -> None:
    alice = served.server.client(served.key("alice"))
    bob = served.server.client(served.key("bob"))
    # 25 episodes, each asked for by both tenants at once: 50 requests in flight
    urls = [f"http://127.0.0.1:9/show/episode-{n}.mp3" for n in range(25)]  # never fetched
    calls = [(client, url) for url in urls for client in (alice, bob)]

    def submit(call: tuple) -> tuple[int, str, int]:  # type: ignore[type-arg]
        client, url = call
        response = client.post("/jobs", json={"url": url})
        return response.status_code, url, response.json()["job"]["id"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(submit, calls))
    assert {status for status, _url, _id in results} == {202}
    by_url: dict[str, set[int]] = {}
    for _status, url, job_id in results:
        by_url.setdefault(url, set()).add(job_id)
    assert all(len(ids) == 1 for ids in by_url.values())  # one job per episode
    assert len({next(iter(ids)) for ids in by_url.values()}) == 25
    assert len(alice.get("/jobs").json()) == len(bob.get("/jobs").json()) == 25

    # process once, serve many: each episode's ASR ran once although two tenants asked
    served.workers.start("--poll", "0.1", "--pool", "io=8", "--pool", "asr=2", "--pool", "cpu=4")
    wait_for(
        lambda: len(bob.get("/jobs?status=done").json()) == 25,
        90,
        "the 25 jobs to be done",
        detail=served.workers.logs,
    )
    transcribed = Counter(job for job, stage in served.db.runs() if stage == "transcribe")
    assert len(transcribed) == 25 and set(transcribed.values()) == {1}


def test_several_server_processes(db_url: str, tmp_path: Path) -> None:
    with serve(db_url, tmp_path, "--workers", "2", "--no-background") as served:
        alice = served.server.client(served.key("alice"))
        assert {alice.get("/me").json()["tenant"] for _ in range(20)} == {"alice"}
        response = alice.post("/jobs", json={"url": "http://127.0.0.1:9/a.mp3"})
        assert response.status_code == 202, response.text
        assert served.server.client().get("/me").status_code == 401
        assert "Started parent process" in served.server.log()


def test_serve_refuses_no_auth_on_a_public_address(db_url: str) -> None:
    result = run_cli("serve", "--host", "0.0.0.0", "--no-auth", "--db", db_url)
    assert result.code == 1
    assert "--no-auth on 0.0.0.0" in result.error_line


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    from podmill.storage.db import upgrade

    url = f"sqlite:///{tmp_path / 'podmill.db'}"
    upgrade(url)
    return url


@pytest.mark.slow
def test_real_audio_with_the_tiny_model(sqlite_url: str, tmp_path: Path, http_server) -> None:  # type: ignore[no-untyped-def]
    """A feed with one real clip: subscribe, a real worker transcribes it with Whisper
    tiny.en, and the transcript and topic tree are readable through the API."""
    from support.feeds import item, rss

    audio = http_server.add_file("/jfk.flac", DEMO / "jfk.flac", "audio/flac")
    feed_url = http_server.add_bytes(
        "/jfk.xml",
        rss([item("jfk-1", "Inaugural", audio, mime="audio/flac")]),
        "application/rss+xml",
    )
    with serve(sqlite_url, tmp_path, PODMILL_SERVER__BACKFILL="1") as served:
        alice = served.server.client(served.key("alice"))
        assert alice.post("/subscriptions", json={"url": feed_url}).status_code == 201
        [job] = alice.get("/jobs").json()
        served.workers.start("--poll", "0.1", env={"PODMILL_TEST_NOOP_STAGES": "0"})
        wait_for(
            lambda: alice.get(f"/jobs/{job['id']}").json()["status"] in ("done", "failed"),
            300,
            "the real job to finish",
            detail=served.workers.logs,
        )
        done = alice.get(f"/jobs/{job['id']}").json()
        assert done["status"] == "done", done
        key = job["episode_key"]
        text = alice.get(f"/episodes/{key}/transcript?format=txt").text.lower()
        expected = (FIXTURES / "audio" / "jfk.txt").read_text().lower()
        assert "ask not what your country can do for you" in text, (text, expected)
        vtt = alice.get(f"/episodes/{key}/transcript?format=vtt")
        assert vtt.headers["content-type"].startswith("text/vtt") and "WEBVTT" in vtt.text
        words = alice.get(f"/episodes/{key}/transcript").json()
        assert words["segments"] and words["segments"][0]["words"][0]["start"] >= 0
        episode = alice.get(f"/episodes/{key}").json()
        assert episode["status"] == "done" and episode["topics"]["root"]["title"]
        assert set(episode["transcript_formats"]) == {"json", "srt", "vtt", "txt"}


def test_a_restarted_scheduler_enqueues_each_item_once(
    db_url: str, tmp_path: Path, live_feed: LiveFeed
) -> None:
    """The poller as its own process: killed (-9) and started again, it re-reads the
    feed and enqueues only the item that is new."""
    with serve(db_url, tmp_path, "--no-background", PODMILL_SERVER__BACKFILL="0") as served:
        admin = served.server.client(served.key("root", admin=True))
        alice = served.server.client(served.key("alice"))
        admin.post("/feeds", json={"url": live_feed.url, "interval_seconds": 1})
        alice.post("/subscriptions", json={"url": live_feed.url})
        polls = live_feed.server.count

        def scheduler(n: int) -> subprocess.Popen[bytes]:
            log = (tmp_path / f"scheduler-{n}.log").open("wb")
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "podmill",
                    "scheduler",
                    "--db",
                    db_url,
                    "--data-dir",
                    str(served.db.data_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=podmill_env(),
            )

        first = scheduler(1)
        try:
            live_feed.add_item(3)
            wait_for(lambda: len(alice.get("/jobs").json()) == 1, 30, "item 3 to be enqueued")
        finally:
            first.kill()
            first.wait(10)
        live_feed.touch()  # same items, new ETag: the restarted poller re-reads them all
        seen = polls(live_feed.path)
        second = scheduler(2)
        try:
            wait_for(lambda: polls(live_feed.path) >= seen + 2, 30, "two polls after restart")
            assert len(alice.get("/jobs").json()) == 1
            live_feed.add_item(4)
            wait_for(lambda: len(alice.get("/jobs").json()) == 2, 30, "item 4 to be enqueued")
            wait_for(lambda: polls(live_feed.path) >= seen + 5, 30, "more polls")
            assert len(alice.get("/jobs").json()) == 2
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0
