"""The operations and jobs pages against a real ``podmill serve`` and real ``podmill
worker`` processes (no-op stages, PODMILL_TEST_NOOP_STAGES=1; a stage made to fail with
PODMILL_TEST_FAIL_STAGES for a dead step), driven as a browser would: log in with a key
(session cookie), read the form's CSRF token, post the form.

The server refuses private addresses (allow_private_networks off), so a feed-like URL on
127.0.0.1 is the "private address" a person might paste; an audio URL is accepted
unfetched (its name says what it is) and the no-op worker never downloads it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from podmill.engine.store import Store
from podmill.platform import Platform
from podmill.settings import Settings
from podmill.storage.db import upgrade

from support.api import ServerProcess, free_port, podmill_env, start_server
from support.browser import Watch
from support.paths import DEMO
from support.workers import EngineDB, Workers, wait_for

MAX_UPLOAD = 500_000  # the demo mp3 (427 kB) fits; one padded past it does not
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Site:
    server: ServerProcess
    db: EngineDB
    workers: Workers
    keys: dict[str, str]

    def api(self, tenant: str) -> httpx.Client:
        return self.server.client(self.keys[tenant])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("ops-jobs")
    url = f"sqlite:///{tmp / 'podmill.db'}"
    upgrade(url)
    data_dir = tmp / "data"
    service = Platform(Settings(db=url, data_dir=data_dir))
    keys = {}
    try:
        for name, admin in (("root", True), ("alice", False), ("bob", False)):
            service.create_tenant(name, admin=admin)
            keys[name] = service.create_key(name)[1]
    finally:
        service.close()
    server = start_server(
        url,
        data_dir,
        tmp / "server.log",
        {
            "PODMILL_ALLOW_PRIVATE_NETWORKS": None,
            "PODMILL_SERVER__MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        },
    )
    store = Store(url)
    db = EngineDB(url, data_dir, tmp / "runs.log", store)
    workers = Workers(db, tmp)
    try:
        yield Site(server, db, workers, keys)
    finally:
        workers.close()
        server.stop()
        db.engine.dispose()
        store.close()


@pytest.fixture
def workers(site: Site) -> Iterator[Workers]:
    """The site's worker launcher; the workers a test started are gone after it."""
    before = len(site.workers.started)
    yield site.workers
    for worker in site.workers.started[before:]:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(timeout=10)


class Browser:
    """An HTTP client that logs in with a key as the login form does and posts forms
    with the CSRF token the page gave it."""

    def __init__(self, site: Site, tenant: str) -> None:
        self.client = httpx.Client(base_url=site.server.url, timeout=30)
        answer = self.client.post("/login", data={"key": site.keys[tenant], "next": "/"})
        assert answer.status_code == 303, answer.text
        assert "podmill_session" in self.client.cookies

    def page(self, path: str) -> httpx.Response:
        return self.client.get(path)

    def csrf(self, path: str = "/view/jobs") -> str:
        found = CSRF.search(self.page(path).text)
        assert found, f"no CSRF token on {path}"
        return found.group(1)

    def post(self, path: str, **kw: object) -> httpx.Response:
        return self.client.post(path, **kw)  # type: ignore[arg-type]

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def browsers(site: Site) -> Iterator[dict[str, Browser]]:
    made = {name: Browser(site, name) for name in ("root", "alice", "bob")}
    yield made
    for browser in made.values():
        browser.close()


def alerts(html: str) -> list[str]:
    """The form messages the page shows (an empty, hidden one is the script's slot)."""
    found = re.findall(r'class="alert"[^>]*role="alert"[^>]*>([^<]*)<', html)
    return [m.strip() for m in found if m.strip()]


def job_id_of(answer: httpx.Response) -> int:
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(r"/view/jobs/(\d+)", answer.headers["location"])
    assert found, answer.headers["location"]
    return int(found.group(1))


def submit_url(browser: Browser, url: str) -> int:
    token = browser.csrf()
    return job_id_of(browser.post("/view/jobs", data={"csrf": token, "url": url}))


def queue(site: Site, stage: str) -> dict:
    [row] = [q for q in site.api("root").get("/admin/queues").json() if q["stage"] == stage]
    return row


# ------------------------------------------------------------------------------ jobs


def test_submitting_a_url_queues_the_job_and_its_page_follows_the_stages(
    site: Site, browsers: dict[str, Browser], workers: Workers
) -> None:
    alice = browsers["alice"]
    job_id = submit_url(alice, "http://127.0.0.1:9/shows/first.mp3")

    # the same job the API shows this tenant, and nobody else's
    assert [j["id"] for j in site.api("alice").get("/jobs").json()] == [job_id]
    page = alice.page(f"/view/jobs/{job_id}")
    assert page.status_code == 200
    assert f'data-status-url="/view/jobs/{job_id}/status"' in page.text
    assert '<script src="/static/jobs.js" defer></script>' in page.text
    listing = alice.page("/view/jobs").text
    assert f'href="/view/jobs/{job_id}"' in listing
    for path in (f"/view/jobs/{job_id}", f"/view/jobs/{job_id}/status"):
        assert browsers["bob"].page(path).status_code == 404

    status = alice.page(f"/view/jobs/{job_id}/status").json()
    assert status["status"] == "pending" and status["terminal"] is False
    assert status["stages"][0]["stage"] == "fetch"
    assert status["stages"][0]["status"] == "pending"

    # a worker runs it; the status route shows each stage advance, then the end
    workers.start("--poll", "0.05", env={"PODMILL_TEST_STAGE_DELAY": "transcribe:1.5"})
    seen: list[dict[str, str]] = []

    def finished() -> bool:
        current = alice.page(f"/view/jobs/{job_id}/status").json()
        stages = {s["stage"]: s["status"] for s in current["stages"]}
        if not seen or seen[-1] != stages:
            seen.append(stages)
        return current["terminal"]

    wait_for(finished, 60, f"job {job_id} to finish", detail=site.workers.logs)
    assert seen[-1] == dict.fromkeys(seen[-1], "done")
    assert {"fetch": "done", "transcribe": "running"}.items() <= seen[
        next(i for i, s in enumerate(seen) if s["transcribe"] == "running")
    ].items()
    done = alice.page(f"/view/jobs/{job_id}").text
    assert (
        f'href="/view/episode/{site.api("alice").get(f"/jobs/{job_id}").json()["episode_key"]}"'
        in (done)
    )
    assert "wf-done" in done  # the waterfall's bars


def test_uploading_a_file_queues_it_as_post_jobs_does(
    site: Site, browsers: dict[str, Browser]
) -> None:
    alice = browsers["alice"]
    audio = (DEMO / "sonnet001.mp3").read_bytes()
    token = alice.csrf()
    job_id = job_id_of(
        alice.post(
            "/view/jobs/upload",
            data={"csrf": token},
            files={"file": ("sonnet.mp3", audio, "audio/mpeg")},
        )
    )
    job = site.api("alice").get(f"/jobs/{job_id}").json()
    # the API's upload, byte for byte: the same tenant's same bytes are the same job
    again = site.api("alice").post("/jobs", files={"file": ("again.mp3", audio, "audio/mpeg")})
    assert again.status_code == 202, again.text
    assert again.json()["job"]["id"] == job_id and again.json()["created"] is False
    assert job["episode_key"] == again.json()["job"]["episode_key"]


@pytest.mark.parametrize(
    ("form", "sent", "status", "says"),
    [
        ("url", "nope", 422, "URL 'nope' must start with http:// or https://"),
        ("url", "http://127.0.0.1:9/feed", 422, "a loopback address"),
        ("upload", b"%PDF-1.4 not audio", 415, "is not audio"),
        ("upload", b"", 422, "is empty"),
        # over the cap, within the multipart framing allowance: the upload's own check
        ("upload", "padded", 413, f"larger than {MAX_UPLOAD} bytes"),
    ],
)
def test_a_refused_submission_is_a_message_on_the_form(
    site: Site, browsers: dict[str, Browser], form: str, sent: object, status: int, says: str
) -> None:
    alice = browsers["alice"]
    before = site.api("alice").get("/jobs").json()
    token = alice.csrf()
    if form == "url":
        answer = alice.post("/view/jobs", data={"csrf": token, "url": sent})
    else:
        body = (
            (DEMO / "sonnet001.mp3").read_bytes() + b"\0" * (MAX_UPLOAD - 400_000)
            if sent == "padded"
            else sent
        )
        answer = alice.post(
            "/view/jobs/upload", data={"csrf": token}, files={"file": ("f.mp3", body, "audio/mpeg")}
        )
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    [message] = alerts(answer.text)
    assert says in message.replace("&#39;", "'"), message
    assert 'id="submit-url"' in answer.text and 'id="submit-upload"' in answer.text
    assert site.api("alice").get("/jobs").json() == before  # nothing queued
    assert not [p for p in (site.db.data_dir / "uploads").glob("*") if p.name.startswith(".")]


def test_forms_without_the_session_csrf_token_are_refused(
    site: Site, browsers: dict[str, Browser]
) -> None:
    alice, root = browsers["alice"], browsers["root"]
    before = site.api("alice").get("/jobs").json()
    for token in (None, "forged", root.csrf()):  # root's token is not alice's
        data = {"url": "http://127.0.0.1:9/shows/csrf.mp3"}
        if token:
            data["csrf"] = token
        answer = alice.post("/view/jobs", data=data)
        assert answer.status_code == 403, answer.text
        assert "This form expired" in answer.text
    assert site.api("alice").get("/jobs").json() == before
    upload = alice.post(
        "/view/jobs/upload",
        files={"file": ("s.mp3", (DEMO / "sonnet001.mp3").read_bytes(), "audio/mpeg")},
    )
    assert upload.status_code == 403
    assert root.post("/view/ops/queues/fetch/pause", data={"csrf": "forged"}).status_code == 403
    assert queue(site, "fetch")["paused"] is False
    # no session at all: refused before the body is read
    anonymous = httpx.post(site.server.url + "/view/ops/queues/fetch/pause", data={"csrf": "x"})
    assert anonymous.status_code == 401
    assert queue(site, "fetch")["paused"] is False


def test_jobs_page_needs_a_login(site: Site) -> None:
    answer = httpx.get(site.server.url + "/view/jobs", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/view/jobs"


# ------------------------------------------------------------------------ operations


def test_a_member_gets_403_on_the_operations_pages(
    site: Site, browsers: dict[str, Browser]
) -> None:
    alice = browsers["alice"]
    page = alice.page("/view/ops")
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "Operations are for admins" in page.text
    assert 'href="/view/ops"' not in alice.page("/view/jobs").text  # not in the nav either
    token = alice.csrf()
    assert alice.post("/view/ops/queues/fetch/pause", data={"csrf": token}).status_code == 403
    assert alice.post("/view/ops/dead/1/retry", data={"csrf": token}).status_code == 403
    assert queue(site, "fetch")["paused"] is False
    root_page = browsers["root"].page("/view/ops")
    assert root_page.status_code == 200
    assert 'href="/view/ops"' in root_page.text


def test_pause_and_resume_buttons_change_the_queue(
    site: Site, browsers: dict[str, Browser], workers: Workers
) -> None:
    root = browsers["root"]
    token = root.csrf("/view/ops")
    paused = root.post("/view/ops/queues/fetch/pause", data={"csrf": token})
    assert paused.status_code == 303
    assert paused.headers["location"] == "/view/ops?done=pause&stage=fetch#queues"
    assert queue(site, "fetch")["paused"] is True
    page = root.page(paused.headers["location"]).text
    assert "Paused fetch" in page
    assert 'action="/view/ops/queues/fetch/resume"' in page
    assert 'action="/view/ops/queues/fetch/pause"' not in page

    try:
        job_id = submit_url(root, "http://127.0.0.1:9/shows/paused.mp3")
        workers.start("--poll", "0.05")
        time.sleep(0.5)  # several claim rounds: a paused stage is not claimed
        status = root.page(f"/view/jobs/{job_id}/status").json()
        assert status["paused"] == ["fetch"] and status["stages"][0]["status"] == "pending"
        assert site.db.step(job_id, "fetch")["attempts"] == 0
    finally:
        resumed = root.post("/view/ops/queues/fetch/resume", data={"csrf": token})
    assert resumed.status_code == 303
    assert queue(site, "fetch")["paused"] is False
    site.db.wait_jobs([job_id], timeout=60)
    assert 'action="/view/ops/queues/fetch/pause"' in root.page("/view/ops").text
    assert root.post("/view/ops/queues/nosuch/pause", data={"csrf": token}).status_code == 404


def test_a_dead_step_is_shown_and_its_retry_button_runs_it_again(
    site: Site, browsers: dict[str, Browser], workers: Workers
) -> None:
    root = browsers["root"]
    failing = workers.start("--poll", "0.05", env={"PODMILL_TEST_FAIL_STAGES": "segment"})
    job_id = submit_url(root, "http://127.0.0.1:9/shows/poison.mp3")
    site.db.wait_step(job_id, "segment", "dead", timeout=60)  # 3 attempts with backoff
    failing.proc.terminate()
    failing.wait(timeout=30)
    step_id = site.db.step(job_id, "segment")["id"]

    page = root.page("/view/ops").text
    row = re.search(rf'<tr data-step="{step_id}">(.*?)</tr>', page, re.S)
    assert row, page
    assert "segment fails on purpose" in row.group(1)
    assert "3/3" in row.group(1)
    assert f'action="/view/ops/dead/{step_id}/retry"' in row.group(1)
    assert re.search(rf'<tr data-job="{job_id}">.*?status-failed', page, re.S)

    token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    retried = root.post(f"/view/ops/dead/{step_id}/retry", data={"csrf": token})
    assert retried.status_code == 303
    assert f"Queued dead step {step_id} again" in root.page(retried.headers["location"]).text
    assert step_id not in [d["step_id"] for d in site.api("root").get("/admin/dead").json()]
    assert site.db.step(job_id, "segment")["status"] == "pending"
    # the same button again: that step is no longer dead
    assert root.post(f"/view/ops/dead/{step_id}/retry", data={"csrf": token}).status_code == 404

    workers.start("--poll", "0.05")
    site.db.wait_jobs([job_id], timeout=60)
    assert site.db.runs()[(job_id, "segment")] == 1  # it ran, once, after the retry
    page = root.page("/view/ops").text
    assert f'<tr data-step="{step_id}">' not in page
    job_row = re.search(rf'<tr data-job="{job_id}">(.*?)</tr>', page, re.S)
    assert job_row and "status-done" in job_row.group(1)
    assert job_row.group(1).count("<rect") == len(site.db.steps(job_id))  # every stage's bar


def test_operations_page_shows_workers_and_health(
    site: Site, browsers: dict[str, Browser], workers: Workers
) -> None:
    worker = workers.start("--poll", "0.05")
    page = browsers["root"].page("/view/ops").text
    health = site.server.client().get("/health").json()  # a local caller: the detail
    assert f'Health: <span class="badge health-{health["status"]}">' in page
    for name in health["checks"]:
        assert f"<strong>{name}</strong>" in page
    row = re.search(
        rf"<tr>\s*<td><code class=\"key\">[^<]*:{worker.pid}:[^<]*</code>(.*?)</tr>", page, re.S
    )
    assert row, page
    assert "worker-running" in row.group(1)
    age = float(re.search(r"([\d.]+) s ago", row.group(1)).group(1))  # type: ignore[union-attr]
    assert 0 <= age < 30


def test_read_only_view_shows_operations_without_buttons(site: Site, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "view.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "podmill",
                "view",
                "--db",
                site.db.url,
                "--data-dir",
                str(site.db.data_dir),
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=podmill_env(),
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            return httpx.get(url + "/view/ops", timeout=2).status_code == 200

        wait_for(up, 60, "podmill view to answer", detail=log.read_text)
        page = httpx.get(url + "/view/ops").text
        assert '<h2 id="queues-h">Queues</h2>' in page and "Recent jobs" in page
        for stage in ("fetch", "publish"):
            assert f'<tr data-stage="{stage}"' in page
        assert "<form" not in page.split("<main", 1)[1]  # no buttons
        assert 'href="/view/jobs"' not in page
        assert httpx.get(url + "/view/jobs").status_code == 404
        assert (
            httpx.post(url + "/view/ops/queues/fetch/pause", data={"csrf": "x"}).status_code == 405
        )
    finally:
        proc.terminate()
        proc.wait(timeout=15)


# --------------------------------------------------------------------------- browser
# The pages link no icon yet; the browser's own /favicon.ico request is not the page's.
FAVICON = r"/favicon\.ico"


@pytest.mark.browser
def test_browser_retries_a_dead_step_from_the_operations_page(
    site: Site, workers: Workers, page: Any, watch: Watch
) -> None:
    from support.browser import axe_check, login, screenshot

    watch.allow(FAVICON)

    failing = workers.start("--poll", "0.05", env={"PODMILL_TEST_FAIL_STAGES": "decide"})
    made = site.api("root").post("/jobs", json={"url": "http://127.0.0.1:9/shows/browser.mp3"})
    job_id = made.json()["job"]["id"]
    site.db.wait_step(job_id, "decide", "dead", timeout=60)
    failing.proc.terminate()
    failing.wait(timeout=30)
    step_id = site.db.step(job_id, "decide")["id"]
    workers.start("--poll", "0.05")

    login(page, site.server.url, site.keys["root"], "/view/ops")
    row = page.locator(f'tr[data-step="{step_id}"]')
    assert "decide fails on purpose" in row.inner_text()
    axe_check(page)
    screenshot(page, "ops")
    with page.expect_navigation():
        row.get_by_role("button", name=f"Retry step {step_id} (decide)").click()
    assert f"Queued dead step {step_id} again" in page.locator(".notice").inner_text()
    site.db.wait_jobs([job_id], timeout=60)
    assert site.db.runs()[(job_id, "decide")] == 1
    page.reload()
    assert page.locator(f'tr[data-step="{step_id}"]').count() == 0
    assert "done" in page.locator(f'tr[data-job="{job_id}"] .badge').inner_text()


@pytest.mark.browser
def test_browser_submits_a_job_and_watches_its_stages_without_reloading(
    site: Site, workers: Workers, page: Any, watch: Watch
) -> None:
    from support.browser import axe_check, login, screenshot

    watch.allow(FAVICON)

    login(page, site.server.url, site.keys["alice"], "/view/jobs")
    axe_check(page)
    page.fill("#url", "http://127.0.0.1:9/shows/watched.mp3")
    with page.expect_navigation():
        page.get_by_role("button", name="Queue it").click()
    assert page.inner_text("#job-status") == "pending"
    page.evaluate("() => { window.__samePage = true }")  # gone if the page reloads
    workers.start("--poll", "0.05", env={"PODMILL_TEST_STAGE_DELAY": "transcribe:1.5"})
    seen = [page.inner_text('tr[data-stage="transcribe"] [data-field="status"]')]
    deadline = time.monotonic() + 60
    while page.inner_text("#job-status") != "done":
        assert time.monotonic() < deadline, f"the page never showed done; saw {seen}"
        now = page.inner_text('tr[data-stage="transcribe"] [data-field="status"]')
        if now != seen[-1]:
            seen.append(now)
        page.wait_for_timeout(100)
    assert "running" in seen, seen  # the running stage was shown while it ran
    assert page.evaluate("() => window.__samePage === true")
    assert (
        page.locator("#job-done a").get_attribute("href", timeout=1000).startswith("/view/episode/")
    )
    assert page.locator("#job-waterfall rect.wf-done").count() == len(
        page.locator("tr[data-stage]").all()
    )
    axe_check(page)
    screenshot(page, "job")
    page.goto(site.server.url + "/view/jobs")
    screenshot(page, "jobs")


@pytest.mark.browser
def test_browser_refuses_a_file_over_the_cap_before_sending_it(
    site: Site, page: Any, watch: Watch, tmp_path: Path
) -> None:
    from support.browser import login

    watch.allow(FAVICON)

    big = tmp_path / "big.mp3"
    big.write_bytes((DEMO / "sonnet001.mp3").read_bytes() + b"\0" * MAX_UPLOAD)
    login(page, site.server.url, site.keys["alice"], "/view/jobs")
    before = site.api("alice").get("/jobs").json()
    page.set_input_files("#file", str(big))
    page.get_by_role("button", name="Upload and queue").click()
    message = page.locator("#upload-error")
    assert "larger than this server's limit" in message.inner_text()
    assert page.url.endswith("/view/jobs")
    assert site.api("alice").get("/jobs").json() == before
