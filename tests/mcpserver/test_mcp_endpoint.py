"""``/mcp`` of ``create_app`` in-process (FastAPI's TestClient) over an empty migrated
database: what the endpoint serves before any tool runs — POST only, the API's 401, and
under ``--no-auth`` no answer to a Host or Origin that is not loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from podmill.platform import Platform
from podmill.settings import Settings

pytest.importorskip("fastapi", reason="pip install 'podmill[server]'")

from fastapi.testclient import TestClient

from podmill.api.app import create_app

from support.api import assert_error

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream"}
LOOPBACK = "http://127.0.0.1:8000"


def _settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", db=db_url)


def _key(settings: Settings, tenant: str) -> str:
    service = Platform(settings)
    try:
        service.create_tenant(tenant)
        return service.create_key(tenant)[1]
    finally:
        service.close()


def test_only_post_is_served_and_only_with_a_key(tmp_path: Path, db_url: str) -> None:
    settings = _settings(tmp_path, db_url)
    auth = {**ACCEPT, "Authorization": f"Bearer {_key(settings, 'alice')}"}
    app = create_app(settings)
    for _run in range(2):  # the app starts twice: each start has its own session manager
        with TestClient(app) as client:
            answer = client.post("/mcp", json=INITIALIZE, headers=auth)
            assert answer.status_code == 200, answer.text
            assert answer.json()["result"]["serverInfo"]["name"] == "podmill"
            for method in ("GET", "DELETE"):  # stateless: no stream to open, no session
                for headers in (auth, ACCEPT):
                    refused = client.request(method, "/mcp", headers=headers)
                    assert_error(refused, 405, "method_not_allowed")
                    assert refused.headers["allow"] == "POST"
            assert_error(client.post("/mcp", json=INITIALIZE, headers=ACCEPT), 401)


def test_no_auth_answers_loopback_hosts_and_origins_only(tmp_path: Path) -> None:
    from podmill.storage.db import upgrade

    url = f"sqlite:///{tmp_path / 'podmill.db'}"
    upgrade(url)
    with TestClient(create_app(_settings(tmp_path, url), auth=False), base_url=LOOPBACK) as client:
        assert client.post("/mcp", json=INITIALIZE, headers=ACCEPT).status_code == 200
        rebound = {**ACCEPT, "Host": "attacker.example:8000"}
        assert client.post("/mcp", json=INITIALIZE, headers=rebound).status_code == 421
        page = {**ACCEPT, "Origin": "http://attacker.example"}
        assert client.post("/mcp", json=INITIALIZE, headers=page).status_code == 403
