"""Bad command-line input is one line, never a surprise: ``--limit`` below 1, ``show``
keys that would reach outside the data dir, and a re-run after ``kill -9``."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from support.cli import run_cli
from support.embedded import start_run, steps
from support.paths import DEMO
from support.workers import wait_for


@pytest.mark.parametrize("value", ["0", "-1"])
@pytest.mark.parametrize(
    "command",
    [
        ["run", str(DEMO / "feed.xml")],
        ["submit", str(DEMO / "feed.xml")],
        ["jobs", "list"],
        ["search", "coffee"],
    ],
    ids=["run", "submit", "jobs-list", "search"],
)
def test_limit_below_one_is_one_line(command: list[str], value: str, tmp_path: Path) -> None:
    # before: `run --limit -1` processed all episodes but the last
    env = {"PODMILL_DATA_DIR": str(tmp_path / "data"), "PODMILL_TEST_NOOP_STAGES": "1"}
    result = run_cli(*command, "--limit", value, env=env, timeout=60)
    assert result.code == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: --limit {value}: give a number "
        + ("from 1 to 200" if command[0] == "search" else "of 1 or more")
    ]
    assert not (tmp_path / "data" / "episodes").exists()


def _published(root: Path, key: str) -> Path:
    folder = root / key / "fp"
    folder.mkdir(parents=True)
    (folder / "topics.json").write_text('{"root": {"title": "secret"}}')
    (folder / "transcript.txt").write_text("secret transcript\n")
    return folder


@pytest.mark.parametrize(
    "key",
    ["../outside", "../../elsewhere/abc", "*", "..", "/etc", "abc/../../outside", "a?c", "[a]"],
)
def test_show_reads_nothing_outside_the_data_dir(key: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "episodes").mkdir(parents=True)
    # would-be targets outside DATA_DIR/episodes, shaped like artifact sets
    _published(data, "outside")
    _published(tmp_path, "elsewhere/abc")
    _published(data / "episodes", "abc")

    result = run_cli("show", key, "--data-dir", data, "--format", "txt", timeout=60)

    assert result.code == 1, result.stdout
    assert "secret" not in result.stdout
    assert result.stderr.strip().splitlines() == [
        f"error: {key!r} is not an episode key: give the 16 hex digits `podmill run` "
        "printed (or a unique prefix of them)"
    ]


def test_show_ignores_a_symlinked_episode_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "episodes").mkdir(parents=True)
    target = _published(tmp_path, "private/abcd").parent
    (data / "episodes" / "abcd").symlink_to(target)

    result = run_cli("show", "abcd", "--data-dir", data, "--format", "txt", timeout=60)

    assert result.code == 1 and "secret" not in result.stdout
    assert result.error_line.startswith("error: no episode 'abcd'")


def test_rerun_after_kill_9_says_it_waits_for_the_dead_runs_lease(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = tmp_path / "killed.log"
    killed = start_run(
        DEMO / "jfk.flac",
        "--data-dir",
        data,
        log=log,
        PODMILL_TEST_NOOP_STAGES="1",
        PODMILL_TEST_STAGE_DELAY="fetch:120",
    )
    try:
        wait_for(
            lambda: (
                (data / "podmill.db").exists()
                and any(s["status"] == "running" for s in steps(data / "podmill.db", "fetch"))
            ),
            60,
            "the first run's fetch to start",
            detail=log.read_text,
        )
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
    (held,) = steps(data / "podmill.db", "fetch")
    assert held["status"] == "running" and f":{killed.pid}:" in held["worker_id"]

    again = run_cli(
        "run",
        DEMO / "jfk.flac",
        "--data-dir",
        data,
        "--json",
        env={"PODMILL_TEST_NOOP_STAGES": "1"},
        timeout=120,
    )

    assert again.code == 0, again.stderr  # it waited, then ran the step itself
    waiting = [line for line in again.stderr.splitlines() if line.startswith("waiting:")]
    assert len(waiting) == 1, again.stderr
    assert f"step fetch is leased to worker {held['worker_id']}" in waiting[0]
    assert re.search(r"lease to expire at \d\d:\d\d:\d\d \(in \d+s\)", waiting[0]), waiting[0]
    (line,) = again.json_lines()
    assert line["status"] == "done"
