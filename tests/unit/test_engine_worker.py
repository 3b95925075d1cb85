"""Worker pools, failure classification and job settings (no database, no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from podmill.cli.engine import parse_pools
from podmill.engine.execute import is_retryable, job_settings
from podmill.engine.worker import default_pools, resolve_pools
from podmill.errors import DownloadError, FeedError, PodmillError
from podmill.pipeline.dag import STAGES
from podmill.settings import Settings


def test_profile_pools_serve_their_stages_and_a_stage_pool_takes_its_stage() -> None:
    pools = {p.name: p for p in resolve_pools({"cpu": 2, "segment": 1, "asr": 1})}
    assert pools["segment"].stages == ("segment",)
    assert "segment" not in pools["cpu"].stages
    assert "synthesize" in pools["cpu"].stages
    assert pools["asr"].stages == ("transcribe",)
    assert pools["cpu"].free == 2


def test_the_llm_pool_serves_tree_stages_of_llm_jobs_only() -> None:
    pools = {p.name: p for p in resolve_pools({"cpu": 2, "llm": 1, "asr": 1})}
    tree = {s.name for s in STAGES if s.tree}
    assert set(pools["llm"].stages) == tree
    assert pools["llm"].profiles == ("llm",)
    assert pools["cpu"].profiles == ("cpu",)
    assert tree < set(pools["cpu"].stages)
    # a stage pool takes its stage's steps whatever the job's backend
    assert set(resolve_pools({"segment": 1})[0].profiles) == {"io", "asr", "cpu", "llm"}


def test_default_pools_cover_every_stage() -> None:
    served = {s for pool in resolve_pools(default_pools()) for s in pool.stages}
    assert served == {s.name for s in STAGES}


@pytest.mark.parametrize(
    ("pools", "message"),
    [({"gpu": 1}, "unknown pool 'gpu'"), ({"asr": 0}, "at least 1 slot")],
)
def test_bad_pools_are_refused(pools: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_pools(pools)


def test_pool_flags_parse() -> None:
    assert parse_pools(["asr=1", "cpu = 3"]) == {"asr": 1, "cpu": 3}
    assert parse_pools(None) is None
    with pytest.raises(PodmillError, match="use NAME=N"):
        parse_pools(["asr"])


def test_input_errors_are_final_and_everything_else_retries() -> None:
    assert not is_retryable(FeedError("not a feed"))
    assert not is_retryable(DownloadError("404"))
    assert is_retryable(DownloadError("503", retryable=True))
    assert is_retryable(RuntimeError("model crashed"))


def test_job_settings_are_the_submitters_over_the_workers(tmp_path: Path) -> None:
    worker = Settings(data_dir=tmp_path / "worker", topics={"min_topic_seconds": 45})
    payload = {"data_dir": str(tmp_path / "shared"), "topics": {"window_sentences": 5}}
    merged = job_settings(payload, worker)
    assert merged.data_dir == tmp_path / "shared"
    assert merged.topics.window_sentences == 5
    assert merged.topics.min_topic_seconds == 45
    assert job_settings(payload).topics.min_topic_seconds == 30.0
