"""Engine commands: ``worker``, ``submit``, ``jobs``, ``dead`` and ``queues``.

Their database is the one of every command (:mod:`podmill.cli.settings`): ``--db``, else
the ``db`` setting / ``PODMILL_DB``, else ``DATA_DIR/podmill.db``. ``worker`` and
``submit`` create or migrate it; the others read it and say so when there is none. A
missing or unreachable database is one error line.
"""

from __future__ import annotations

import shlex
import signal
import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from podmill.cli import settings as cli_settings
from podmill.cli.options import (
    AllowPrivateOpt,
    ConfigOpt,
    DataDirOpt,
    DbOpt,
    EpisodeLimitOpt,
    JsonOpt,
    LogFormatOpt,
    LogLevelOpt,
    MetricsHostOpt,
    QuietOpt,
    SinceOpt,
    metrics_port_option,
    metrics_port_taken,
    names_private_flag,
    parse_since,
    positive_limit,
)
from podmill.cli.output import err, out, print_json, print_table, status_text, table, when
from podmill.errors import PodmillError
from podmill.settings import Settings
from podmill.storage.db import database_errors, display_url

if TYPE_CHECKING:
    from rich.table import Table

    from podmill.engine.store import Store

jobs_app = typer.Typer(help="List, inspect, cancel and retry jobs.", no_args_is_help=True)
dead_app = typer.Typer(help="Steps that failed for good: list and retry.", no_args_is_help=True)
queues_app = typer.Typer(
    help="Per-stage queue counts; pause and resume stages.", no_args_is_help=True
)

JobIdArg = Annotated[int, typer.Argument(help="job id")]
StageArg = Annotated[str, typer.Argument(help="stage name")]


# ---------------------------------------------------------------------------- store


def open_store(
    url: str, *, migrate: bool, lease_seconds: float = 30.0, retry_delay_scale: float = 1.0
) -> Store:
    """The engine store at ``url``; ``migrate`` brings the schema up to date first.

    Without ``migrate`` a database that is not at the newest revision is an error that
    says to run ``podmill db upgrade``.
    """
    from podmill.engine.store import Store
    from podmill.storage import db as storage_db

    if migrate:
        storage_db.upgrade(url)
    else:
        current, head = storage_db.current_revision(url), storage_db.head_revision()
        if current != head:
            raise PodmillError(
                f"database {display_url(url)} is at schema revision {current or 'none'}, this "
                f"podmill needs {head}: run `podmill db upgrade --db URL`"
            )
    return Store(url, lease_seconds=lease_seconds, retry_delay_scale=retry_delay_scale)


@contextmanager
def _queue(db: str | None, data_dir: Path | None, config: Path | None) -> Iterator[Store]:
    """The store of a command that reads or changes what ``submit`` queued; inside the
    block a lost or refused connection is one error line."""
    settings = cli_settings.load(config, db=db, data_dir=data_dir)
    url = cli_settings.existing_database(
        settings, "no database there yet; queue something first (`podmill submit FEED_OR_FILE`)"
    )
    store = open_store(url, migrate=False)
    with database_errors(url):
        yield store


def _no_job(job_id: int) -> PodmillError:
    return PodmillError(f"no job {job_id} (see `podmill jobs list`)")


# ------------------------------------------------------------------------ worker


class ClaimOrder(str, Enum):
    auto = "auto"
    fifo = "fifo"
    drain = "drain"


def parse_pools(values: list[str] | None) -> dict[str, int] | None:
    """``["asr=1", "cpu=3"]`` → ``{"asr": 1, "cpu": 3}``; ``None`` when none given."""
    if not values:
        return None
    pools: dict[str, int] = {}
    for value in values:
        name, sep, size = value.partition("=")
        if not sep or not name.strip() or not size.strip().isdigit():
            raise PodmillError(f"--pool {value!r}: use NAME=N, e.g. --pool asr=1 --pool cpu=3")
        pools[name.strip()] = int(size)
    return pools


WorkerMetricsPortOpt = metrics_port_option(
    "GET /metrics and GET /health", envvar="PODMILL_METRICS_PORT"
)


def worker(
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    pool: Annotated[
        list[str] | None,
        typer.Option(
            "--pool",
            help="NAME=N slots for a profile (io, asr, cpu, llm) or one stage; repeat. "
            "Default: every stage, io=4 asr=1 cpu=cores-1 llm=1",
        ),
    ] = None,
    grace: Annotated[
        float, typer.Option(help="seconds running steps may finish after SIGTERM/SIGINT")
    ] = 30.0,
    lease: Annotated[
        float, typer.Option(help="lease seconds; heartbeats extend it every lease/3")
    ] = 30.0,
    poll: Annotated[
        float | None,
        typer.Option(
            help="seconds between claim attempts without a wake-up [1 Postgres, 0.2 SQLite]"
        ),
    ] = None,
    max_idle: Annotated[
        float | None, typer.Option("--max-idle", help="exit after this many idle seconds")
    ] = None,
    order: Annotated[
        ClaimOrder,
        typer.Option(
            help="fifo: oldest ready step first; drain: later stages first, and with both "
            "an asr and an llm pool one model family at a time; auto: drain when the "
            "worker has both an asr and an llm pool, else fifo"
        ),
    ] = ClaimOrder.auto,
    metrics_port: WorkerMetricsPortOpt = 0,
    metrics_host: MetricsHostOpt = "0.0.0.0",
    log_format: LogFormatOpt = None,
    log_level: LogLevelOpt = None,
    quiet: QuietOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Run a worker: claim steps for its pools and run them until SIGTERM/SIGINT. It logs
    each step's start and finish (stage, job, episode, outcome, seconds) at INFO."""
    from podmill.engine.worker import Worker, resolve_pools

    settings = cli_settings.load(
        config,
        long_running=True,
        quiet=quiet,
        role="podmill-worker",
        db=db,
        data_dir=data_dir,
        log_format=log_format,
        log_level=log_level,
    )
    url = settings.database_url
    pools = parse_pools(pool)
    try:
        resolve_pools(pools or {})
    except ValueError as exc:
        raise PodmillError(str(exc)) from None
    metrics = _worker_metrics(settings, pools, metrics_port)
    store = open_store(
        url,
        migrate=True,
        lease_seconds=lease,
        retry_delay_scale=settings.pipeline.retry_delay_scale,
    )
    running = Worker(
        store,
        pools,
        grace=grace,
        poll_interval=poll,
        max_idle=max_idle,
        order=order.value,
        settings_base=settings,
    )

    endpoints = _serve_metrics(running, metrics, settings, metrics_host, metrics_port)

    def on_signal(signum: int, _frame: Any) -> None:
        running.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    pools_text = " ".join(f"{k}={v}" for k, v in running.pool_sizes.items())
    err.print(f"worker {running.worker_id} on {display_url(url)}, pools {pools_text}", markup=False)
    if endpoints is not None:
        err.print(
            f"worker metrics on http://{metrics_host}:{endpoints.port}/metrics (and /health)",
            markup=False,
        )
    try:
        with database_errors(url):
            running.run()
    finally:
        if endpoints is not None:
            endpoints.close()
    outcomes = " ".join(f"{k}={v}" for k, v in running.outcomes.items())
    err.print(
        f"worker {running.worker_id} stopped: {outcomes} released={running.released}",
        markup=False,
    )


def _worker_metrics(settings: Settings, pools: dict[str, int] | None, port: int) -> Any:
    """The worker's metrics recorder, installed for this process (``None`` when the port
    is 0). Before the database is touched: a missing extra is the first thing said."""
    if port == 0:
        return None
    from podmill.engine.worker import default_pools
    from podmill.obs.metrics import WorkerMetrics, install
    from podmill.pipeline.dag import STAGE_NAMES

    metrics = WorkerMetrics(settings.data_dir, pools=pools or default_pools(), stages=STAGE_NAMES)
    install(metrics)
    return metrics


def _serve_metrics(running: Any, metrics: Any, settings: Settings, host: str, port: int) -> Any:
    """Serve /metrics and /health on ``port`` (``None`` when metrics are off)."""
    if metrics is None:
        return None
    from podmill.engine.health import worker_health
    from podmill.obs.exposure import metrics_token
    from podmill.obs.server import serve_worker_endpoints

    try:
        return serve_worker_endpoints(
            host,
            port,
            metrics.exposition,
            lambda: worker_health(running, settings),
            metrics_token=metrics_token(settings),
        )
    except OSError as exc:
        raise metrics_port_taken(host, port, exc) from None


# ------------------------------------------------------------------------ submit


@names_private_flag
def submit(
    source: Annotated[str, typer.Argument(help="feed URL or file, or audio URL or file")],
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    limit: EpisodeLimitOpt = None,
    since: SinceOpt = None,
    as_json: JsonOpt = False,
    allow_private_networks: AllowPrivateOpt = None,
    reply_to: Annotated[
        str | None,
        typer.Option(
            "--reply-to",
            help="Redis stream redis://host:port/db#stream (a server in server.stream_hosts) "
            "that gets each job's result when it finishes (docs/delivery.md)",
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Queue a feed's episodes (or one audio file) for workers; prints the job ids.

    Submitting the same episode with the same settings again returns the existing job,
    queued again if it had failed or was cancelled (podmill.engine.submit).
    """
    from podmill.engine.submit import JobSpec, record_feed, submit_episode
    from podmill.feeds.sources import resolve
    from podmill.storage.replies import add_replies, default_replies, replies_due_again

    settings = cli_settings.load(
        config, db=db, data_dir=data_dir, allow_private_networks=allow_private_networks
    )
    replies = default_replies(settings)
    if reply_to is not None:
        replies.append(_check_reply_to(reply_to, settings))
    url = settings.database_url
    resolved = resolve(source, settings, limit=limit, since=parse_since(since))
    for item in resolved.skipped:
        err.print(f"skipped {item.title}: {item.reason}", markup=False)
    if not resolved.episodes:
        raise PodmillError(f"{source}: no episodes to submit (check --since / --limit)")
    spec = JobSpec.of(settings)
    correlation_id = uuid.uuid4().hex  # one submit command, one id in the jobs' log lines
    store = open_store(url, migrate=True)
    with database_errors(url):
        feed_id = record_feed(store, resolved.feed)  # as `podmill run` does: its title now
        for episode in resolved.episodes:
            submitted = submit_episode(
                store,
                spec,
                episode,
                feed_id=feed_id,
                correlation_id=correlation_id,
                # tenants who ask for the same episode cannot cancel it from under us
                held_by_operator=True,
            )
            job_id = submitted.job_id
            if replies:
                with store.engine.begin() as conn:
                    add_replies(conn, job_id, replies)
                    if submitted.revived:
                        replies_due_again(conn, job_id)
            if as_json:
                print_json(
                    {
                        "job_id": job_id,
                        "episode_key": episode.episode_key,
                        "title": episode.title,
                        "created": submitted.created,
                        "revived": submitted.revived,
                        "correlation_id": submitted.correlation_id,
                    }
                )
            else:
                typer.echo(job_id)


def _check_reply_to(url: str, settings: Settings) -> str:
    """``--reply-to``: a stream on an allowed Redis server. A webhook is signed with a
    tenant's secret, so it is given with a tenant's request (``POST /jobs``)."""
    from podmill.platform.streams import check_stream, is_stream

    if not is_stream(url):
        raise PodmillError(
            f"--reply-to {url}: podmill submit sends results to a Redis stream "
            "(redis://host:port/db#stream); a webhook needs a tenant, whose secret signs "
            'it: POST /jobs {"url": …, "reply_to": URL}'
        )
    check_stream(url, settings.server)
    return url


# -------------------------------------------------------------------------- jobs


@jobs_app.command("list")
def jobs_list(
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    status: Annotated[
        str | None, typer.Option(help="pending, running, done, failed or cancelled")
    ] = None,
    limit: Annotated[int, typer.Option(help="newest N jobs", callback=positive_limit)] = 100,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List jobs, newest first, with their progress (and the paused stages they wait on)."""
    with _queue(db, data_dir, config) as store:
        jobs = store.jobs(status, limit=limit)
        paused = store.paused()
    print_table(jobs, as_json, _jobs_table)
    say_paused(paused, database_flags(db, data_dir, config))


def _jobs_table(jobs: Sequence[dict[str, Any]]) -> Table:
    shown = table(
        f"jobs ({len(jobs)})", "id", "episode", "status", "steps done", "running", "created"
    )
    # only while a pause holds one of them back: the usual listing keeps its columns
    waits = any(job["paused"] for job in jobs)
    if waits:
        shown.add_column("waits on paused")
    for job in jobs:
        steps = job["steps"]
        done = sum(1 for s in steps.values() if s["status"] == "done")
        running = ", ".join(name for name, s in steps.items() if s["status"] == "running")
        row = [
            str(job["id"]),
            escape(job["episode_key"]),
            status_text(job["status"]),
            f"{done}/{len(steps)}",
            running,
            when(job.get("created_at")),
        ]
        if waits:
            row.append(f"[yellow]{', '.join(job['paused'])}[/]" if job["paused"] else "")
        shown.add_row(*row)
    return shown


def say_paused(paused: Collection[str], flags: str) -> None:
    """The footer of a listing while stages are paused: which, and the command that resumes
    each, with ``flags`` naming the database (on stderr: a note for a person)."""
    from podmill.pipeline.dag import STAGE_NAMES

    if not paused:
        return
    resume = "; ".join(
        f"`podmill queues resume {name}{flags}`" for name in STAGE_NAMES if name in paused
    )
    names = ", ".join(name for name in STAGE_NAMES if name in paused)
    err.print(
        f"paused: {names} (no worker claims their steps) — resume with {resume}", markup=False
    )


def database_flags(db: str | None, data_dir: Path | None, config: Path | None) -> str:
    """`` --db URL`` and the like: the options a command was given to find its database,
    as they can be typed again (a password in the URL is masked)."""
    given = [("--config", config), ("--data-dir", data_dir)]
    given.append(("--db", display_url(db) if db else None))
    return "".join(f" {flag} {shlex.quote(str(value))}" for flag, value in given if value)


@jobs_app.command("show")
def jobs_show(
    job_id: JobIdArg,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """One job and its steps: status, attempts, worker, timings, errors and notes; a step
    whose stage is paused says so."""
    with _queue(db, data_dir, config) as store:
        job = store.job(job_id)
    if job is None:
        raise _no_job(job_id)
    if as_json:
        print_json(job)
        return
    out.print(_job_table(job))
    say_paused(job["paused"], database_flags(db, data_dir, config))


def _job_table(job: dict[str, Any]) -> Table:
    shown = table(f"job {job['id']}  {escape(job['episode_key'])}  {job['status']}")
    shown.add_column("stage", no_wrap=True)
    for column in ("status", "attempts", "worker", "started", "seconds"):
        shown.add_column(column)
    shown.add_column("error / notes", overflow="fold")
    for name, step in job["steps"].items():
        seconds = step.get("duration_seconds")
        remarks = [step.get("error") or "", *step.get("notes", [])]
        status = status_text(step["status"])
        shown.add_row(
            name,
            f"{status} [yellow](paused)[/]" if step.get("paused") else status,
            str(step.get("attempts", "")),
            escape(step.get("worker_id") or ""),
            when(step.get("started_at")),
            f"{seconds:.2f}" if isinstance(seconds, int | float) else "",
            escape("\n".join(r for r in remarks if r)),
        )
    return shown


@jobs_app.command("watch")
def jobs_watch(
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    job_id: Annotated[
        int | None,
        typer.Option("--job", min=1, help="only this job; stop when it finishes"),
    ] = None,
    after: Annotated[
        int | None,
        typer.Option(min=0, help="start after this event id (default: from now on)"),
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Follow job and step transitions as they happen (the events GET /events streams),
    one line each, until Ctrl-C; with --job, until that job finishes."""
    import time

    from podmill.domain import JOB_TERMINAL
    from podmill.platform.events import EventReader, latest_event_id

    settings = cli_settings.load(config, db=db, data_dir=data_dir)
    poll = settings.server.events_poll_seconds
    with _queue(db, data_dir, config) as store:
        with store.engine.connect() as conn:
            start = latest_event_id(conn) if after is None else after
            job = store.job(job_id) if job_id is not None else None
        if job_id is not None and job is None:
            raise _no_job(job_id)
        if job is not None and job["status"] in JOB_TERMINAL and after is None:
            err.print(f"job {job_id} is {job['status']} already", markup=False)
            return
        reader = EventReader(None, start, job_id=job_id)
        err.print(f"watching {'job ' + str(job_id) if job_id else 'every job'} (Ctrl-C stops)")
        try:
            while True:
                with store.engine.connect() as conn:
                    found = reader.read(conn)
                for event in found:
                    if as_json:
                        print_json(event)
                    else:
                        out.print(_event_line(event))
                    finished = event["type"] == "job" and event["status"] in JOB_TERMINAL
                    if job_id is not None and finished:
                        return
                time.sleep(poll)
        except KeyboardInterrupt:
            return


def _event_line(event: dict[str, Any]) -> str:
    """``12:00:01  job 7  ep-key  transcribe  running  (attempt 1)``, markup escaped."""
    at = str(event["at"] or "")[11:19]
    what = event["stage"] or "job"
    extra = f"  (attempt {event['attempts']})" if event.get("attempts") else ""
    error = f"  {escape(event['error'])}" if event.get("error") else ""
    return (
        f"{at}  job {event['job_id']}  {escape(event['episode_key'])}  {what}  "
        f"{status_text(event['status'])}{extra}{error}"
    )


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: JobIdArg,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Cancel a job: queued steps are cancelled, running ones finish."""
    with _queue(db, data_dir, config) as store:
        cancelled = store.cancel_job(job_id)
    if not cancelled:
        raise PodmillError(f"job {job_id} cannot be cancelled: no such job, or it already finished")
    err.print(f"job {job_id} cancelled")


@jobs_app.command("retry")
def jobs_retry(
    job_id: JobIdArg,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Put a job's failed, dead and cancelled steps back in the queue (attempts reset)."""
    with _queue(db, data_dir, config) as store:
        if store.job(job_id) is None:
            raise _no_job(job_id)
        count = store.retry_job(job_id)
    if count == 0:
        raise PodmillError(f"job {job_id} has no failed, dead or cancelled steps to retry")
    err.print(f"job {job_id}: {count} step(s) back in the queue")


# -------------------------------------------------------------------------- dead


@dead_app.command("list")
def dead_list(
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Steps that used up their attempts (or failed for good), with their last error."""
    with _queue(db, data_dir, config) as store:
        rows = store.list_dead()
    print_table(rows, as_json, _dead_table)


def _dead_table(rows: Sequence[dict[str, Any]]) -> Table:
    shown = table(f"dead steps ({len(rows)})")
    columns = ("step_id", "job_id", "stage", "attempts", "finished_at", "error")
    for column in columns:
        shown.add_column(column, overflow="fold")
    for row in rows:
        shown.add_row(*(escape(when(row.get(c))) for c in columns))
    return shown


@dead_app.command("retry")
def dead_retry(
    step_id: Annotated[int, typer.Argument(help="step id (see `podmill dead list`)")],
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Put one dead step back in the queue with its attempts reset."""
    with _queue(db, data_dir, config) as store:
        retried = store.retry_dead(step_id)
    if not retried:
        raise PodmillError(f"step {step_id} is not dead (see `podmill dead list`)")
    err.print(f"step {step_id} back in the queue")


# ------------------------------------------------------------------------ queues


@queues_app.command("list")
def queues_list(
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Steps per stage and status, and which stages are paused."""
    with _queue(db, data_dir, config) as store:
        stats = store.queue_stats()
    rows = [{"stage": stage_name, **counts} for stage_name, counts in stats.items()]
    print_table(rows, as_json, _queues_table)


def _queues_table(rows: Sequence[dict[str, Any]]) -> Table:
    columns = ("waiting", "pending", "running", "done", "failed", "dead")
    shown = table("queues", "stage")
    for column in columns:
        shown.add_column(column, justify="right")
    shown.add_column("paused")
    for row in rows:
        shown.add_row(
            row["stage"],
            *(str(row.get(c, 0)) for c in columns),
            "[yellow]paused[/]" if row.get("paused") else "",
        )
    return shown


def _stage_name(name: str) -> str:
    from podmill.pipeline.dag import stage

    try:
        return stage(name).name
    except ValueError as exc:
        raise PodmillError(str(exc)) from None


@queues_app.command("pause")
def queues_pause(
    stage: StageArg,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Stop workers claiming a stage's steps (running ones finish)."""
    name = _stage_name(stage)
    with _queue(db, data_dir, config) as store:
        store.pause(name)
    err.print(f"stage {name} paused")


@queues_app.command("resume")
def queues_resume(
    stage: StageArg,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Let workers claim a paused stage's steps again."""
    name = _stage_name(stage)
    with _queue(db, data_dir, config) as store:
        store.resume(name)
    err.print(f"stage {name} resumed")
