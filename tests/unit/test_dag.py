"""The stage graph is declared once and everything reads it."""

from __future__ import annotations

import pytest

from podmill.pipeline.dag import STAGE_NAMES, STAGES, ancestors, stage, stage_range
from podmill.pipeline.stages import STAGE_FUNCTIONS


def test_every_stage_has_a_function_and_outputs() -> None:
    assert set(STAGE_FUNCTIONS) == set(STAGE_NAMES)
    assert all(s.outputs for s in STAGES)
    outputs = [o for s in STAGES for o in s.outputs]
    assert len(outputs) == len(set(outputs))  # one stage owns each artifact


def test_shape_matches_design() -> None:
    assert stage("synthesize").join and stage("synthesize").after == (
        "summarize_l1",
        "summarize_l2",
    )
    assert [s.name for s in STAGES if s.join] == ["synthesize"]
    assert stage("summarize_l1").after == ("segment",)  # runs beside decide → subsegment
    assert "decide" not in ancestors("summarize_l1")
    assert ancestors("publish") == set(STAGE_NAMES) - {"publish"}


def test_ranges() -> None:
    assert stage_range() == STAGE_NAMES
    assert stage_range("segment", "synthesize") == (
        "segment",
        "decide",
        "subsegment",
        "summarize_l1",
        "summarize_l2",
        "synthesize",
    )
    assert stage_range("decide", "summarize_l2") == ("decide", "subsegment", "summarize_l2")
    assert stage_range(end="transcribe") == ("fetch", "transcribe")
    with pytest.raises(ValueError, match="unknown stage"):
        stage_range("nope")
    with pytest.raises(ValueError, match="no stages"):
        stage_range("publish", "fetch")


def test_backoff_grows_and_caps() -> None:
    policy = stage("fetch").retry
    delays = [policy.backoff.ceiling(n) for n in range(1, 12)]
    assert delays == sorted(delays) and delays[-1] == policy.max_delay
