"""Two ``podmill run`` on one data dir: the second waits for the first, naming its PID;
neither runs (or fails) the other's steps; an error is never replaced by a guess."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from podmill.settings import AsrSettings

from support.cli import run_cli
from support.embedded import start_run, steps
from support.paths import DEMO
from support.workers import wait_for


def test_second_run_on_one_data_dir_waits_for_the_first(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = tmp_path / "first.log"
    # no-op stages (no models); the first run's fetch takes a few seconds
    first = start_run(
        DEMO / "jfk.flac",
        "--data-dir",
        data,
        "--json",
        log=log,
        PODMILL_TEST_NOOP_STAGES="1",
        PODMILL_TEST_STAGE_DELAY="fetch:3",
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
        second = run_cli(
            "run",
            DEMO / "sonnet001.mp3",
            "--data-dir",
            data,
            "--json",
            env={"PODMILL_TEST_NOOP_STAGES": "1"},
            timeout=120,
        )
        assert first.wait(timeout=60) == 0, log.read_text()
    finally:
        if first.poll() is None:
            first.kill()
    assert second.code == 0, second.stderr
    waiting = [line for line in second.stderr.splitlines() if line.startswith("waiting:")]
    assert len(waiting) == 1, second.stderr
    assert f"pid {first.pid}" in waiting[0] and str(data) in waiting[0]
    (mine,) = second.json_lines()
    assert mine["status"] == "done" and mine["title"] == "sonnet001"
    assert '"status": "done"' in log.read_text()
    # each run's worker ran its own steps only: the first run never saw the second's job
    workers = {s["job_id"]: s["worker_id"] for s in steps(data / "podmill.db", "fetch")}
    assert len(set(workers.values())) == 2, workers


@pytest.mark.slow
def test_a_progress_callback_error_is_not_called_damaged_audio(tmp_path: Path) -> None:
    """The probe's path: a progress display raised KeyError inside transcription, and the
    episode failed as "the file is damaged or not audio". The error must surface as it is."""
    from podmill.errors import AudioError
    from podmill.ml.asr import transcribe

    def broken_display(position: float) -> None:
        raise KeyError("an episode this display never drew")

    started = time.monotonic()
    with pytest.raises(KeyError, match="never drew") as caught:
        transcribe(DEMO / "jfk.flac", AsrSettings(model="tiny.en"), on_progress=broken_display)
    assert not isinstance(caught.value, AudioError)
    assert time.monotonic() - started < 120
