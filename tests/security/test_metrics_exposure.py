"""Who may scrape ``/metrics`` (issue 20, item 10): a real ``podmill serve`` and a real
``podmill worker --metrics-port``. Without ``server.metrics_token`` a remote caller (a
forwarding proxy header; the proxy itself connects from loopback) gets a 401 and a local
caller the metrics; the API also takes an admin's key (a member's is a 403). With the
token set, only a request bearing it scrapes, from anywhere, loopback included. No
scrape names the data directory's path."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from podmill.platform import Platform
from podmill.settings import Settings

from support.api import ServerProcess, free_port, podmill_env, start_server
from support.workers import wait_for

REMOTE = {"X-Forwarded-For": "203.0.113.9"}
TOKEN = "6f1c2b9e0d7a4c3b8e5f1a2d9c0b7e4f"
TOKEN_ENV = {"PODMILL_SERVER__METRICS_TOKEN": TOKEN}


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def assert_refused(response: httpx.Response, status: int = 401) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == ("unauthorized" if status == 401 else "forbidden")
    assert "podmill_" not in response.text
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
        assert "server.metrics_token" in body["detail"]


def assert_metrics(response: httpx.Response, data_dir: Path) -> None:
    assert response.status_code == 200, response.text
    assert "podmill_build_info{" in response.text
    assert 'podmill_disk_free_bytes{path="data_dir"}' in response.text
    assert str(data_dir) not in response.text


def upgrade(db: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "podmill", "db", "upgrade", "--db", db],
        check=True,
        capture_output=True,
        env=podmill_env(),
    )


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Settings, str, str]:
    """A migrated SQLite database with an admin's key and a member's key."""
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir()
    upgrade(settings.database_url)
    platform = Platform(settings)
    try:
        platform.create_tenant("root", admin=True)
        platform.create_tenant("alice")
        admin_key = platform.create_key("root")[1]
        member_key = platform.create_key("alice")[1]
    finally:
        platform.close()
    return settings, admin_key, member_key


@pytest.fixture
def serve(tmp_path: Path, keys: tuple[Settings, str, str]) -> Iterator:
    started: list[ServerProcess] = []

    def start(env: dict[str, str] | None = None) -> ServerProcess:
        settings = keys[0]
        log = tmp_path / f"serve{len(started)}.log"
        started.append(start_server(settings.database_url, settings.data_dir, log, env=env))
        return started[-1]

    yield start
    for proc in started:
        proc.stop()


def test_api_metrics_without_a_token_are_for_local_callers_and_admins(
    serve, keys: tuple[Settings, str, str]
) -> None:
    settings, admin_key, member_key = keys
    proc = serve()
    url = proc.url + "/metrics"
    assert_metrics(httpx.get(url), settings.data_dir)
    assert_refused(httpx.get(url, headers=REMOTE))
    assert_refused(httpx.get(url, headers={**REMOTE, **bearer("not-a-key")}))
    assert_refused(httpx.get(url, headers={**REMOTE, **bearer(member_key)}), 403)
    assert_metrics(httpx.get(url, headers={**REMOTE, **bearer(admin_key)}), settings.data_dir)


def test_api_metrics_with_a_token_answer_only_the_token_or_an_admin(
    serve, keys: tuple[Settings, str, str]
) -> None:
    settings, admin_key, member_key = keys
    proc = serve(TOKEN_ENV)
    url = proc.url + "/metrics"
    assert_metrics(httpx.get(url, headers={**REMOTE, **bearer(TOKEN)}), settings.data_dir)
    assert_refused(httpx.get(url, headers=REMOTE))
    assert_refused(httpx.get(url, headers={**REMOTE, **bearer(TOKEN[:-1])}))
    assert_refused(httpx.get(url, headers={**REMOTE, "Authorization": TOKEN}))  # no scheme
    # a set token closes loopback too: a proxy that adds no forwarding header opens nothing
    assert_refused(httpx.get(url))
    assert_refused(httpx.get(url, headers=bearer(member_key)), 403)
    assert_metrics(httpx.get(url, headers={**REMOTE, **bearer(admin_key)}), settings.data_dir)
    assert httpx.get(proc.url + "/health", headers=REMOTE).status_code == 200  # still open


@pytest.fixture
def worker(tmp_path: Path) -> Iterator:
    db = f"sqlite:///{tmp_path / 'engine.db'}"
    upgrade(db)
    started: list[subprocess.Popen] = []

    def start(env: dict[str, str] | None = None) -> str:
        port = free_port()
        log = tmp_path / f"worker{len(started)}.log"
        command = [sys.executable, "-m", "podmill", "worker", "--db", db]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*command, "--metrics-port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=podmill_env({"PODMILL_DATA_DIR": str(tmp_path / "data"), **(env or {})}),
            )
        started.append(proc)
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(base + "/health", timeout=2).status_code in (200, 503)
            except httpx.HTTPError:
                return False

        wait_for(answers, 60, "the worker's /health", detail=log.read_text)
        return base + "/metrics"

    yield start
    for proc in started:
        proc.terminate()
    for proc in started:
        proc.wait(timeout=30)


def test_worker_metrics_without_a_token_are_for_local_callers(worker, tmp_path: Path) -> None:
    url = worker()
    assert_metrics(httpx.get(url), tmp_path / "data")
    assert_refused(httpx.get(url, headers=REMOTE))
    assert_refused(httpx.get(url, headers={**REMOTE, **bearer(TOKEN)}))  # no token is set


def test_worker_metrics_with_a_token_answer_only_the_token(worker, tmp_path: Path) -> None:
    url = worker(TOKEN_ENV)
    assert_metrics(httpx.get(url, headers={**REMOTE, **bearer(TOKEN)}), tmp_path / "data")
    assert_refused(httpx.get(url, headers={**REMOTE, **bearer("wrong")}))
    assert_refused(httpx.get(url, headers=REMOTE))
    assert_refused(httpx.get(url))  # loopback without the token
