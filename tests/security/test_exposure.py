"""What a stranger sees without a key (issue 20, item 10): ``/health`` of a real
``podmill serve`` and of a real worker's endpoint gives a remote caller its status only,
the checks to a local caller or an admin's key; every answer carries the browser
hardening headers, and the API docs still load everything they need from this origin."""

from __future__ import annotations

import re
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

# Through a reverse proxy: the proxy connects from loopback and says who really asked.
REMOTE = {"X-Forwarded-For": "203.0.113.9"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, str, str]]:
    """``podmill serve`` on SQLite, an admin's key and a member's key."""
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir()
    subprocess.run(
        [sys.executable, "-m", "podmill", "db", "upgrade", "--db", settings.database_url],
        check=True,
        capture_output=True,
        env=podmill_env(),
    )
    platform = Platform(settings)
    try:
        platform.create_tenant("root", admin=True)
        platform.create_tenant("alice")
        admin_key = platform.create_key("root")[1]
        member_key = platform.create_key("alice")[1]
    finally:
        platform.close()
    proc = start_server(settings.database_url, settings.data_dir, tmp_path / "serve.log")
    try:
        yield proc, admin_key, member_key
    finally:
        proc.stop()


def test_health_detail_only_locally_or_with_an_admin_key(
    served: tuple[ServerProcess, str, str],
) -> None:
    proc, admin_key, member_key = served
    local = httpx.get(proc.url + "/health").json()
    assert {"database", "disk"} <= set(local["checks"])

    stranger = httpx.get(proc.url + "/health", headers=REMOTE)
    assert stranger.status_code == 200 and stranger.json() == {"status": local["status"]}
    member = httpx.get(
        proc.url + "/health", headers={**REMOTE, "Authorization": f"Bearer {member_key}"}
    )
    assert member.json() == {"status": local["status"]}
    wrong = httpx.get(proc.url + "/health", headers={**REMOTE, "Authorization": "Bearer nope"})
    assert wrong.status_code == 200 and wrong.json() == {"status": local["status"]}
    admin = httpx.get(
        proc.url + "/health", headers={**REMOTE, "Authorization": f"Bearer {admin_key}"}
    )
    assert set(admin.json()["checks"]) == set(local["checks"])


HARDENING = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def test_every_answer_carries_hardening_headers_and_the_docs_still_load(
    served: tuple[ServerProcess, str, str],
) -> None:
    proc, _admin_key, _member_key = served
    with httpx.Client(base_url=proc.url) as client:
        for path in ("/health", "/nothing", "/openapi.json", "/docs", "/redoc"):
            response = client.get(path)
            for name, value in HARDENING.items():
                assert response.headers.get(name) == value, (path, name)
            csp = response.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp, path
        for page in ("/docs", "/redoc"):
            response = client.get(page)
            assert response.status_code == 200
            csp = response.headers["content-security-policy"]
            assert "script-src 'self' 'unsafe-inline'" in csp
            assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', response.text)
            assert assets, response.text[:500]
            for asset in assets:  # everything from this origin: 'self' is enough
                assert asset.startswith("/"), asset
                assert client.get(asset).status_code == 200, asset
        assert "default-src 'none'" in client.get("/health").headers["content-security-policy"]


def test_a_workers_health_endpoint_tells_a_remote_caller_its_status_only(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'engine.db'}"
    subprocess.run(
        [sys.executable, "-m", "podmill", "db", "upgrade", "--db", db],
        check=True,
        capture_output=True,
        env=podmill_env(),
    )
    port = free_port()
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "podmill", "worker", "--db", db, "--metrics-port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=podmill_env({"PODMILL_DATA_DIR": str(tmp_path / "data")}),
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(base + "/health", timeout=2).status_code in (200, 503)
            except httpx.HTTPError:
                return False

        wait_for(answers, 60, "the worker's /health", detail=log.read_text)
        local = httpx.get(base + "/health").json()
        assert "checks" in local
        remote = httpx.get(base + "/health", headers=REMOTE)
        assert remote.json() == {"status": local["status"]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
