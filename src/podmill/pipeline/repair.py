"""Repairing a damaged artifact set: which stages run again, and queueing them.

A file that no longer matches the manifest's checksum (``ArtifactDamaged``) is not
served. The stage that wrote it and every stage after it run again: their outputs are
moved aside (hidden ``.NAME.damaged`` files, kept for a look, replaced on the next
repair) so the skip rule in :func:`podmill.pipeline.stages.run_stage` does not skip
them, and their steps are queued again with :meth:`podmill.engine.store.Store.rerun_steps`.
The database rows of the set (search documents, the episode's artifacts) are
rewritten when ``publish`` runs again: the job's finish projects them
(:mod:`podmill.pipeline.projection`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from typing import Any

from podmill.pipeline.dag import STAGES, ancestors, stage
from podmill.storage.artifacts import Artifact, ArtifactStore, stage_usage

DAMAGED_SUFFIX = ".damaged"
# The names stage_usage gives: one per LLM stage (pipeline/llm_topics.py).
_STAGE_USAGE = re.compile(re.escape(stage_usage("STAGE")).replace("STAGE", r"(?P<stage>\w+)"))


def producer(name: str) -> str:
    """The stage that writes artifact ``name``. Files no stage declares (``llm_usage.json``,
    anything unexpected) are publish's: re-running it rewrites the manifest."""
    for s in STAGES:
        if name in s.outputs:
            return s.name
    usage = _STAGE_USAGE.fullmatch(name)
    if usage and usage["stage"] in {s.name for s in STAGES}:
        return usage["stage"]
    return "publish"


def stages_to_rerun(names: Iterable[str]) -> tuple[str, ...]:
    """The stages that wrote ``names`` and all their dependants, in graph order."""
    first = {producer(n) for n in names}
    return tuple(s.name for s in STAGES if s.name in first or first & ancestors(s.name))


def set_aside(artifacts: ArtifactStore, key: str, fingerprint: str, stages: Iterable[str]) -> None:
    """Move the outputs of ``stages`` out of the set (to ``.NAME.damaged``)."""
    for name in stages:
        outputs = [*stage(name).outputs, stage_usage(name)]
        if name == "publish":
            outputs.append(Artifact.LLM_USAGE)
        for output in outputs:
            path = artifacts.path(key, fingerprint, output)
            with contextlib.suppress(FileNotFoundError):  # another reader got there first
                os.replace(path, path.with_name(f".{output}{DAMAGED_SUFFIX}"))


def requeue(
    store: Any, artifacts: ArtifactStore, key: str, fingerprint: str, names: Iterable[str]
) -> tuple[str, ...]:
    """Queue the job of ``(key, fingerprint)`` again from the stages that wrote the damaged
    ``names``; returns those stages, or nothing when ``store`` has no job for the set (a
    data dir copied from elsewhere): its outputs are set aside all the same, so the next
    submission of the episode computes them again instead of skipping them."""
    stages = stages_to_rerun(names)
    # Files first: a worker that claims a re-queued step must not find the old outputs.
    set_aside(artifacts, key, fingerprint, stages)
    job_id = store.job_id(key, fingerprint)
    if job_id is None:
        return ()
    store.rerun_steps(job_id, stages)
    return stages


def repair_if_damaged(
    store: Any, artifacts: ArtifactStore, key: str, fingerprint: str
) -> tuple[str, ...]:
    """Check a whole published set against its manifest and re-queue what is damaged
    (``podmill run`` does this for an episode it finds done)."""
    damaged = artifacts.damaged(key, fingerprint)
    if not damaged:
        return ()
    if Artifact.MANIFEST in damaged:  # nothing to check the rest against: publish writes it again
        damaged = {Artifact.MANIFEST: damaged[Artifact.MANIFEST]}
    return requeue(store, artifacts, key, fingerprint, damaged)
