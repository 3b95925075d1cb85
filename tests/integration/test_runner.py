"""Embedded mode on a real SQLite database: the engine in-process, and atomic ranges."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from podmill.domain import Episode, TranscriptLink
from podmill.engine.runner import Runner, run_pipeline
from podmill.errors import StageError
from podmill.pipeline.dag import STAGE_NAMES, stage
from podmill.pipeline.stages import STAGE_FUNCTIONS
from podmill.settings import Settings
from podmill.storage.models import JobRow as Job
from podmill.storage.models import StepRow as Step

from support.paths import DEMO, FIXTURES

TRANSCRIPT = FIXTURES / "transcripts" / "podcast-namespace__podcasting-qa-trailer.vtt"


def transcript_episode(key: str = "ep-vtt") -> Episode:
    return Episode(
        episode_key=key,
        title="Trailer",
        audio_url=None,
        transcripts=[TranscriptLink(TRANSCRIPT.as_uri(), "text/vtt")],
        allow_file_urls=True,
    )


def steps(settings: Settings, key: str) -> dict[str, Step]:
    runner = Runner(settings)
    with runner.sessions() as session:
        job = session.scalars(select(Job).where(Job.episode_key == key)).one()
        rows = session.scalars(select(Step).where(Step.job_id == job.id)).all()
        return {row.stage: row for row in rows}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", pipeline={"retry_delay_scale": 0.01})


def test_ranges_then_rest_then_skip(settings: Settings) -> None:
    episode = Episode(
        episode_key="jfk",
        title="jfk",
        audio_url=(DEMO / "jfk.flac").as_uri(),
        allow_file_urls=True,
    )
    first = run_pipeline(settings, episode, end_stage="transcribe")
    assert set(first) == {"fetch", "transcribe"} and all(v > 0 for v in first.values())

    rest = run_pipeline(settings, episode, start_stage="segment")
    assert set(rest) == set(STAGE_NAMES) - {"fetch", "transcribe"}
    assert all(v > 0 for v in rest.values())

    again = run_pipeline(settings, episode)
    assert set(again.values()) == {0.0}  # every stage's artifacts exist: all skipped


def test_start_stage_without_inputs_fails_clearly(settings: Settings) -> None:
    with pytest.raises(StageError, match="segment") as caught:
        run_pipeline(settings, transcript_episode(), start_stage="segment")
    assert "transcript.json" in str(caught.value)


def test_transient_failure_is_retried(settings: Settings, monkeypatch) -> None:
    calls = {"n": 0}
    real = STAGE_FUNCTIONS["index"]

    def flaky(ctx):
        calls["n"] += 1
        if calls["n"] < 3:
            raise RuntimeError("disk hiccup")
        real(ctx)

    monkeypatch.setitem(STAGE_FUNCTIONS, "index", flaky)
    (result,) = Runner(settings).run_many([transcript_episode()])
    assert result.status == "done"
    step = steps(settings, "ep-vtt")["index"]
    assert (step.status, step.attempts) == ("done", 3)


def test_permanent_failure_names_stage_and_spares_other_episodes(settings, monkeypatch) -> None:
    real = STAGE_FUNCTIONS["decide"]

    def broken(ctx):
        if ctx.episode.episode_key == "bad":
            raise RuntimeError("model exploded")
        real(ctx)

    monkeypatch.setitem(STAGE_FUNCTIONS, "decide", broken)
    runner = Runner(settings)
    results = runner.run_many([transcript_episode("bad"), transcript_episode("good")])
    by_key = {r.episode_key: r for r in results}
    assert by_key["good"].status == "done"
    bad = by_key["bad"]
    assert bad.status == "failed" and bad.failed_stage == "decide"
    assert "model exploded" in bad.error
    rows = steps(settings, "bad")
    assert rows["decide"].status == "dead"
    assert rows["decide"].attempts == stage("decide").retry.max_attempts
    assert rows["summarize_l1"].status == "done"  # the parallel branch was not affected
    # Nothing after the dead step runs: its successors stay waiting.
    assert {rows[s].status for s in ("subsegment", "summarize_l2", "synthesize", "publish")} == {
        "waiting"
    }
    with runner.sessions() as session:
        job = session.scalars(select(Job).where(Job.episode_key == "bad")).one()
        assert job.status == "failed"


def test_join_runs_once_after_both_branches(settings: Settings, monkeypatch) -> None:
    events: list[str] = []
    lock = threading.Lock()

    def recorded(name):
        real = STAGE_FUNCTIONS[name]

        def wrapper(ctx):
            with lock:
                events.append(f"start:{name}")
            real(ctx)
            with lock:
                events.append(f"end:{name}")

        return wrapper

    for name in STAGE_NAMES:
        monkeypatch.setitem(STAGE_FUNCTIONS, name, recorded(name))
    (result,) = Runner(settings).run_many([transcript_episode()])
    assert result.status == "done"
    assert events.count("start:synthesize") == 1
    join = events.index("start:synthesize")
    assert events.index("end:summarize_l1") < join and events.index("end:summarize_l2") < join
    tree = json.loads(Path(result.artifacts["topics"]).read_text())
    assert tree["root"]["children"]
