"""``podmill submit`` again: the revive rule of podmill.engine.submit, as an operator sees it.

Submitting an episode whose job failed or was cancelled queues it again (it used to
return the old job untouched); a done job is left done. The episode's catalog row is
written by the submit itself (it used to wait for the publish stage).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from support.cli import run_cli
from support.paths import DEMO
from support.workers import EngineDB, finish_job


def test_submit_again_runs_a_failed_or_cancelled_job_and_leaves_a_done_one(
    engine_db: EngineDB, tmp_path: Path
) -> None:
    store = engine_db.store

    def submit() -> dict:
        result = run_cli(
            "submit", DEMO / "jfk.flac", "--db", engine_db.url, "--data-dir", tmp_path / "data",
            "--json",
        )  # fmt: skip
        assert result.code == 0, result.stderr
        [line] = result.json_lines()
        return line

    first = submit()
    job_id = first["job_id"]
    assert first["created"] is True and first["revived"] is False
    with engine_db.engine.connect() as conn:
        title = conn.execute(
            text("SELECT title FROM episodes WHERE episode_key = :key"),
            {"key": first["episode_key"]},
        ).scalar_one()
    assert title == "jfk"  # the catalog row is there before any stage ran

    [fetch] = store.claim("test-worker", ["fetch"])
    assert store.fail(fetch.step_id, fetch.lease_token, "HTTP 404", retryable=False) == "dead"
    assert store.job(job_id)["status"] == "failed"
    assert submit() == {**first, "created": False, "revived": True}
    step = store.job(job_id)["steps"]["fetch"]
    assert (step["status"], step["attempts"], step["error"]) == ("pending", 0, None)

    assert store.cancel_job(job_id)
    assert submit()["revived"] is True
    assert store.job(job_id)["steps"]["fetch"]["status"] == "pending"

    finish_job(store, job_id)
    assert submit() == {**first, "created": False, "revived": False}
    assert {s["status"] for s in store.job(job_id)["steps"].values()} == {"done"}
