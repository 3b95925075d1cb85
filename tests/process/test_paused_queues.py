"""A paused stage, as an operator sees it (issue 21, item 5).

After ``podmill queues pause transcribe`` a job stopped at "running 1/10" with nothing
saying why. ``jobs list`` and ``jobs show`` (and their ``--json``) now name the paused
stages a job waits on, with the command that resumes them, and an embedded
``podmill run`` held back by a pause says so instead of looking stuck.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from support.cli import run_cli
from support.embedded import start_run, steps
from support.paths import DEMO
from support.workers import EngineDB, Workers, wait_for

RESUME_HINT = "paused: transcribe (no worker claims their steps) — resume with "


def test_jobs_list_and_show_name_the_paused_stage_a_job_waits_on(
    engine_db: EngineDB, workers: Workers, tmp_path: Path
) -> None:
    db = ("--db", engine_db.url)
    submitted = run_cli("submit", DEMO / "jfk.flac", *db, "--data-dir", tmp_path / "data")
    assert submitted.code == 0, submitted.stderr
    job_id = int(submitted.stdout.strip())
    assert run_cli("queues", "pause", "transcribe", *db).code == 0

    workers.start("--pool", "io=1", "--pool", "asr=1", "--pool", "cpu=1")
    engine_db.wait_step(job_id, "fetch", "done")
    time.sleep(1.0)  # several claim rounds: the paused transcribe step stays unclaimed
    assert engine_db.step(job_id, "transcribe")["status"] == "pending"

    listed = run_cli("jobs", "list", *db)
    assert listed.code == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if f" {job_id} " in line]
    assert "running" in row and "1/10" in row and "transcribe" in row
    assert "waits on paused" in listed.stdout
    hint = f"`podmill queues resume transcribe --db {shlex.quote(engine_db.url)}`"
    assert RESUME_HINT + hint in listed.stderr, listed.stderr
    [as_json] = run_cli("jobs", "list", *db, "--json").json_lines()
    assert as_json["paused"] == ["transcribe"]

    shown = run_cli("jobs", "show", str(job_id), *db)
    assert shown.code == 0, shown.stderr
    rows = {line.split()[1]: line for line in shown.stdout.splitlines() if line.startswith("│")}
    assert "pending (paused)" in rows["transcribe"]
    assert "paused" not in rows["fetch"] and "paused" not in rows["segment"]
    assert RESUME_HINT + hint in shown.stderr
    shown_json = run_cli("jobs", "show", str(job_id), *db, "--json").json_lines()[0]
    assert shown_json["paused"] == ["transcribe"]
    assert shown_json["steps"]["transcribe"]["paused"] is True
    assert shown_json["steps"]["fetch"]["paused"] is False

    # the hint works as printed, and once resumed nothing is said about pauses
    assert run_cli(*shlex.split(hint.strip("`"))[1:]).code == 0
    engine_db.wait_step(job_id, "publish", "done", timeout=60)
    after = run_cli("jobs", "list", *db)
    assert "paused" not in after.stdout + after.stderr
    assert run_cli("jobs", "list", *db, "--json").json_lines()[0]["paused"] == []

    # a finished job waits on nothing, even while the stage is paused again
    assert run_cli("queues", "pause", "transcribe", *db).code == 0
    again = run_cli("jobs", "list", *db)
    assert "waits on paused" not in again.stdout
    assert RESUME_HINT in again.stderr  # the pause itself is still worth saying
    shown_done = run_cli("jobs", "show", str(job_id), *db)
    assert "paused" not in shown_done.stdout + shown_done.stderr


def test_an_embedded_run_held_by_a_paused_stage_says_so_and_goes_on_when_resumed(
    tmp_path: Path,
) -> None:
    data = ("--data-dir", str(tmp_path / "data"))
    assert run_cli("db", "upgrade", *data).code == 0
    assert run_cli("queues", "pause", "segment", *data).code == 0
    log = tmp_path / "run.log"
    proc = start_run(DEMO / "jfk.flac", *data, log=log, PODMILL_TEST_NOOP_STAGES="1")
    try:
        wait_for(
            lambda: "waiting: stage segment is paused" in log.read_text(),
            60,
            "the run to say that segment is paused",
            detail=log.read_text,
        )
        db_file = tmp_path / "data" / "podmill.db"
        assert {s["stage"]: s["status"] for s in steps(db_file)}["segment"] == "pending"
        assert proc.poll() is None  # it waits, it does not give up
        [said] = [line for line in log.read_text().splitlines() if "segment is paused" in line]
        resume = said.split("`")[1]
        assert resume == f"podmill queues resume segment --db sqlite:///{db_file}"
        assert run_cli(*resume.split()[1:]).code == 0
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert text.count("segment is paused") == 1  # said once, not every poll
    assert "paused:" not in text  # nothing paused at the end: no footer under the summary


def test_the_run_summary_names_a_stage_still_paused(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path / "data"))
    noop = {"PODMILL_TEST_NOOP_STAGES": "1"}
    first = run_cli("run", DEMO / "jfk.flac", *data, env=noop)
    assert first.code == 0, first.stderr
    assert "paused" not in first.stderr
    assert run_cli("queues", "pause", "transcribe", *data).code == 0
    # the episode is done already, so this run needs no stage; what `podmill submit`
    # queues on this database would wait, and the summary says so
    again = run_cli("run", DEMO / "jfk.flac", *data, env=noop)
    assert again.code == 0, again.stderr
    db_file = tmp_path / "data" / "podmill.db"
    hint = f"`podmill queues resume transcribe --db sqlite:///{db_file}`"
    assert RESUME_HINT + hint in again.stderr, again.stderr
    assert again.stderr.index("podmill run") < again.stderr.index(RESUME_HINT)
