"""A SQLite database deleted under a running ``podmill run`` is noticed: the run fails
with one line instead of writing into the unlinked file and reporting done."""

from __future__ import annotations

from pathlib import Path

from support.embedded import start_run, steps
from support.paths import DEMO
from support.workers import wait_for


def test_database_deleted_mid_run_fails_the_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    db_file = data / "podmill.db"
    log = tmp_path / "run.log"
    run = start_run(
        DEMO / "jfk.flac",
        "--data-dir",
        data,
        "--json",
        log=log,
        PODMILL_TEST_NOOP_STAGES="1",
        PODMILL_TEST_STAGE_DELAY="segment:3",
    )
    try:
        wait_for(
            lambda: (
                db_file.exists()
                and any(s["status"] == "running" for s in steps(db_file, "segment"))
            ),
            60,
            "the run to reach segment",
            detail=log.read_text,
        )
        for path in (
            db_file,
            db_file.with_name("podmill.db-wal"),
            db_file.with_name("podmill.db-shm"),
        ):
            path.unlink(missing_ok=True)
        code = run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    output = log.read_text()
    assert code == 1, output
    assert '"status": "done"' not in output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert f"database file {db_file}" in errors[0] and "deleted or replaced" in errors[0]
    assert "Traceback" not in output
