"""The three scenarios — soak, ramp, A/B — and the run that writes their artifacts.

Every scenario runs groups of jobs (a concurrency level, or an A/B arm) through
:func:`podmill.stress.workload.run_group` and judges each group by the same criteria:
every job done, every job shows a finished step for every stage of the DAG, no step
failed, and no error line in the worker logs written during the group.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import podmill
from podmill.errors import PodmillError, first_line
from podmill.pipeline.dag import STAGE_NAMES
from podmill.stress import capture, plots
from podmill.stress import metrics as prom
from podmill.stress.client import StressClient, scrape
from podmill.stress.logscan import LogError, LogWatch
from podmill.stress.records import GroupSummary, JobRecord, job_problems, summarize
from podmill.stress.report import render_report
from podmill.stress.spawn import Arm, WorkerSet, start_workers
from podmill.stress.staging import StagedAudio, check_audio, sha256_file, stage_copies
from podmill.stress.workload import run_group

# A live worker: heartbeat this fresh (seconds) in GET /admin/workers.
_LIVE_HEARTBEAT = 60.0
# Seconds a JSON log line's ts may lie outside a group's window and still count.
_CLOCK_SLACK = 30.0


@dataclass
class Options:
    """What every scenario needs: where the API is, the audio, the evidence sources."""

    api: str
    key: str | None
    out: Path
    audio: Path
    poll: float = 0.5
    job_timeout: float = 900.0
    worker_logs: list[Path] = field(default_factory=list)
    metrics_urls: list[str] = field(default_factory=list)
    plots: bool = True  # False: --no-plots, the run needs no matplotlib
    prometheus: str | None = None  # --prometheus: query_range of the run's window
    jaeger: str | None = None  # --jaeger: the traces of the run's jobs
    jaeger_services: list[str] = field(
        default_factory=lambda: list(capture.DEFAULT_JAEGER_SERVICES)
    )
    # OUT/<UTC timestamp>/: made by the first scenario of a run, shared by a suite's
    run_dir: Path | None = None


@dataclass
class GroupResult:
    """One concurrency level or arm: its jobs, numbers, and why it failed (if it did)."""

    name: str
    concurrency: int
    jobs: list[JobRecord]
    summary: GroupSummary
    problems: list[str]
    log_errors: int = 0
    log_samples: list[LogError] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems and self.log_errors == 0

    def reason(self) -> str:
        """One line: the first problem and how many more."""
        reasons = list(self.problems)
        if self.log_errors:
            first = self.log_samples[0].line if self.log_samples else ""
            reasons.append(f"{self.log_errors} error line(s) in worker logs, first: {first}")
        if not reasons:
            return "passed"
        more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
        return f"{self.name}: {reasons[0]}{more}"


@dataclass
class Outcome:
    scenario: str
    directory: Path
    passed: bool
    reason: str
    groups: list[GroupResult]
    report: Path | None = None  # None when report.md could not be written


def git_sha() -> str:
    """``PODMILL_GIT_SHA`` (set in images), else the checkout's HEAD, else ``unknown``."""
    if sha := os.environ.get("PODMILL_GIT_SHA"):
        return sha
    source = Path(podmill.__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def _now() -> datetime:
    return datetime.now(UTC)


class Run:
    """One scenario's directory, API client, audio staging, metrics and evidence."""

    def __init__(self, scenario: str, options: Options, settings: dict[str, Any]) -> None:
        if options.plots:
            plots.check()  # the extra first: nothing asked of the API, nothing submitted
        self.scenario = scenario
        self.options = options
        self.settings = settings
        self.run_id = uuid.uuid4().hex[:10]
        self.audio = check_audio(options.audio)
        self.client = StressClient(options.api, options.key)
        self.server = self.client.preflight()
        if options.run_dir is None:  # after the preflight: a refused run leaves no folder
            options.run_dir = capture.new_run_folder(options.out)
        self.root = options.run_dir
        self.directory = self.root / scenario
        try:
            self.directory.mkdir(parents=True)
        except FileExistsError:
            raise PodmillError(
                f"{self.directory} already holds a {scenario} run; a run never overwrites one"
            ) from None
        self.staging = self.directory / ".staged-audio"
        self.started = _now()
        self.metrics_notes: list[dict[str, Any]] = []
        self.metrics_windows: dict[str, dict[str, Any]] = {}
        self.spawned_logs: list[Path] = []  # logs of workers the harness started (ab)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        # the copies were uploaded (the API keeps its own); a failed run leaves none either
        shutil.rmtree(self.staging, ignore_errors=True)
        self.client.close()

    # ------------------------------------------------------------ building blocks

    def stage(self, count: int, label: str) -> list[StagedAudio]:
        return stage_copies(self.audio, count, self.staging / label, f"{self.run_id}-{label}")

    def scrape_all(self, window: str, when: str, extra: Sequence[str] = ()) -> list[prom.Sample]:
        """Scrape the API's /metrics and every other exporter; keep the raw text."""
        folder = self.directory / "metrics"
        folder.mkdir(exist_ok=True)
        samples: list[prom.Sample] = []
        urls = [f"{self.client.api}/metrics", *self.options.metrics_urls, *extra]
        for index, url in enumerate(urls):
            text, note = scrape(url)
            name = f"{window}-{when}-{index}.prom"
            if text is not None:
                (folder / name).write_text(text)
                samples += prom.parse_exposition(text)
            self.metrics_notes.append(
                {
                    "window": window,
                    "when": when,
                    "url": url,
                    "status": note,
                    "file": f"metrics/{name}" if text is not None else None,
                }
            )
        return samples

    def run_group(
        self,
        name: str,
        concurrency: int,
        count: int,
        *,
        logs: Sequence[Path] = (),
        metrics_urls: Sequence[str] = (),
        settings: dict[str, Any] | None = None,
        first_index: int = 0,
    ) -> GroupResult:
        """Stage ``count`` copies, run them at ``concurrency``, judge the group."""
        copies = self.stage(count, name)
        watch = LogWatch([*self.options.worker_logs, *logs])
        start_samples = self.scrape_all(name, "start", metrics_urls)
        since = _now()
        jobs = run_group(
            self.client,
            copies,
            name,
            concurrency,
            poll=self.options.poll,
            timeout=self.options.job_timeout,
            first_index=first_index,
        )
        until = _now()
        end_samples = self.scrape_all(name, "end", metrics_urls)
        self.metrics_windows[name] = prom.stage_aggregates(start_samples, end_samples)
        # slack for a worker clock a little off the harness's (logs from other hosts)
        slack = timedelta(seconds=_CLOCK_SLACK)
        log_errors, samples = watch.errors(since - slack, until + slack)
        return GroupResult(
            name=name,
            concurrency=concurrency,
            jobs=jobs,
            summary=summarize(name, concurrency, jobs),
            problems=job_problems(jobs, STAGE_NAMES),
            log_errors=log_errors,
            log_samples=samples,
            settings=settings or {},
            metrics=self.metrics_windows[name],
        )

    # ------------------------------------------------------------------ artifacts

    def finish(self, groups: list[GroupResult], *, xlabel: str, verdict: str | None) -> Outcome:
        """Write manifest.json, jobs.json, metrics/snapshot.json, the plots, report.md.

        The manifest is written first saying ``"passed": false, "complete": false``, and
        says passed only when it is rewritten after every other artifact was written: a
        run that dies on the way (a plotting crash, a full disk, Ctrl-C) never leaves a
        manifest that says it passed. An artifact that cannot be written fails the run
        with the reason, after the others are written."""
        finished = _now()
        failed = [g for g in groups if not g.passed]
        workload_passed = bool(groups) and not failed and verdict is None
        workload_reason = _one_line(
            verdict or (failed[0].reason() if failed else "every job done, all stages, no errors")
        )
        jobs = [j for g in groups for j in g.jobs]
        manifest = {
            "scenario": self.scenario,
            "run_id": self.run_id,
            "passed": False,
            "complete": False,
            "reason": "the run stopped while writing its artifacts",
            "workload_passed": workload_passed,
            "workload_reason": workload_reason,
            "artifact_errors": [],
            "plots": {"files": [], "note": None},
            "git_sha": git_sha(),
            "podmill_version": podmill.__version__,
            "started_at": self.started.isoformat(),
            "finished_at": finished.isoformat(),
            "duration_seconds": round((finished - self.started).total_seconds(), 3),
            "api": self.client.api,  # never the key
            "server": {
                "health": self.server["health"],
                "tenant": self.server["me"].get("tenant") or self.server["me"].get("name"),
                "role": self.server["me"].get("role"),
            },
            "host": {
                "hostname": socket.gethostname(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            },
            "audio": {"path": str(self.audio), "sha256": sha256_file(self.audio)},
            "settings": self.settings,
            "evidence": self._evidence(groups),
            "metrics_sources": self.metrics_notes,
            "groups": [
                {**g.summary.to_dict(), "passed": g.passed, "reason": g.reason(), **g.settings}
                for g in groups
            ],
        }
        self._write_json("manifest.json", manifest)  # incomplete until the end of finish
        errors: list[str] = manifest["artifact_errors"]
        jobs_file = {
            "scenario": self.scenario,
            "stages": list(STAGE_NAMES),
            "jobs": [j.to_dict() for j in jobs],
        }
        snapshot = {
            "sources": self.metrics_notes,
            "per_stage": self.metrics_windows,
            "from_jobs": {g.name: g.summary.stages for g in groups},
        }
        for name, data in (("jobs.json", jobs_file), ("metrics/snapshot.json", snapshot)):
            if error := _attempt(name, self._write_json, name, data):
                errors.append(error)

        def capture_series() -> None:
            manifest["capture"] = capture.capture_window(
                self.directory,
                self.started,
                finished,
                prometheus=self.options.prometheus,
                jaeger=self.options.jaeger,
                jaeger_services=self.options.jaeger_services,
                jobs=jobs_file["jobs"],
            )

        if error := _attempt("the capture (prometheus/, jaeger/)", capture_series):
            errors.append(error)
        manifest["plots"] = self._draw_plots(errors, jobs, groups, xlabel)
        _verdict(manifest)
        report = self.directory / "report.md"

        def write_report() -> None:
            report.write_text(render_report(manifest, groups))

        if error := _attempt("report.md", write_report):
            errors.append(error)
            _verdict(manifest)
        manifest["complete"] = not errors
        self._write_json("manifest.json", manifest)
        if error := _attempt("the run's report.md", capture.write_index, self.root):
            # the scenario's own artifacts are all written; say so without failing it
            manifest.setdefault("notes", []).append(error)
            self._write_json("manifest.json", manifest)
        return Outcome(
            self.scenario,
            self.directory,
            manifest["passed"],
            manifest["reason"],
            groups,
            report if report.exists() else None,
        )

    def _draw_plots(
        self, errors: list[str], jobs: list[JobRecord], groups: list[GroupResult], xlabel: str
    ) -> dict[str, Any]:
        """The PNGs unless --no-plots: the files drawn, and why any were not (added to
        ``errors`` too)."""
        if not self.options.plots:
            return {"files": [], "note": "--no-plots was given"}
        waterfall, levels = plots.FILES
        failed = [
            error
            for error in (
                _attempt(waterfall, plots.waterfall, jobs, STAGE_NAMES, self.directory / waterfall),
                _attempt(
                    levels,
                    plots.levels,
                    [g.summary for g in groups],
                    self.directory / levels,
                    xlabel,
                ),
            )
            if error
        ]
        errors += failed
        drawn = [name for name in plots.FILES if (self.directory / name).exists()]
        return {"files": drawn, "note": "; ".join(failed) or None}

    def _evidence(self, groups: list[GroupResult]) -> dict[str, Any]:
        """What the "no worker logged an error" verdict rests on."""
        logs = [str(p) for p in [*self.options.worker_logs, *self.spawned_logs]]
        return {
            "step_states": "GET /jobs/{id} of every job (failed, dead or errored steps)",
            "worker_logs": logs,
            "worker_logs_note": None
            if logs
            else "no worker logs given (--worker-log): only step states were checked",
            "log_error_lines": sum(g.log_errors for g in groups),
            "log_error_samples": [
                {"group": g.name, "path": s.path, "line": s.line}
                for g in groups
                for s in g.log_samples
            ],
        }

    def _write_json(self, name: str, data: Any) -> None:
        path = self.directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")


# ------------------------------------------------------------------- scenarios


def soak(options: Options, *, jobs: int = 12, concurrency: int = 4) -> Outcome:
    """``jobs`` jobs at ``concurrency``; passes when all are done with all stages and no
    worker logged an error."""
    _positive(jobs=jobs, concurrency=concurrency)
    settings = {"jobs": jobs, "concurrency": concurrency, **_common(options)}
    with Run("soak", options, settings) as run:
        group = run.run_group(f"c{concurrency}", concurrency, jobs)
        return run.finish([group], xlabel="concurrency", verdict=None)


def ramp_levels(
    levels: Sequence[int], run_level: Callable[[int, int], GroupResult]
) -> list[GroupResult]:
    """Run ``run_level(concurrency, first_index)`` per level, in order, stopping after
    the first level that fails (the levels above it are not run)."""
    results: list[GroupResult] = []
    index = 0
    for level in levels:
        result = run_level(level, index)
        results.append(result)
        index += len(result.jobs)
        if not result.passed:
            break
    return results


def ramp(
    options: Options, *, levels: Sequence[int] = (4, 8, 16, 24), jobs_per_level: int = 8
) -> Outcome:
    """Concurrency levels in turn, ``jobs_per_level`` each, stopping at the first level
    with a failure."""
    _positive(jobs_per_level=jobs_per_level, **{f"level {n}": n for n in levels})
    if not levels:
        raise PodmillError("ramp needs at least one level: --levels 4,8,16,24")
    settings = {"levels": list(levels), "jobs_per_level": jobs_per_level, **_common(options)}
    with Run("ramp", options, settings) as run:
        results = ramp_levels(
            levels,
            lambda level, first: run.run_group(
                f"c{level}", level, jobs_per_level, first_index=first
            ),
        )
        skipped = list(levels[len(results) :])
        verdict = None
        if results and not results[-1].passed:
            stop = f"; levels {skipped} not run" if skipped else ""
            verdict = (
                f"failed at concurrency {results[-1].concurrency}: {results[-1].reason()}{stop}"
            )
        return run.finish(results, xlabel="concurrency", verdict=verdict)


def ab(
    options: Options,
    arms: Sequence[Arm],
    *,
    db: str,
    workers: int = 1,
    jobs: int = 12,
    concurrency: int = 4,
) -> Outcome:
    """The same workload once per arm, each arm on its own freshly started local
    workers (``podmill worker --db DB`` plus the arm's arguments)."""
    _positive(jobs=jobs, concurrency=concurrency, workers=workers)
    if len(arms) != 2 or arms[0].name == arms[1].name:
        raise PodmillError("ab compares two arms with different names: --a NAME:ARGS --b NAME:ARGS")
    settings = {
        "jobs": jobs,
        "concurrency": concurrency,
        "workers_per_arm": workers,
        "arms": {arm.name: list(arm.args) for arm in arms},
        **_common(options),
    }
    with Run("ab", options, settings) as run:
        results: list[GroupResult] = []
        for arm in arms:
            _check_queue_is_ours(run)
            fleet: WorkerSet = start_workers(arm, workers, db, run.directory / "workers" / arm.name)
            try:
                run.spawned_logs += fleet.log_paths
                result = run.run_group(
                    arm.name,
                    concurrency,
                    jobs,
                    logs=fleet.log_paths,
                    metrics_urls=fleet.metrics_urls,
                    settings={"arm": arm.name, "worker_args": list(arm.args)},
                    first_index=len(results) * jobs,
                )
            finally:
                fleet.stop()
            results.append(result)
        return run.finish(results, xlabel="arm", verdict=None)


def _check_queue_is_ours(run: Run) -> None:
    """An arm's numbers mean something only if its workers alone take its steps: refuse
    to start while other live workers are registered (needs an admin key to see them)."""
    listed = run.client.workers()
    if listed is None:
        run.settings["other_workers_check"] = "not checked: the key is not an admin's"
        return
    foreign = [
        w
        for w in listed
        if w.get("status") == "running"
        and float(w.get("heartbeat_age_seconds") or 0) < _LIVE_HEARTBEAT
    ]
    if foreign:
        names = ", ".join(
            str(w.get("id") or f"{w.get('host')}:{w.get('pid')}") for w in foreign[:3]
        )
        raise PodmillError(
            f"ab needs the queue to itself, but {len(foreign)} other live worker(s) would "
            f"take its steps ({names}): stop them, or point ab at an API with its own database"
        )
    run.settings["other_workers_check"] = "GET /admin/workers: none live before each arm"


def _attempt(name: str, write: Callable[..., object], *args: Any) -> str | None:
    """``write(*args)``, one artifact; on any failure say why in one line (the run's
    other artifacts are still written, and its verdict names this one)."""
    try:
        write(*args)
    except Exception as exc:  # any failure: reported in the verdict, not raised past it
        shown = str(exc) if isinstance(exc, PodmillError) else _describe(exc)
        return f"{name} was not written: {_one_line(shown)}"
    return None


def _verdict(manifest: dict[str, Any]) -> None:
    """Set ``passed`` and ``reason`` from the workload's verdict and the artifacts that
    could not be written: a run passes only when both are clean."""
    errors = manifest["artifact_errors"]
    workload = manifest["workload_reason"]
    manifest["passed"] = manifest["workload_passed"] and not errors
    if not errors:
        manifest["reason"] = workload
        return
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    if manifest["workload_passed"]:
        manifest["reason"] = f"the workload passed ({workload}), but {errors[0]}{more}"
    else:
        manifest["reason"] = f"{workload}; and {errors[0]}{more}"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc)}"


def _one_line(text: str) -> str:
    return " ".join(text.split())  # one line, whatever a step's error held


def _common(options: Options) -> dict[str, Any]:
    return {
        "poll_seconds": options.poll,
        "job_timeout_seconds": options.job_timeout,
        "worker_logs": [str(p) for p in options.worker_logs],
        "metrics_urls": list(options.metrics_urls),
        "plots": options.plots,
        "prometheus": options.prometheus,
        "jaeger": options.jaeger,
    }


def _positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise PodmillError(f"{name.replace('_', '-')} must be at least 1, got {value}")


# ---------------------------------------------------------------------- suite


def suite(
    options: Options,
    *,
    soak_jobs: int = 12,
    soak_concurrency: int = 4,
    levels: Sequence[int] = (4, 8, 16, 24),
    jobs_per_level: int = 8,
    arms: Sequence[Arm] | None = None,
    db: str | None = None,
    workers: int = 1,
) -> list[Outcome]:
    """Soak, then ramp, then (with ``arms``) ab, into one ``OUT/<UTC timestamp>/``; each
    scenario runs whatever the one before it concluded (its verdict is in the folder's
    report.md), so one bad level does not hide the others' numbers."""
    if arms is not None and not db:
        raise PodmillError("suite --a/--b (the ab scenario) needs the API's database: --db")
    outcomes = [soak(options, jobs=soak_jobs, concurrency=soak_concurrency)]
    outcomes.append(ramp(options, levels=levels, jobs_per_level=jobs_per_level))
    if arms is not None and db:
        outcomes.append(
            ab(options, arms, db=db, workers=workers, jobs=soak_jobs, concurrency=soak_concurrency)
        )
    return outcomes


def capture_only(
    out: Path,
    start: datetime,
    end: datetime,
    *,
    prometheus: str | None,
    jaeger: str | None,
    jaeger_services: Sequence[str] = capture.DEFAULT_JAEGER_SERVICES,
) -> Path:
    """``podmill stress capture``: any window's series and traces into
    ``OUT/<UTC timestamp>/capture/`` (its manifest.json says what was saved)."""
    if end <= start:
        raise PodmillError(f"--end ({end.isoformat()}) must be after --start ({start.isoformat()})")
    root = capture.new_run_folder(out)
    folder = root / "capture"
    folder.mkdir()
    entry = capture.capture_window(
        folder,
        start,
        end,
        prometheus=prometheus,
        jaeger=jaeger,
        jaeger_services=jaeger_services,
    )
    manifest = {
        "scenario": "capture",
        "reason": f"window {start.isoformat()} → {end.isoformat()}",
        "git_sha": git_sha(),
        "podmill_version": podmill.__version__,
        "captured_at": _now().isoformat(),
        "capture": entry,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    capture.write_index(root)
    return folder
