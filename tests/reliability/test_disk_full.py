"""A full disk: the embedded run ends with one line; a worker releases the step and says
it is degraded (docs/security.md, "The embedded run")."""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from podmill.domain import Episode
from podmill.engine.store import Store
from podmill.storage import db as storage_db

from support.embedded import run_env, small_tmpfs, steps
from support.paths import DEMO
from support.workers import wait_for

# The demo clip (1.1 MiB) does not fit; the database (about 220 KiB) does.
TMPFS_SIZE = "900k"
FILE_SIZE_LIMIT = 900 * 1024


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None] | None]]:
    """A data dir too small for the audio: a small tmpfs (ENOSPC) where this sandbox can
    mount one, else a file-size limit on the subprocess (EFBIG)."""
    probe = subprocess.run(["mount", "--version"], capture_output=True)
    if probe.returncode == 0:
        try:
            with small_tmpfs(tmp_path / "disk", TMPFS_SIZE) as disk:
                yield disk / "data", None
                return
        except pytest.skip.Exception:
            pass

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))

    yield tmp_path / "data", limit


def test_embedded_run_on_a_full_disk_ends_with_one_line(full_disk) -> None:
    data, limit = full_disk
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "podmill", "run", str(DEMO / "jfk.flac"), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        env=run_env(),
        preexec_fn=limit,
        timeout=120,
    )
    seconds = time.monotonic() - started

    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "disk full in stage fetch" in errors[0]
    assert "No space left on device" in errors[0] or "too large" in errors[0], errors[0]
    mentions = [line for line in proc.stderr.splitlines() if "space" in line.lower()]
    assert mentions == errors, proc.stderr  # said once, not once per retry
    assert seconds < 60, f"took {seconds:.0f}s: retried instead of stopping"
    (fetch,) = steps(data / "podmill.db", "fetch")
    # released, not failed: pending again, the attempt not counted, no error recorded
    assert (fetch["status"], fetch["attempts"], fetch["error"]) == ("pending", 0, None)
    assert fetch["released_count"] == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as answer:  # 503: the tiny disk's own check is unhealthy
        return json.loads(answer.read())


@pytest.mark.postgres
def test_worker_on_a_full_disk_releases_the_step_and_is_degraded(
    full_disk, postgres_url: str, http_server, tmp_path: Path
) -> None:
    data, limit = full_disk
    audio = http_server.add_file("/jfk.flac", DEMO / "jfk.flac", "audio/flac")
    storage_db.upgrade(postgres_url)
    store = Store(postgres_url)
    episode = Episode(episode_key="full-disk", title="full disk", audio_url=audio)
    payload = {
        "episode": episode.to_dict(),
        "settings": {"data_dir": str(data), "allow_private_networks": True},
    }
    job_id, _ = store.submit(episode.episode_key, "fp", payload)
    port = _free_port()
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "podmill", "worker", "--db", postgres_url),
                *("--pool", "io=1", "--metrics-port", str(port)),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=run_env(PODMILL_DATA_DIR=str(data)),
            preexec_fn=limit,
        )
    try:
        wait_for(
            lambda: _health(port)["checks"]["writes"]["status"] == "degraded",
            60,
            "the worker to report a full disk",
            detail=log.read_text,
        )
        health = _health(port)
        assert health["status"] in ("degraded", "unhealthy")
        assert "disk full in stage fetch" in health["checks"]["writes"]["detail"]
        fetch = store.job(job_id)["steps"]["fetch"]
        # released, fenced, the attempt not counted: nothing burned, nothing decided
        assert (fetch["status"], fetch["attempts"], fetch["error"]) == ("pending", 0, None)
        assert store.job(job_id)["status"] in ("pending", "running")
        assert worker.poll() is None, log.read_text()  # degraded, not dead
        text = log.read_text()
        assert "Traceback" not in text
        assert text.count("disk full in stage fetch") == 1, text  # it pauses, no busy loop
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        store.close()
