"""Corrupt artifacts (issue 20, item 7): a truncated ``topics.json`` or a changed
transcript fails its manifest checksum on read. A real ``podmill serve`` answers 409 with
the JSON error shape (never a 500) and queues the damaged stage and its dependants again;
``podmill show`` says so in one line; running ``podmill run`` again repairs the set.

Each test processes one episode from a publisher transcript (no ASR), then damages it.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from podmill.domain import Episode, TranscriptLink
from podmill.engine.runner import Runner
from podmill.engine.store import Store
from podmill.settings import Settings

from support.api import ServerProcess, assert_error, podmill_env, start_server
from support.paths import FIXTURES

TRANSCRIPT = FIXTURES / "transcripts" / "podcast-namespace__podcasting-qa-trailer.vtt"
KEY = "c0ffee00deadbeef"  # the 16 hex digits `podmill show` expects


def _episode() -> Episode:
    return Episode(
        episode_key=KEY,
        title="Trailer",
        audio_url=None,
        transcripts=[TranscriptLink(TRANSCRIPT.as_uri(), "text/vtt")],
        allow_file_urls=True,
    )


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory (SQLite database included) holding the episode, done. Made per
    test (about a second): a job's payload names its data dir, so a copy would not do."""
    data_dir = tmp_path / "data"
    (result,) = Runner(_settings(data_dir)).run_many([_episode()])
    assert result.status == "done", result.error
    return data_dir


def _set_dir(data_dir: Path) -> Path:
    (folder,) = [p for p in (data_dir / "episodes" / KEY).iterdir() if p.name != "media"]
    return folder


def _steps(data_dir: Path) -> dict[str, str]:
    store = Store(_settings(data_dir).database_url)
    try:
        job_id = store.job_id(KEY, _set_dir(data_dir).name)
        assert job_id is not None
        job = store.job(job_id)
        assert job is not None
        return {name: step["status"] for name, step in job["steps"].items()}
    finally:
        store.close()


def _rerun(data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Counter[str]:
    """``podmill run`` again (the embedded runner); returns how often each stage ran."""
    log = tmp_path / "runs.log"
    monkeypatch.setenv("PODMILL_TEST_RUN_LOG", str(log))
    (result,) = Runner(_settings(data_dir)).run_many([_episode()])
    assert result.status == "done", result.error
    lines = log.read_text().splitlines() if log.exists() else []
    return Counter(line.split()[1] for line in lines)


@pytest.fixture
def server(data_dir: Path, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """``podmill serve`` over the copy, and the key of a tenant that requested the job."""
    from podmill.platform import Platform

    settings = _settings(data_dir)
    platform = Platform(settings)
    try:
        platform.create_tenant("alice")
        _key_id, key = platform.create_key("alice")
        tenant = platform.tenant("alice")
        assert tenant is not None
        job_id = platform.store.job_id(KEY, _set_dir(data_dir).name)
        with platform.engine.begin() as conn:
            platform.add_requests(conn, job_id, [tenant.id], None)
    finally:
        platform.close()
    proc = start_server(settings.database_url, data_dir, tmp_path / "serve.log")
    try:
        yield proc, key
    finally:
        proc.stop()


DOWNSTREAM_OF_SYNTHESIZE = {"synthesize", "index", "publish"}


def test_truncated_topics_is_409_requeued_and_repaired_by_a_rerun(
    data_dir: Path,
    server: tuple[ServerProcess, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    proc, key = server
    topics = _set_dir(data_dir) / "topics.json"
    whole = topics.read_bytes()
    topics.write_bytes(whole[: len(whole) // 2])  # a torn write, a bad sector

    with proc.client(key) as client:
        body = assert_error(client.get(f"/episodes/{KEY}"), 409, "artifact_damaged")
        assert f"episode {KEY}'s topics.json is damaged (checksum mismatch" in body["detail"]
        assert "queued for re-processing" in body["detail"]

        steps = _steps(data_dir)
        assert {s for s, status in steps.items() if status != "done"} == DOWNSTREAM_OF_SYNTHESIZE
        assert steps["synthesize"] == "pending"
        # set aside, not served again: the episode reads as being re-processed
        again = client.get(f"/episodes/{KEY}")
        assert again.status_code == 200, again.text
        assert again.json()["topics"] is None and again.json()["status"] == "running"

        ran = _rerun(data_dir, monkeypatch, tmp_path)
        assert set(ran) == DOWNSTREAM_OF_SYNTHESIZE and set(ran.values()) == {1}
        repaired = client.get(f"/episodes/{KEY}")
        assert repaired.status_code == 200, repaired.text
        assert repaired.json()["status"] == "done"
        assert repaired.json()["topics"]["root"]["title"]
    assert topics.read_bytes() == whole  # the same inputs give the same tree
    assert "Traceback" not in proc.log()


def test_changed_transcript_is_409_and_reruns_from_transcribe(
    data_dir: Path,
    server: tuple[ServerProcess, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    proc, key = server
    txt = _set_dir(data_dir) / "transcript.txt"
    original = txt.read_text()
    txt.write_text(original.replace("a", "4"))  # same size, other bytes

    with proc.client(key) as client:
        response = client.get(f"/episodes/{KEY}/transcript", params={"format": "txt"})
        body = assert_error(response, 409, "artifact_damaged")
        assert f"{KEY}'s transcript.txt is damaged (checksum mismatch)" in body["detail"]
        steps = _steps(data_dir)
        assert {s for s, status in steps.items() if status != "done"} == set(steps) - {"fetch"}

        ran = _rerun(data_dir, monkeypatch, tmp_path)
        assert set(ran) == set(steps) - {"fetch"}
        served = client.get(f"/episodes/{KEY}/transcript", params={"format": "txt"})
        assert served.status_code == 200 and served.text == original


def test_show_says_damaged_in_one_line_and_run_repairs_without_the_api(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    l1 = _set_dir(data_dir) / "summaries_l1.json"
    l1.write_text(l1.read_text().replace('"', "'", 4))
    topics = _set_dir(data_dir) / "topics.json"
    topics.write_bytes(topics.read_bytes()[:-40])

    show = subprocess.run(
        [sys.executable, "-m", "podmill", "show", KEY, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=podmill_env(),
        timeout=120,
    )
    assert show.returncode == 1
    (line,) = show.stderr.strip().splitlines()
    assert f"episode {KEY}'s topics.json is damaged (checksum mismatch" in line
    assert "podmill run" in line and "Traceback" not in show.stderr

    # `podmill run` finds the done job's set damaged and re-runs from the first damaged
    # stage (summarize_l1: synthesize, index and publish follow); the rest is kept.
    ran = _rerun(data_dir, monkeypatch, tmp_path)
    assert set(ran) == {"summarize_l1", *DOWNSTREAM_OF_SYNTHESIZE}
    assert _settings(data_dir).data_dir.joinpath("episodes", KEY).is_dir()
    fixed = subprocess.run(
        [sys.executable, "-m", "podmill", "show", KEY, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=podmill_env(),
        timeout=120,
    )
    assert fixed.returncode == 0, fixed.stderr


def test_unreadable_manifest_reruns_publish(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    manifest = _set_dir(data_dir) / "manifest.json"
    manifest.write_text('{"artifacts": {"topics.json": ')
    ran = _rerun(data_dir, monkeypatch, tmp_path)
    assert set(ran) == {"publish"}
    assert '"topics.json"' in manifest.read_text()
