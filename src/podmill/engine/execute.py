"""Run one claimed step and record its outcome with a fenced write.

A worker thread calls :func:`run_claimed`: it rebuilds the episode and the settings from
the job's payload, runs the stage function through :func:`podmill.pipeline.stages.run_stage`
(the one place that knows when a stage can be skipped), and then completes or fails the
step. Both writes are fenced by the step's lease token, so a worker that lost its lease
(it was stopped, partitioned or too slow, and the step was re-run elsewhere) changes
nothing.

Test hooks (:class:`StepHooks`), read from the environment once, when a worker starts,
and applied around every step it runs (they let the process tests and ``bench/engine.py``
exercise the engine without loading models):

``PODMILL_TEST_NOOP_STAGES=1``
    the step's runner is not called: every stage is a no-op.
``PODMILL_TEST_STAGE_DELAY=stage:seconds[,stage:seconds]``
    sleep before running that stage (to catch a worker mid-step).
``PODMILL_TEST_FAIL_STAGES=stage[,stage]``
    raise a (retryable) ``RuntimeError`` instead of running that stage: a poison step.
``PODMILL_TEST_RUN_LOG=path``
    append ``job_id stage attempt worker_id`` to ``path`` after each successful stage
    run, before the outcome is written, so tests can count real executions.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from podmill.domain import Episode
from podmill.engine.claim import ClaimedStep
from podmill.engine.store import StepStore
from podmill.errors import DiskFullError, PodmillError, first_line
from podmill.obs import tracing
from podmill.obs.logging import step_context
from podmill.obs.metrics import recorder
from podmill.pipeline.context import StageContext
from podmill.pipeline.dag import successors
from podmill.retry import Backoff
from podmill.settings import Settings
from podmill.storage.artifacts import ArtifactStore
from podmill.storage.db import DATABASE_ERRORS

log = logging.getLogger(__name__)

Outcome = Literal["done", "retry", "dead", "lost", "released"]
# Runs one claimed step; raises on failure; may return the stage's notes to keep.
StepRunner = Callable[[ClaimedStep], "list[str] | None"]

# How long a finished step keeps trying to record its outcome while the database is
# unreachable (e.g. a Postgres restart). Past this, the lease has long expired and the
# step will be re-run elsewhere anyway.
OUTCOME_RETRY_SECONDS = 120.0
_OUTCOME_RETRY = Backoff(0.2, cap=5.0)


def run_claimed(
    store: StepStore,
    claimed: ClaimedStep,
    settings_base: Settings | dict[str, Any] | None = None,
    *,
    worker_id: str = "",
    run_step: StepRunner | None = None,
    complete: Callable[..., bool] | None = None,
    hooks: StepHooks | None = None,
    claim_window: tuple[float, float] | None = None,
) -> Outcome:
    """Run ``claimed`` and record the outcome.

    ``claim_window`` is when the claim that took it began and ended (Unix seconds): the
    step's ``claim`` span, with tracing on.

    ``run_step(claimed)`` defaults to :func:`execute_step` with ``settings_base``; it
    raises on failure, and the error's retryability (:func:`is_retryable`) decides
    between a retry with backoff and a dead step. ``hooks`` are the worker's test hooks
    (none by default).
    Returns ``"done"``, ``"retry"``, ``"dead"`` or ``"lost"`` (the lease was lost and
    the result discarded). A step that runs out of disk space is released (``pending``
    again, the attempt not counted) and :class:`~podmill.errors.DiskFullError` is
    raised. ``complete(step_id, lease_token, duration=…)`` records a
    success (default ``store.complete``; a worker passes its batcher).
    """
    if run_step is None:

        def run_step(step: ClaimedStep) -> list[str]:
            return execute_step(step, settings_base, worker_id=worker_id, sessions=store.sessions)

    metrics = recorder()
    waited = queue_wait(claimed)
    if waited is not None:
        metrics.step_queue_wait(claimed.stage, waited)
    # Every log line of this step, from podmill or a library, in this thread or in one
    # started with podmill.obs.logging.propagating, carries these fields.
    with (
        step_context(
            correlation_id=claimed.correlation_id,
            job_id=claimed.job_id,
            worker_id=worker_id or None,
            stage=claimed.stage,
        ),
        # The step's span, in the trace its job's submit started (on whichever process),
        # from the moment it was enqueued: queue wait, claim, run, completion inside it.
        tracing.span(
            f"step {claimed.stage}",
            _step_attributes(claimed, worker_id) if tracing.enabled() else None,
            parent=tracing.traceparent_of(claimed.payload),
            start=claimed.enqueued_at if waited is not None else None,
            kind="consumer",
        ) as span,
    ):
        if waited is not None and claimed.enqueued_at and claimed.claimed_at:
            span.set_attribute("queue_wait_s", round(waited, 6))
            tracing.record_span(
                f"queue wait {claimed.stage}", claimed.enqueued_at, claimed.claimed_at
            )
        if claim_window is not None:
            tracing.record_span("claim", *claim_window, {"worker_id": worker_id or None})
        metrics.step_started(claimed.stage)
        log_step(claimed)
        started = time.monotonic()
        outcome: Outcome | None = None
        try:
            outcome = _run_and_record(
                store, claimed, hooks.around(run_step, worker_id) if hooks else run_step, complete
            )
        except DiskFullError:
            outcome = "released"  # handed back, not failed: the worker decides what next
            raise
        finally:
            seconds = time.monotonic() - started
            span.set_attribute("outcome", outcome or "unrecorded")
            metrics.step_finished(claimed.stage, seconds, outcome or "lost")
            if outcome == "done" and not successors(claimed.stage):
                metrics.job_completed("done")  # the last stage: the job is done
            elif outcome == "dead":
                metrics.job_completed("failed")
            # no outcome: it could not be recorded (the worker logs why)
            why = " (disk full)" if outcome == "released" else ""
            log_step(claimed, outcome or "unrecorded", seconds, why=why)
    return outcome


def queue_wait(claimed: ClaimedStep) -> float | None:
    """Seconds the step waited ready before this claim (``None``: not known)."""
    if claimed.enqueued_at is None or claimed.claimed_at is None:
        return None
    try:
        return max(0.0, (claimed.claimed_at - claimed.enqueued_at).total_seconds())
    except TypeError:  # one aware, one naive: not comparable
        return None


def _step_attributes(claimed: ClaimedStep, worker_id: str) -> dict[str, Any]:
    return {
        "correlation_id": claimed.correlation_id,
        "job_id": claimed.job_id,
        "step_id": claimed.step_id,
        "stage": claimed.stage,
        "attempt": claimed.attempt,
        "episode_key": claimed.episode_key,
        "worker_id": worker_id or None,
    }


# How a step's last line reads, per outcome: (what happened, what it means next).
_ENDINGS = {
    "done": ("done", ""),
    "retry": ("failed", ", will retry"),
    "dead": ("failed", " for good (dead)"),
    "released": ("released", ""),
    "lost": ("lost its lease", ", result discarded"),
    "unrecorded": ("ended", ", outcome not recorded"),
}


def log_step(
    claimed: ClaimedStep,
    outcome: str | None = None,
    seconds: float | None = None,
    *,
    why: str = "",
    worker_id: str | None = None,
) -> None:
    """One INFO line a person can follow: ``transcribe started: job 17, episode …,
    step 52, attempt 1`` (no ``outcome``), then ``transcribe done in 2.31s: …`` (or
    ``failed in 0.02s, will retry``, ``failed … for good (dead)``, ``released``, ``lost
    its lease``). JSON lines carry ``episode_key``, ``step_id``, ``attempt``, ``outcome``
    and ``duration_s`` as fields beside the step context's ``job_id`` and ``stage``
    (``worker_id`` names the worker where no step context is set)."""
    fields: dict[str, Any] = {
        "episode_key": claimed.episode_key,
        "step_id": claimed.step_id,
        "attempt": claimed.attempt,
        "job_id": claimed.job_id,
        "stage": claimed.stage,
        "correlation_id": claimed.correlation_id,
        "worker_id": worker_id,
    }
    if outcome is None:
        what, then = "started", ""
    else:
        what, then = _ENDINGS[outcome]
        fields["outcome"] = outcome
    if seconds is not None:
        what += f" in {seconds:.2f}s"
        fields["duration_s"] = round(seconds, 3)
    log.info(
        "%s %s%s%s: job %s, episode %s, step %s, attempt %s",
        claimed.stage,
        what,
        then,
        why,
        claimed.job_id,
        claimed.episode_key,
        claimed.step_id,
        claimed.attempt,
        extra=fields,
    )


def _run_and_record(
    store: StepStore,
    claimed: ClaimedStep,
    run_step: StepRunner,
    complete: Callable[..., bool] | None,
) -> Outcome:
    started = time.monotonic()
    try:
        with tracing.span(f"run {claimed.stage}"):
            notes = run_step(claimed)
    except Exception as exc:
        full = disk_full(exc)
        if full is not None:
            raise _hand_back(store, claimed, full) from exc
        duration = time.monotonic() - started
        retryable = is_retryable(exc)
        error = f"{type(exc).__name__}: {exc}"
        with tracing.span("fail", {"fenced": True, "retryable": retryable}) as span:
            outcome: Outcome = _until_recorded(
                lambda: store.fail(
                    claimed.step_id,
                    claimed.lease_token,
                    error,
                    retryable=retryable,
                    duration=duration,
                )
            )
            span.set_attribute("outcome", outcome)
        if outcome != "lost":
            log.warning(
                "step %s (%s) attempt %s failed%s: %s",
                claimed.step_id,
                claimed.stage,
                claimed.attempt,
                ", will retry" if outcome == "retry" else " for good",
                exc,
                # a traceback for bugs, not for input problems the message explains
                exc_info=exc if not isinstance(exc, PodmillError) else None,
                extra={"correlation_id": claimed.correlation_id},
            )
    else:
        duration = time.monotonic() - started
        if notes:
            _until_recorded(lambda: store.record_notes(claimed.step_id, claimed.lease_token, notes))
        record = complete or store.complete
        # fenced on the lease token: a worker that lost the lease records nothing
        with tracing.span("complete", {"fenced": True}) as span:
            recorded = _until_recorded(
                lambda: record(claimed.step_id, claimed.lease_token, duration=duration)
            )
            span.set_attribute("recorded", bool(recorded))
        outcome = "done" if recorded else "lost"
    if outcome == "lost":
        # fenced: a reaped or released worker cannot finish a step it no longer owns
        log.warning(
            "lease lost: step %s (%s) of job %s; result discarded",
            claimed.step_id,
            claimed.stage,
            claimed.job_id,
            extra={"correlation_id": claimed.correlation_id},
        )
    return outcome


def disk_full(exc: BaseException) -> BaseException | None:
    """The out-of-space error behind ``exc`` (itself or a cause), else ``None``: ENOSPC,
    EDQUOT, EFBIG (a file-size limit) or SQLite's "database or disk is full"."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFullError):
            return current
        if isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS:
            return current
        if "database or disk is full" in str(current).lower():
            return current
        current = current.__cause__ or current.__context__ or getattr(current, "orig", None)
    return None


_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _hand_back(store: StepStore, claimed: ClaimedStep, full: BaseException) -> DiskFullError:
    """Release a step that failed for want of space and say so in one line.

    Not a failure of the step: released, it is ``pending`` again with its attempt not
    counted, so a full disk never burns a step's attempts or kills it. The release is
    fenced, and it is itself a write: on a full disk it may fail too, and then the lease
    expires and the reaper hands the step on.
    """
    try:
        released = bool(store.release(claimed.step_id, claimed.lease_token))
    except Exception as exc:
        released = False
        log.info("could not release step %s after a full disk: %s", claimed.step_id, exc)
    where = f" ({full.filename})" if getattr(full, "filename", None) else ""
    reason = getattr(full, "strerror", None) or str(getattr(full, "orig", None) or full)
    return DiskFullError(
        f"disk full in stage {claimed.stage}: {reason}{where}; free space in the data dir "
        "(and the database's disk) and run again: finished stages are kept",
        released=released,
    )


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed step may succeed on a later attempt: a
    :class:`~podmill.errors.PodmillError` says so itself (``retryable``: false for an
    input problem that will not go away, true e.g. for a download that timed out); any
    other exception (a bug, a crashed model) is retried."""
    return exc.retryable if isinstance(exc, PodmillError) else True


def execute_step(
    claimed: ClaimedStep,
    settings_base: Settings | dict[str, Any] | None = None,
    *,
    worker_id: str = "",
    on_audio_progress: Callable[[float], None] | None = None,
    on_reused: Callable[[], None] | None = None,
    sessions: sessionmaker[Session] | None = None,
) -> list[str]:
    """Run the stage of ``claimed`` in this process; raises on failure. Returns the
    notes the stage recorded (``StageContext.notes``), which the worker keeps on the step.

    ``on_audio_progress`` lets the embedded runner draw progress and ``on_reused`` (called
    when the stage's artifacts were already there, so nothing was computed) report what a
    run really computed; ``sessions`` is the job's database, where the last stage projects
    the finished set's rows (:mod:`podmill.pipeline.projection`; :func:`run_claimed`
    passes the store's).
    """
    from podmill.pipeline.stages import run_stage

    payload = claimed.payload
    episode = Episode.from_dict(payload["episode"])
    settings = job_settings(payload.get("settings") or {}, settings_base)
    ctx = StageContext(
        settings=settings,
        episode=episode,
        fingerprint=claimed.fingerprint,
        store=ArtifactStore(settings.data_dir),
        on_audio_progress=on_audio_progress,
        sessions=sessions,
    )
    if not run_stage(claimed.stage, ctx) and on_reused is not None:
        on_reused()
    return ctx.notes


@dataclass(frozen=True)
class StepHooks:
    """The test hooks a worker applies around each step (the module doc names their
    environment variables). :meth:`from_env` reads them once, when the worker starts;
    the defaults change nothing."""

    noop_stages: bool = False
    stage_delays: Mapping[str, float] = field(default_factory=dict)
    fail_stages: frozenset[str] = frozenset()
    run_log: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> StepHooks:
        def items(name: str) -> list[str]:
            return [part.strip() for part in environ.get(name, "").split(",") if part.strip()]

        delays: dict[str, float] = {}
        for item in items("PODMILL_TEST_STAGE_DELAY"):
            stage, _, seconds = item.partition(":")
            try:
                delays[stage.strip()] = float(seconds)
            except ValueError:
                raise PodmillError(
                    f"PODMILL_TEST_STAGE_DELAY: {item!r} is not stage:seconds; "
                    "write e.g. fetch:0.5,segment:2"
                ) from None
        return cls(
            noop_stages=environ.get("PODMILL_TEST_NOOP_STAGES", "0") not in ("", "0"),
            stage_delays=delays,
            fail_stages=frozenset(items("PODMILL_TEST_FAIL_STAGES")),
            run_log=environ.get("PODMILL_TEST_RUN_LOG") or None,
        )

    def around(self, run_step: StepRunner, worker_id: str) -> StepRunner:
        """``run_step`` with these hooks: delay, fail, skip, then log the run."""

        def hooked(claimed: ClaimedStep) -> list[str] | None:
            delay = self.stage_delays.get(claimed.stage)
            if delay:
                time.sleep(delay)
            if claimed.stage in self.fail_stages:
                raise RuntimeError(f"PODMILL_TEST_FAIL_STAGES: {claimed.stage} fails on purpose")
            notes = None if self.noop_stages else run_step(claimed)
            if self.run_log:
                line = f"{claimed.job_id} {claimed.stage} {claimed.attempt} {worker_id}\n"
                # One short O_APPEND write: lines from concurrent processes do not interleave.
                fd = os.open(self.run_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)
            return notes

        return hooked


def job_settings(
    payload_settings: dict[str, Any], base: Settings | dict[str, Any] | None = None
) -> Settings:
    """The settings a job runs with: the submitter's values over the worker's ``base``.

    The submitter records every setting that changes outputs (and its ``data_dir``), so
    the same job produces the same artifacts on any worker. Building settings reads the
    environment and ``podmill.toml`` and validates every field, so the result is cached
    per (payload settings, base) when ``base`` is a worker's :class:`Settings` (whose
    environment was read once, at start): a worker runs many steps of the same few
    submitters. Settings are never mutated after they are built.
    """
    if not isinstance(base, Settings):
        return _build_settings(payload_settings, base)
    key = json.dumps(payload_settings, sort_keys=True, default=str)
    with _settings_lock:
        hit = _settings_cache.get(key)
        if hit is not None and hit[0] is base:
            return hit[1]
    settings = _build_settings(payload_settings, base)
    with _settings_lock:
        if len(_settings_cache) >= _SETTINGS_CACHE_SIZE:
            _settings_cache.pop(next(iter(_settings_cache)))
        _settings_cache[key] = (base, settings)
    return settings


_SETTINGS_CACHE_SIZE = 64
_settings_cache: dict[str, tuple[Any, Settings]] = {}
_settings_lock = threading.Lock()


def _build_settings(
    payload_settings: dict[str, Any], base: Settings | dict[str, Any] | None
) -> Settings:
    if base is None:
        return Settings(**payload_settings)
    merged = base.model_dump() if isinstance(base, Settings) else dict(base)
    return Settings(**_deep_merge(merged, payload_settings))


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _until_recorded(write: Callable[[], Any]) -> Any:
    """Run a fenced outcome write, retrying while the database is unreachable.

    Retrying is safe because the write is fenced: if an earlier try did commit, the
    retry matches zero rows and reports the lease as lost, which changes nothing.
    """
    deadline = time.monotonic() + OUTCOME_RETRY_SECONDS
    failures = 0
    while True:
        try:
            return write()
        except DATABASE_ERRORS as exc:
            if disk_full(exc) is not None:  # waiting will not free space: say so now
                raise DiskFullError(
                    f"disk full recording a step outcome: {first_line(exc)}; free space "
                    "on the database's disk and run again"
                ) from exc
            if time.monotonic() > deadline:
                raise
            log.warning("database unavailable while recording a step outcome; retrying: %s", exc)
            failures += 1
            time.sleep(_OUTCOME_RETRY.delay(failures))
