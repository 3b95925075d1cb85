"""Embedded mode: the durable engine, in-process, on SQLite.

``podmill run`` submits one job per episode to the same engine the distributed workers
use (``podmill.engine``), then runs a worker inside this process with a few consumer
threads (one ASR, one CPU, two IO slots) until every submitted job has finished. The
same stage functions, the same claims, leases, retries and exactly-once join; only the
database file is local. Progress is read back from the steps table.

``run_pipeline`` is the atomic mode: a range of stages for one episode, in order, in
this thread, with no queue (for tools, tests and notebooks).
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from podmill.domain import JOB_TERMINAL, Episode
from podmill.engine.execute import execute_step
from podmill.engine.store import Store
from podmill.engine.submit import JobSpec, record_feed, submit_episode
from podmill.engine.worker import Worker
from podmill.errors import DiskFullError, PodmillError, StageError
from podmill.ml.preflight import require_models
from podmill.pipeline.context import StageContext
from podmill.pipeline.dag import STAGE_NAMES, stage_range
from podmill.pipeline.fingerprint import fingerprint
from podmill.pipeline.repair import repair_if_damaged
from podmill.pipeline.runlock import Holder, data_dir_lock
from podmill.pipeline.stages import run_stage
from podmill.settings import Settings
from podmill.storage import db
from podmill.storage.artifacts import KINDS, Artifact, ArtifactStore

EMBEDDED_POOLS = {"io": 2, "asr": 1, "cpu": 1, "llm": 1}


class Reporter(Protocol):
    """Receives progress events (the CLI draws them; tests may record them)."""

    def episode_started(self, episode: Episode) -> None: ...
    def stage_started(self, episode: Episode, stage: str) -> None: ...
    def stage_finished(
        self, episode: Episode, stage: str, seconds: float, cached: bool
    ) -> None: ...
    def audio_progress(self, episode: Episode, position: float) -> None: ...
    def episode_finished(self, result: EpisodeResult) -> None: ...
    def waiting(self, message: str) -> None: ...


class NullReporter:
    def episode_started(self, episode: Episode) -> None:
        pass

    def stage_started(self, episode: Episode, stage: str) -> None:
        pass

    def stage_finished(self, episode: Episode, stage: str, seconds: float, cached: bool) -> None:
        pass

    def audio_progress(self, episode: Episode, position: float) -> None:
        pass

    def episode_finished(self, result: EpisodeResult) -> None:
        pass

    def waiting(self, message: str) -> None:
        pass


@dataclass
class EpisodeResult:
    """What one run did for one episode.

    A run reports only its own work: ``timings`` has the stages this run computed, and
    ``cached`` the stages that were already done (artifacts reused, or finished by an
    earlier run or another worker), which cost this run nothing.
    """

    episode_key: str
    title: str
    status: str  # done | failed | cancelled
    fingerprint: str
    job_id: int | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds, this run
    cached: list[str] = field(default_factory=list)  # done stages this run did not compute
    error: str | None = None
    failed_stage: str | None = None
    audio_seconds: float = 0.0  # the episode's length
    wall_seconds: float = 0.0  # from the start of this run until the episode finished

    @property
    def computed_audio_seconds(self) -> float:
        """The audio this run transcribed: 0 when the transcript was reused."""
        return self.audio_seconds if "transcribe" in self.timings else 0.0

    @property
    def fully_cached(self) -> bool:
        """Done without computing anything in this run."""
        return self.status == "done" and not self.timings

    def to_json(self) -> dict[str, Any]:
        return {
            "episode_key": self.episode_key,
            "title": self.title,
            "status": self.status,
            "job_id": self.job_id,
            "artifacts": self.artifacts,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "cached": self.cached,
            "wall_seconds": round(self.wall_seconds, 3),
            "audio_seconds": round(self.audio_seconds, 3),
            "computed_audio_seconds": round(self.computed_audio_seconds, 3),
            "error": self.error,
        }


class Runner:
    """Submits episodes to the engine and runs an in-process worker until they finish."""

    def __init__(
        self,
        settings: Settings,
        reporter: Reporter | None = None,
        *,
        order: Literal["auto", "fifo", "drain"] = "auto",
        pools: dict[str, int] | None = None,
    ) -> None:
        self.settings = settings
        self.order = order  # the worker's claim order (docs/engine.md: drain order)
        self.pools = pools or EMBEDDED_POOLS
        self.reporter = reporter or NullReporter()
        # This process runs the stages: their models must be here, said before any work.
        require_models(settings)
        self.artifacts = ArtifactStore(settings.data_dir)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db.upgrade(settings.database_url)
        self.store = Store(
            settings.database_url, retry_delay_scale=settings.pipeline.retry_delay_scale
        )
        self.sessions = self.store.sessions
        self.spec = JobSpec.of(settings)
        self.fingerprint = self.spec.fingerprint
        self._mine: set[str] = set()  # the episode keys of the run under way
        # (job id, stage) of the steps this run computed; every other done step is cached
        self._computed: set[tuple[int, str]] = set()
        self._started = time.monotonic()

    def run_many(self, episodes: Sequence[Episode], feed: Any = None) -> list[EpisodeResult]:
        """Process ``episodes`` to the end; one run per data dir at a time (a second one
        waits, see :mod:`podmill.pipeline.runlock`).

        Raises :class:`~podmill.errors.DiskFullError` when a step runs out of space (the
        step is released; nothing is retried) and the worker's own error (e.g.
        :class:`~podmill.storage.db.DatabaseGoneError`) if it stops.
        """
        with data_dir_lock(self.settings.data_dir, self._waiting_for_run):
            return self._run_locked(episodes, feed)

    def _waiting_for_run(self, lock: Path, holder: Holder) -> None:
        self.reporter.waiting(
            f"data dir {self.settings.data_dir} is in use by another podmill run "
            f"({holder.describe()}; lock {lock}); waiting for it to finish (Ctrl-C to stop)"
        )

    def _run_locked(self, episodes: Sequence[Episode], feed: Any) -> list[EpisodeResult]:
        jobs = self._submit(episodes, feed)
        by_key = {ep.episode_key: ep for ep in episodes}
        self._mine = set(by_key)
        self._computed = set()
        self._started = time.monotonic()
        disk_full: list[DiskFullError] = []
        worker = Worker(
            self.store,
            pools=self.pools,
            grace=5.0,
            poll_interval=0.05,
            run_step=self._run_step,
            order=self.order,
            on_disk_full=disk_full.append,  # reported below, as this run's error
        )
        stopped: list[BaseException] = []

        def work() -> None:
            try:
                worker.run()
            except BaseException as exc:  # raised in this run's thread, below
                stopped.append(exc)

        thread = threading.Thread(target=work, name="podmill-embedded-worker", daemon=True)
        for ep in episodes:
            self.reporter.episode_started(ep)
        thread.start()
        seen: dict[tuple[int, str], str] = {}
        leases_told: set[tuple[int, str, str]] = set()
        pauses_told: set[str] = set()
        finished: dict[int, EpisodeResult] = {}
        try:
            while len(finished) < len(jobs):
                if disk_full:
                    raise disk_full[0]  # no retry: a full disk stays full
                if stopped:
                    raise stopped[0]
                if not thread.is_alive():
                    raise PodmillError("the embedded worker stopped unexpectedly; see the log")
                held: set[str] = set()
                for job_id, episode in jobs.items():
                    if job_id in finished:
                        continue
                    job = self.store.job(job_id)
                    self._report_steps(job, episode, seen)
                    self._report_foreign_leases(job, episode, worker.worker_id, leases_told)
                    # reached, not only ahead: a waiting step of it may never be run
                    held.update(
                        name
                        for name, step in job["steps"].items()
                        if step["paused"] and step["status"] != "waiting"
                    )
                    if job["status"] in JOB_TERMINAL:
                        finished[job_id] = self._result(job, by_key[episode.episode_key])
                        self.reporter.episode_finished(finished[job_id])
                self._report_pauses(held, pauses_told)
                time.sleep(0.05)
        finally:
            worker.stop()
            thread.join()
        return [finished[job_id] for job_id in jobs]

    def _report_foreign_leases(
        self,
        job: dict[str, Any],
        episode: Episode,
        worker_id: str,
        told: set[tuple[int, str, str]],
    ) -> None:
        """Say once per step when one of this run's steps is leased to another worker:
        after ``kill -9`` of an earlier run, its steps wait for their leases to expire."""
        for name, step in job["steps"].items():
            holder = step.get("worker_id")
            expires = step.get("lease_expires_at")
            if step["status"] != "running" or holder in (None, worker_id) or expires is None:
                continue
            if (job["id"], name, holder) in told:
                continue
            told.add((job["id"], name, holder))
            if expires.tzinfo is None:  # SQLite keeps UTC without a zone
                expires = expires.replace(tzinfo=UTC)
            left = max(0.0, (expires - datetime.now(UTC)).total_seconds())
            self.reporter.waiting(
                f"{episode.title}: step {name} is leased to worker {holder}, not this run "
                "(an earlier run stopped with kill -9 leaves its leases); waiting for the "
                f"lease to expire at {expires.astimezone():%H:%M:%S} (in {left:.0f}s), "
                "then it runs here"
            )

    def _report_pauses(self, held: set[str], told: set[str]) -> None:
        """Say once per pause when a paused stage holds back a step this run reached: the
        in-process worker claims nothing of a paused stage (``podmill queues pause``), so
        without a word the run would look stuck until the stage is resumed."""
        for name in STAGE_NAMES:
            if name in held and name not in told:
                self.reporter.waiting(
                    f"stage {name} is paused, so this run waits at it; resume it from "
                    f"another shell with `{resume_command(name, self.settings.database_url)}` "
                    "(Ctrl-C stops this run)"
                )
        told.clear()
        told.update(held)  # resumed and paused again: said again

    def paused_stages(self) -> list[str]:
        """The stages paused on this run's database, in graph order."""
        paused = self.store.paused()
        return [name for name in STAGE_NAMES if name in paused]

    def _submit(self, episodes: Sequence[Episode], feed: Any) -> dict[int, Episode]:
        feed_id = record_feed(self.store, feed)
        jobs: dict[int, Episode] = {}
        for ep in episodes:
            # running `podmill run` again retries a failed or cancelled job (submit_episode)
            submitted = submit_episode(self.store, self.spec, ep, feed_id=feed_id)
            if submitted.found == "done":  # and repairs a damaged artifact set (docs/security.md)
                repair_if_damaged(self.store, self.artifacts, ep.episode_key, self.fingerprint)
            jobs[submitted.job_id] = ep
        return jobs

    def _run_step(self, claimed: Any) -> list[str]:
        episode = Episode.from_dict(claimed.payload["episode"])
        # The reporter draws this run's episodes only: the worker may also run a step
        # another process queued on this database.
        mine = episode.episode_key in self._mine
        reused: list[bool] = []
        notes = execute_step(
            claimed,
            self.settings,
            on_audio_progress=(lambda pos: self.reporter.audio_progress(episode, pos))
            if mine
            else None,
            on_reused=lambda: reused.append(True),
            sessions=self.sessions,
        )
        if not reused:  # before the step is done, so the poller below sees it
            self._computed.add((claimed.job_id, claimed.stage))
        return notes

    def _report_steps(
        self, job: dict[str, Any], episode: Episode, seen: dict[tuple[int, str], str]
    ) -> None:
        for name in STAGE_NAMES:
            step = job["steps"][name]
            previous = seen.get((job["id"], name))
            if step["status"] == previous:
                continue
            seen[(job["id"], name)] = step["status"]
            if step["status"] == "running":
                self.reporter.stage_started(episode, name)
            elif step["status"] == "done":
                computed = (job["id"], name) in self._computed
                seconds = float(step.get("duration_seconds") or 0.0) if computed else 0.0
                self.reporter.stage_finished(episode, name, seconds, not computed)

    def _result(self, job: dict[str, Any], episode: Episode) -> EpisodeResult:
        result = EpisodeResult(
            episode.episode_key,
            episode.title,
            job["status"],
            self.fingerprint,
            job["id"],
            wall_seconds=time.monotonic() - self._started,
        )
        for name, step in job["steps"].items():
            if step["status"] == "done" and (job["id"], name) in self._computed:
                result.timings[name] = float(step.get("duration_seconds") or 0.0)
            elif step["status"] == "done":
                result.cached.append(name)
            elif step["status"] in ("dead", "failed") and result.error is None:
                result.failed_stage = name
                result.error = f"{name}: {step.get('error')}"
        for name, kind in KINDS.items():
            path = self.artifacts.path(episode.episode_key, self.fingerprint, name)
            if path.is_file():
                result.artifacts[kind] = str(path)
        transcript = self.artifacts.path(
            episode.episode_key, self.fingerprint, Artifact.TRANSCRIPT_JSON
        )
        if transcript.is_file():
            import json

            result.audio_seconds = float(json.loads(transcript.read_text()).get("duration", 0.0))
        return result


def resume_command(stage_name: str, database_url: str) -> str:
    """The command that resumes ``stage_name`` on the database at ``database_url``, as it
    can be typed (a password in the URL is masked)."""
    return f"podmill queues resume {stage_name} --db {shlex.quote(db.display_url(database_url))}"


def run_pipeline(
    settings: Settings,
    episode: Episode,
    start_stage: str | None = None,
    end_stage: str | None = None,
) -> dict[str, float]:
    """Atomic mode: run the stages from ``start_stage`` to ``end_stage`` for one episode
    in order, in this thread, with no queue; stages whose artifacts exist are skipped.

    Returns seconds per stage (0.0 when skipped). Raises :class:`StageError` naming the
    stage that failed. Stages before ``start_stage`` must already have their artifacts.
    """
    ctx = StageContext(
        settings=settings,
        episode=episode,
        fingerprint=fingerprint(settings),
        store=ArtifactStore(settings.data_dir),
    )
    timings: dict[str, float] = {}
    for name in stage_range(start_stage, end_stage):
        started = time.monotonic()
        try:
            ran = run_stage(name, ctx)
        except Exception as exc:
            raise StageError(name, exc) from exc
        timings[name] = time.monotonic() - started if ran else 0.0
    return timings
