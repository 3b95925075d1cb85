"""``podmill stress soak|ramp|ab``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from podmill.cli import settings as cli_settings
from podmill.cli.options import ConfigOpt, DataDirOpt, DbOpt

if TYPE_CHECKING:
    from podmill.stress.scenarios import Options, Outcome

stress_app = typer.Typer(
    help="Drive a running API with a workload and report.", no_args_is_help=True
)

_DEMO_AUDIO = Path(__file__).resolve().parents[1] / "demo" / "jfk.flac"

ApiOpt = Annotated[
    str, typer.Option("--api", help="base URL of `podmill serve`, e.g. http://127.0.0.1:8000")
]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="PODMILL_API_KEY",
        help="Bearer key (`podmill keys create TENANT`); env PODMILL_API_KEY",
        show_envvar=False,
    ),
]
OutOpt = Annotated[Path, typer.Option("--out", help="artifacts go under OUT/<scenario>/")]
AudioOpt = Annotated[
    Path,
    typer.Option(
        "--audio",
        help="speech clip each job processes (a distinct copy per job); default: the "
        "bundled 11 s demo/jfk.flac",
    ),
]
PollOpt = Annotated[float, typer.Option("--poll", help="seconds between GET /jobs/{id} polls")]
TimeoutOpt = Annotated[
    float, typer.Option("--job-timeout", help="seconds one job may take before it counts as failed")
]
LogOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--worker-log",
        help="a worker's log file (JSON or text) to scan for ERROR lines; repeat",
    ),
]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", help="jobs in flight")]
PlotsOpt = Annotated[
    bool,
    typer.Option(
        "--plots/--no-plots",
        help="draw waterfall.png and levels.png (the 'stress' extra, checked before any "
        "job); --no-plots runs without matplotlib",
    ),
]
MetricsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--metrics-url",
        help="another /metrics to scrape (a worker's --metrics-port); the API's is always scraped",
    ),
]


def _options(
    api: str,
    key: str | None,
    out: Path,
    audio: Path,
    poll: float,
    job_timeout: float,
    worker_log: list[Path] | None,
    metrics_url: list[str] | None,
    plots: bool,
) -> Options:
    from podmill.stress.scenarios import Options

    return Options(
        api=api,
        key=key or os.environ.get("PODMILL_API_KEY") or None,
        out=out,
        audio=audio,
        poll=poll,
        job_timeout=job_timeout,
        worker_logs=list(worker_log or []),
        metrics_urls=list(metrics_url or []),
        plots=plots,
    )


def _run(scenario: Callable[[], Outcome]) -> None:
    """Run a scenario, SIGTERM unwinding like Ctrl-C, and print its verdict."""
    _interrupt_on_sigterm()
    _conclude(scenario())


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the workers ab started are
    stopped and the polling threads return, instead of the process dying around them."""
    import signal

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _conclude(outcome: Outcome) -> None:
    """Print the verdict and where the artifacts are; exit 1 on a failed scenario."""
    line = f"stress {outcome.scenario} {'PASSED' if outcome.passed else 'FAILED'}: {outcome.reason}"
    typer.echo(line)
    if outcome.report is not None:
        typer.echo(f"report: {outcome.report}")
    else:
        typer.echo(f"manifest: {outcome.directory / 'manifest.json'}")
    if not outcome.passed:
        raise typer.Exit(1)


@stress_app.command()
def soak(
    api: ApiOpt,
    out: OutOpt,
    api_key: KeyOpt = None,
    jobs: Annotated[int, typer.Option("--jobs", help="jobs to run")] = 12,
    concurrency: ConcurrencyOpt = 4,
    audio: AudioOpt = _DEMO_AUDIO,
    poll: PollOpt = 0.5,
    job_timeout: TimeoutOpt = 900.0,
    worker_log: LogOpt = None,
    metrics_url: MetricsOpt = None,
    plots: PlotsOpt = True,
) -> None:
    """Soak: a fixed number of jobs at a fixed concurrency.

    Passes when every job is done with all its stages and no worker logged an error;
    exit 1 when it fails."""
    from podmill.stress.scenarios import soak as run_soak

    options = _options(api, api_key, out, audio, poll, job_timeout, worker_log, metrics_url, plots)
    _run(lambda: run_soak(options, jobs=jobs, concurrency=concurrency))


def _levels(text: str) -> list[int]:
    from podmill.errors import PodmillError

    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        levels = []
    if not levels:
        raise PodmillError(f"--levels {text!r}: give concurrency levels like 4,8,16,24")
    return levels


@stress_app.command()
def ramp(
    api: ApiOpt,
    out: OutOpt,
    api_key: KeyOpt = None,
    levels: Annotated[
        str, typer.Option("--levels", help="concurrency levels, in order")
    ] = "4,8,16,24",
    jobs_per_level: Annotated[int, typer.Option("--jobs-per-level", help="jobs per level")] = 8,
    audio: AudioOpt = _DEMO_AUDIO,
    poll: PollOpt = 0.5,
    job_timeout: TimeoutOpt = 900.0,
    worker_log: LogOpt = None,
    metrics_url: MetricsOpt = None,
    plots: PlotsOpt = True,
) -> None:
    """Ramp: rising concurrency levels, stopping at the first that fails.

    Each level runs JOBS-PER-LEVEL jobs with the soak's pass criteria; exit 1 when a
    level fails."""
    from podmill.stress.scenarios import ramp as run_ramp

    parsed = _levels(levels)
    options = _options(api, api_key, out, audio, poll, job_timeout, worker_log, metrics_url, plots)
    _run(lambda: run_ramp(options, levels=parsed, jobs_per_level=jobs_per_level))


@stress_app.command()
def ab(
    api: ApiOpt,
    out: OutOpt,
    a: Annotated[
        str, typer.Option("--a", help="arm A, NAME:WORKER-ARGS, e.g. 'small:--pool asr=1'")
    ],
    b: Annotated[str, typer.Option("--b", help="arm B, NAME:WORKER-ARGS, e.g. 'big:--pool asr=2'")],
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    workers: Annotated[int, typer.Option("--workers", help="workers started per arm")] = 1,
    api_key: KeyOpt = None,
    jobs: Annotated[int, typer.Option("--jobs", help="jobs per arm")] = 12,
    concurrency: ConcurrencyOpt = 4,
    audio: AudioOpt = _DEMO_AUDIO,
    poll: PollOpt = 0.5,
    job_timeout: TimeoutOpt = 900.0,
    worker_log: LogOpt = None,
    metrics_url: MetricsOpt = None,
    plots: PlotsOpt = True,
    config: ConfigOpt = None,
) -> None:
    """A/B: the same workload under two worker settings, side by side.

    For each arm the harness starts WORKERS local `podmill worker --db DB ARGS`
    processes on the API's database (--db, as for `podmill serve`), runs JOBS jobs, stops
    them; report.md compares the arms (B/A ratios). Other live workers on the database are
    refused (checked with an admin key). Exit 1 when an arm fails."""
    from podmill.stress.scenarios import ab as run_ab
    from podmill.stress.spawn import Arm

    db = cli_settings.load(config, db=db, data_dir=data_dir).database_url
    options = _options(api, api_key, out, audio, poll, job_timeout, worker_log, metrics_url, plots)
    arms = [Arm.parse(a), Arm.parse(b)]
    _run(lambda: run_ab(options, arms, db=db, workers=workers, jobs=jobs, concurrency=concurrency))
