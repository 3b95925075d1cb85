"""Drain order on a worker that owns both an asr and an llm pool: one model family at a
time on its device, later stages first, so a job's LLM stages follow its transcription.

A real in-process Worker on SQLite and Postgres; its step function only records when each
step ran (the models are not what is tested here: bench/drain.py measures model swaps).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from podmill.engine import Store
from podmill.engine.worker import Worker
from podmill.pipeline.dag import STAGES, step_profiles

JOBS = 3
PAYLOAD = {"episode": {"episode_key": "x", "title": "x"}, "settings": {}}
LLM_STAGES = {s.name for s in STAGES if s.tree}


def _run(url: str, order: str, asr_slots: int = 1) -> list[tuple[float, float, int, str]]:
    """Submit JOBS llm-mode jobs at once; run them on one worker with ``asr_slots`` asr
    slots and llm=1 (and io/cpu pools for the rest); return every step's (start, end,
    job, stage)."""
    runs: list[tuple[float, float, int, str]] = []
    lock = threading.Lock()

    def run_step(step: Any) -> None:
        started = time.monotonic()
        time.sleep(0.05 if step.stage in LLM_STAGES or step.stage == "transcribe" else 0.0)
        with lock:
            runs.append((started, time.monotonic(), step.job_id, step.stage))

    with Store(url) as store:
        for i in range(JOBS):
            store.submit(f"job-{i}", "fp", PAYLOAD, profiles=step_profiles("llm"))
        worker = Worker(
            store,
            {"io": 2, "asr": asr_slots, "cpu": 1, "llm": 1},
            poll_interval=0.02,
            run_step=run_step,
            order=order,  # type: ignore[arg-type]
            max_idle=0.5,
        )
        assert worker.order == ("drain" if order in ("auto", "drain") else "fifo")
        thread = threading.Thread(target=worker.run)
        thread.start()
        thread.join(timeout=120)
        assert not thread.is_alive()
        assert worker.outcomes["done"] == JOBS * len(STAGES)
    return sorted(runs)


def _family(stage: str) -> str | None:
    return "asr" if stage == "transcribe" else "llm" if stage in LLM_STAGES else None


def _overlaps(runs: list[tuple[float, float, int, str]]) -> int:
    """Pairs of an asr step and an llm step that ran at the same time."""
    asr = [(a, b) for a, b, _, stage in runs if _family(stage) == "asr"]
    llm = [(a, b) for a, b, _, stage in runs if _family(stage) == "llm"]
    return sum(1 for a0, a1 in asr for l0, l1 in llm if a0 < l1 and l0 < a1)


def _finished_before_new_audio(runs: list[tuple[float, float, int, str]]) -> None:
    """When a transcription starts, every job whose audio was already transcribed has
    finished its LLM stages: jobs finish before new audio starts."""
    for start, _, _, stage in runs:
        if stage != "transcribe":
            continue
        transcribed = {job for _, end, job, s in runs if s == "transcribe" and end <= start}
        pending_llm = [
            (job, s)
            for s0, _, job, s in runs
            if job in transcribed and s in LLM_STAGES and s0 > start
        ]
        assert pending_llm == [], f"audio started at {start:.3f} before {pending_llm}"


@pytest.mark.parametrize("order", ["auto", "drain"])
def test_one_model_family_at_a_time_and_each_job_finishes_its_llm_stages_first(
    db_url: str, order: str
) -> None:
    runs = _run(db_url, order)

    assert _overlaps(runs) == 0
    _finished_before_new_audio(runs)
    # one slot of audio: each job's audio, then its LLM stages, then the next job's audio
    families = [_family(stage) for _, _, _, stage in runs if _family(stage)]
    switches = sum(1 for a, b in zip(families, families[1:]) if a != b)
    assert switches == 2 * JOBS - 1


def test_with_two_audio_slots_no_new_audio_starts_while_llm_work_waits(db_url: str) -> None:
    runs = _run(db_url, "auto", asr_slots=2)

    assert _overlaps(runs) == 0
    _finished_before_new_audio(runs)


def test_fifo_lets_audio_and_llm_steps_share_the_device(db_url: str) -> None:
    runs = _run(db_url, "fifo")

    assert _overlaps(runs) > 0  # what drain order prevents
