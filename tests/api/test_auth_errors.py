"""Keys, roles and the JSON error shape every 4xx carries."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from podmill.platform import Platform
from podmill.platform.tenants import hash_key

from support.api import Caller, assert_error


def test_missing_unknown_and_revoked_keys_are_401(
    client: TestClient, platform: Platform, alice: Caller
) -> None:
    body = assert_error(client.get("/jobs"), 401, "unauthorized")
    assert "Authorization: Bearer" in body["detail"]
    assert client.get("/jobs").headers["www-authenticate"] == "Bearer"
    assert_error(client.get("/jobs", headers={"Authorization": "Bearer pm_nope"}), 401)
    assert_error(client.get("/jobs", headers={"Authorization": "Basic YTpi"}), 401)

    assert alice.get("/jobs").status_code == 200
    key_id = platform.list_keys()[-1]["id"]
    assert platform.revoke_key(key_id)
    assert_error(alice.get("/jobs"), 401, "unauthorized")


def test_keys_are_stored_hashed(platform: Platform, alice: Caller) -> None:
    [row] = [k for k in platform.list_keys() if k["tenant"] == "alice"]
    assert alice.key.startswith(row["prefix"]) and len(alice.key) > 40
    with platform.reader.connect() as conn:
        stored = conn.exec_driver_sql("SELECT key_hash FROM api_keys").scalars().all()
    assert hash_key(alice.key) in stored
    assert alice.key not in stored


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/admin/queues"),
        ("post", "/admin/queues/transcribe/pause"),
        ("post", "/admin/queues/transcribe/resume"),
        ("get", "/admin/dead"),
        ("post", "/admin/dead/1/retry"),
        ("get", "/admin/workers"),
        ("get", "/feeds"),
        ("get", "/feeds/1"),
        ("delete", "/feeds/1"),
    ],
)
def test_admin_routes_are_403_for_members(
    alice: Caller, admin: Caller, method: str, path: str
) -> None:
    assert_error(getattr(alice, method)(path), 403, "forbidden")
    assert getattr(admin, method)(path).status_code in (200, 204, 404)


def test_admin_post_feeds_is_403_for_members(alice: Caller) -> None:
    assert_error(alice.post("/feeds", json={"url": "http://127.0.0.1:9/feed.xml"}), 403)


def test_errors_are_json_a_user_can_act_on(alice: Caller) -> None:
    body = assert_error(
        alice.post("/jobs", content=b"{not json", headers={"Content-Type": "application/json"}),
        400,
        "invalid_json",
    )
    body = assert_error(alice.post("/jobs", json={"uri": "x"}), 422, "invalid_request")
    assert "uri" in body["detail"]
    assert_error(alice.post("/jobs", json={}), 422, "invalid_request")
    assert_error(alice.post("/jobs", json=["x"]), 422)
    assert_error(
        alice.post("/jobs", content=b"x", headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    body = assert_error(alice.get("/jobs?limit=zero"), 422, "invalid_request")
    assert "limit" in body["detail"]
    assert_error(alice.get("/jobs?status=bogus"), 422)
    assert_error(alice.get("/nowhere"), 404, "not_found")
    assert_error(alice.delete("/jobs"), 405, "method_not_allowed")
    assert_error(
        alice.post("/subscriptions", content=b"[", headers={"Content-Type": "application/json"}),
        400,
    )
    body = assert_error(alice.post("/jobs", json={"url": "file:///etc/passwd"}), 422)
    assert "http" in body["detail"]


def test_health_needs_no_key(client: TestClient, admin: Caller) -> None:
    # A remote caller without a key gets the status only (docs/security.md); an admin
    # gets the checks.
    assert client.get("/health").json() == {"status": "healthy"}
    health = admin.get("/health").json()
    assert health["status"] == "healthy", health
    assert {"database", "backlog", "workers", "disk", "models"} <= set(health["checks"])
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200


def test_the_api_docs_work_offline(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()  # Swagger UI comes from the package
    script = next(
        line.split('src="')[1].split('"')[0]
        for line in page.text.splitlines()
        if "swagger-ui-bundle.js" in line
    )
    assert script.startswith("/")
    assert client.get(script).status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "podmill"
