"""The stage graph, declared once.

The runner, the storage layer's step rows, the CLI's progress columns and the docs all
read :data:`STAGES`. A stage's ``version`` goes into the fingerprint: bump it when the
stage's output changes for the same input.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from podmill.retry import Backoff
from podmill.storage.artifacts import Artifact


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0

    @property
    def backoff(self) -> Backoff:
        """The wait before each retry: ``base_delay`` doubling up to ``max_delay``, jittered."""
        return Backoff(self.base_delay, cap=self.max_delay)


@dataclass(frozen=True)
class Stage:
    name: str
    after: tuple[str, ...]
    profile: str  # io | asr | cpu | llm: which worker pool runs it
    outputs: tuple[Artifact, ...]  # all present = the stage is done
    version: str
    retry: RetryPolicy = RetryPolicy()
    join: bool = False
    # A topic-tree stage: with ``topics.backend = "llm"`` its steps run in the llm
    # profile (a GPU worker's LLM pool) instead of ``profile``.
    tree: bool = False


STAGES: tuple[Stage, ...] = (
    Stage("fetch", (), "io", (Artifact.SOURCE,), "1", RetryPolicy(4, 2.0, 120.0)),
    Stage(
        "transcribe",
        ("fetch",),
        "asr",
        (
            Artifact.TRANSCRIPT_JSON,
            Artifact.TRANSCRIPT_SRT,
            Artifact.TRANSCRIPT_VTT,
            Artifact.TRANSCRIPT_TXT,
        ),
        "2",  # 2: the feed's language picks the model; never English-only on another
    ),
    Stage(
        "segment",
        ("transcribe",),
        "cpu",
        (Artifact.SENTENCES, Artifact.EMBEDDINGS, Artifact.L1),
        "1",
        tree=True,
    ),
    Stage("decide", ("segment",), "cpu", (Artifact.DECIDE,), "1", tree=True),
    Stage("subsegment", ("decide",), "cpu", (Artifact.L2,), "1", tree=True),
    # summarize_*, synthesize 2: key points are never filler (pipeline/keypoints.py);
    # 3: phrase titles (topics.titles), summaries of whole sentences without fillers,
    # key points of four content words or more
    Stage("summarize_l1", ("segment",), "cpu", (Artifact.SUMMARIES_L1,), "3", tree=True),
    Stage("summarize_l2", ("subsegment",), "cpu", (Artifact.SUMMARIES_L2,), "3", tree=True),
    Stage(
        "synthesize",
        ("summarize_l1", "summarize_l2"),
        "cpu",
        (Artifact.TOPICS,),
        "3",
        join=True,
        tree=True,
    ),
    Stage("index", ("synthesize",), "cpu", (Artifact.INDEX,), "2"),  # 2: passages
    Stage("publish", ("index",), "io", (Artifact.SUMMARY_MD, Artifact.MANIFEST), "1"),
)

STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
PROFILES: tuple[str, ...] = ("io", "asr", "cpu", "llm")


def step_profiles(topics_backend: str) -> dict[str, str]:
    """The profile (worker pool family) of each stage's step, for a job whose topic tree
    is built by ``topics_backend``: with ``llm`` the tree stages need the LLM."""
    return {s.name: "llm" if s.tree and topics_backend == "llm" else s.profile for s in STAGES}


_BY_NAME = {s.name: s for s in STAGES}


def stage(name: str) -> Stage:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; stages are: {', '.join(STAGE_NAMES)}") from None


def successors(name: str) -> tuple[str, ...]:
    return tuple(s.name for s in STAGES if name in s.after)


def ancestors(name: str) -> set[str]:
    found: set[str] = set()
    todo = list(stage(name).after)
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo.extend(stage(current).after)
    return found


def stage_range(start: str | None = None, end: str | None = None) -> tuple[str, ...]:
    """Stages from ``start`` to ``end`` inclusive, in declaration (topological) order.

    A stage is in range when it descends from ``start`` (or is it) and ``end`` descends
    from it (or is it).
    """
    for name in (start, end):
        if name is not None:
            stage(name)  # unknown names fail with the list of stages
    chosen: list[str] = []
    for s in STAGES:
        if start is not None and s.name != start and start not in ancestors(s.name):
            continue
        if end is not None and s.name != end and s.name not in ancestors(end):
            continue
        chosen.append(s.name)
    if not chosen:
        raise ValueError(f"no stages between {start!r} and {end!r}")
    return tuple(chosen)


def validate(stages: Iterable[Stage] = STAGES) -> None:
    """Every edge names an earlier stage (so declaration order is topological)."""
    seen: set[str] = set()
    for s in stages:
        for dep in s.after:
            if dep not in seen:
                raise ValueError(f"stage {s.name!r} depends on {dep!r}, declared later or missing")
        seen.add(s.name)


validate()
