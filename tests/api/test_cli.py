"""``podmill tenants`` and ``podmill keys``, as an operator runs them."""

from __future__ import annotations

from podmill.platform import Platform
from podmill.settings import Settings

from support.cli import run_cli


def test_tenants_and_keys_commands(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"PODMILL_DB": db_url}  # the commands read PODMILL_DB as well as --db
    assert run_cli("tenants", "create", "ops", "--admin", env=env).code == 0
    again = run_cli("tenants", "create", "ops", env=env)
    assert again.code == 1 and "exists already" in again.error_line
    made = run_cli("keys", "create", "ops", "--json", env=env)
    assert made.code == 0, made.stderr
    [row] = made.json_lines()
    listed = run_cli("keys", "list", "--json", env=env).json_lines()
    assert [(k["id"], k["tenant"], k["revoked_at"]) for k in listed] == [(row["id"], "ops", None)]
    assert row["key"].startswith(listed[0]["prefix"]) and row["key"] not in str(listed)

    platform = Platform(Settings(db=db_url, data_dir=tmp_path / "data"))
    try:
        assert platform.authenticate(row["key"]).name == "ops"  # type: ignore[union-attr]
        assert run_cli("keys", "revoke", str(row["id"]), "--db", db_url).code == 0
        assert platform.authenticate(row["key"]) is None
    finally:
        platform.close()
    twice = run_cli("keys", "revoke", str(row["id"]), "--db", db_url)
    assert twice.code == 1 and f"no live key {row['id']}" in twice.error_line
    missing = run_cli("keys", "create", "nobody", "--db", db_url)
    assert missing.code == 1 and "podmill tenants create" in missing.error_line
