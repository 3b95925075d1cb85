"""``--db`` means the same in every command: without it, the data directory's SQLite file.

``submit``, ``worker``, ``jobs``, ``queues`` and ``dead`` used to demand ``--db`` while
``run``, ``serve``, ``search`` and ``digest`` defaulted to ``DATA_DIR/podmill.db``; now a
queue on one machine needs no URL at all, and ``PODMILL_DB`` / ``--db`` still override.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.cli import run_cli
from support.paths import DEMO


def _worker(data_dir: Path, run_log: Path) -> subprocess.CompletedProcess[str]:
    """A real worker with only ``--data-dir``, exiting once idle (no models: noop stages)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODMILL_")}
    env.update(PODMILL_TEST_NOOP_STAGES="1", PODMILL_TEST_RUN_LOG=str(run_log))
    return subprocess.run(
        [sys.executable, "-m", "podmill", "worker", "--data-dir", str(data_dir),
         "--max-idle", "1"],
        capture_output=True, text=True, env=env, timeout=120,  # a safety bound
    )  # fmt: skip


def test_submit_worker_and_jobs_meet_in_the_data_dir_without_db(tmp_path: Path) -> None:
    data = tmp_path / "data"
    submitted = run_cli("submit", DEMO / "jfk.flac", "--data-dir", data, "--json")
    assert submitted.code == 0, submitted.stderr
    [line] = submitted.json_lines()
    assert (data / "podmill.db").is_file()

    worker = _worker(data, tmp_path / "runs.log")
    assert worker.returncode == 0, worker.stderr
    assert f"sqlite:///{data / 'podmill.db'}" in worker.stderr  # the worker names it

    [job] = run_cli("jobs", "show", line["job_id"], "--data-dir", data, "--json").json_lines()
    assert job["status"] == "done" and job["episode_key"] == line["episode_key"]
    queues = run_cli("queues", "list", "--data-dir", data, "--json").json_lines()
    assert {q["stage"]: q["done"] for q in queues}["publish"] == 1
    dead = run_cli("dead", "list", "--data-dir", data, "--json")
    assert dead.code == 0 and dead.json_lines() == []


def test_podmill_db_and_the_db_option_override_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'podmill.db'}"
    submitted = run_cli("submit", DEMO / "jfk.flac", "--data-dir", data, "--json")
    assert submitted.code == 0, submitted.stderr
    [line] = submitted.json_lines()
    elsewhere = tmp_path / "elsewhere"

    via_env = run_cli("jobs", "list", "--data-dir", elsewhere, "--json", env={"PODMILL_DB": url})
    assert [j["id"] for j in via_env.json_lines()] == [line["job_id"]], via_env.stderr
    via_option = run_cli(
        "jobs", "list", "--data-dir", elsewhere, "--db", url, "--json",
        env={"PODMILL_DB": f"sqlite:///{tmp_path / 'other.db'}"},
    )  # fmt: skip
    assert [j["id"] for j in via_option.json_lines()] == [line["job_id"]], via_option.stderr
    assert not elsewhere.exists()  # neither read created a database there


# The commands that never open a database: they read files (`show`), print settings
# (`config show`), or drive a server over HTTP (`stress soak|ramp`).
NO_DATABASE = {
    ("show",),
    ("config", "show"),
    ("stress", "ramp"),
    ("stress", "soak"),
    ("stress", "capture"),  # Prometheus and Jaeger only
}


def test_every_command_that_opens_a_database_takes_db() -> None:
    from podmill.cli.app import app

    from support.cli import commands

    lacking = {
        words
        for words, command in commands(app).items()
        if "--db" not in {flag for param in command.params for flag in getattr(param, "opts", [])}
    }
    assert lacking == NO_DATABASE


def test_run_writes_the_database_db_names(tmp_path: Path) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere.db"
    ran = run_cli(
        "run", DEMO / "jfk.flac", "--data-dir", data, "--db", f"sqlite:///{elsewhere}",
        "--json", env={"PODMILL_TEST_NOOP_STAGES": "1"},
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    [line] = ran.json_lines()
    assert elsewhere.is_file() and not (data / "podmill.db").exists()
    listed = run_cli("episodes", "list", "--db", f"sqlite:///{elsewhere}", "--json")
    assert [e["episode_key"] for e in listed.json_lines()] == [line["episode_key"]]
