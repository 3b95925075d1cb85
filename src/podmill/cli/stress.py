"""``podmill stress soak|ramp|ab|suite|capture``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
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
OutOpt = Annotated[
    Path,
    typer.Option(
        "--out",
        help="artifacts go under OUT/<UTC timestamp>/<scenario>/ (OUT/latest points at the "
        "newest run; earlier runs are kept)",
    ),
]
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

PrometheusOpt = Annotated[
    str | None,
    typer.Option(
        "--prometheus",
        help="Prometheus base URL: save query_range series (5 s step) of the run's window "
        "under prometheus/",
    ),
]
JaegerOpt = Annotated[
    str | None,
    typer.Option(
        "--jaeger",
        help="Jaeger query base URL (e.g. http://127.0.0.1:16686): save the run's traces "
        "under jaeger/",
    ),
]
JaegerServiceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--jaeger-service",
        help="service whose traces to save (repeat); default podmill-api",
    ),
]


@dataclass
class Capture:
    """--prometheus, --jaeger and --jaeger-service of one command."""

    prometheus: str | None = None
    jaeger: str | None = None
    services: list[str] | None = None


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
    sources: Capture | None = None,
) -> Options:
    from podmill.stress.capture import DEFAULT_JAEGER_SERVICES
    from podmill.stress.scenarios import Options

    sources = sources or Capture()
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
        prometheus=sources.prometheus or None,
        jaeger=sources.jaeger or None,
        jaeger_services=list(sources.services or DEFAULT_JAEGER_SERVICES),
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
    typer.echo(f"run: {outcome.directory.parent / 'report.md'}")
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
    prometheus: PrometheusOpt = None,
    jaeger: JaegerOpt = None,
    jaeger_service: JaegerServiceOpt = None,
) -> None:
    """Soak: a fixed number of jobs at a fixed concurrency.

    Passes when every job is done with all its stages and no worker logged an error;
    exit 1 when it fails."""
    from podmill.stress.scenarios import soak as run_soak

    sources = Capture(prometheus, jaeger, jaeger_service)
    options = _options(
        api, api_key, out, audio, poll, job_timeout, worker_log, metrics_url, plots, sources
    )
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
    prometheus: PrometheusOpt = None,
    jaeger: JaegerOpt = None,
    jaeger_service: JaegerServiceOpt = None,
) -> None:
    """Ramp: rising concurrency levels, stopping at the first that fails.

    Each level runs JOBS-PER-LEVEL jobs with the soak's pass criteria; exit 1 when a
    level fails."""
    from podmill.stress.scenarios import ramp as run_ramp

    parsed = _levels(levels)
    sources = Capture(prometheus, jaeger, jaeger_service)
    options = _options(
        api, api_key, out, audio, poll, job_timeout, worker_log, metrics_url, plots, sources
    )
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
    prometheus: PrometheusOpt = None,
    jaeger: JaegerOpt = None,
    jaeger_service: JaegerServiceOpt = None,
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
    sources = Capture(prometheus, jaeger, jaeger_service)
    options = _options(
        api, api_key, out, audio, poll, job_timeout, worker_log, metrics_url, plots, sources
    )
    arms = [Arm.parse(a), Arm.parse(b)]
    _run(lambda: run_ab(options, arms, db=db, workers=workers, jobs=jobs, concurrency=concurrency))


@stress_app.command()
def suite(
    api: ApiOpt,
    out: OutOpt,
    api_key: KeyOpt = None,
    jobs: Annotated[int, typer.Option("--jobs", help="soak (and ab) jobs")] = 12,
    concurrency: ConcurrencyOpt = 4,
    levels: Annotated[
        str, typer.Option("--levels", help="ramp's concurrency levels, in order")
    ] = "4,8,16,24",
    jobs_per_level: Annotated[
        int, typer.Option("--jobs-per-level", help="ramp's jobs per level")
    ] = 8,
    a: Annotated[
        str | None, typer.Option("--a", help="also run ab: arm A, NAME:WORKER-ARGS (with --b)")
    ] = None,
    b: Annotated[str | None, typer.Option("--b", help="ab's arm B, NAME:WORKER-ARGS")] = None,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    workers: Annotated[int, typer.Option("--workers", help="ab: workers started per arm")] = 1,
    audio: AudioOpt = _DEMO_AUDIO,
    poll: PollOpt = 0.5,
    job_timeout: TimeoutOpt = 900.0,
    worker_log: LogOpt = None,
    metrics_url: MetricsOpt = None,
    plots: PlotsOpt = True,
    prometheus: PrometheusOpt = None,
    jaeger: JaegerOpt = None,
    jaeger_service: JaegerServiceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Suite: soak, then ramp, then ab (with --a and --b), into one OUT/<UTC timestamp>/.

    Every scenario runs; the folder's report.md links each one's report. Exit 1 when any
    of them fails."""
    from podmill.errors import PodmillError
    from podmill.stress.scenarios import suite as run_suite
    from podmill.stress.spawn import Arm

    if (a is None) != (b is None):
        raise PodmillError("suite runs ab only with both arms: --a NAME:ARGS --b NAME:ARGS")
    parsed = _levels(levels)
    arms = [Arm.parse(a), Arm.parse(b)] if a is not None and b is not None else None
    database = cli_settings.load(config, db=db, data_dir=data_dir).database_url if arms else None
    sources = Capture(prometheus, jaeger, jaeger_service)
    options = _options(
        api, api_key, out, audio, poll, job_timeout, worker_log, metrics_url, plots, sources
    )
    _interrupt_on_sigterm()
    outcomes = run_suite(
        options,
        soak_jobs=jobs,
        soak_concurrency=concurrency,
        levels=parsed,
        jobs_per_level=jobs_per_level,
        arms=arms,
        db=database,
        workers=workers,
    )
    for outcome in outcomes:
        verdict = "PASSED" if outcome.passed else "FAILED"
        typer.echo(f"stress {outcome.scenario} {verdict}: {outcome.reason}")
    passed = all(o.passed for o in outcomes)
    typer.echo(f"stress suite {'PASSED' if passed else 'FAILED'}")
    typer.echo(f"run: {outcomes[0].directory.parent / 'report.md'}")
    if not passed:
        raise typer.Exit(1)


@stress_app.command("capture")
def capture_cmd(
    start: Annotated[
        str, typer.Option("--start", help="window start: ISO 8601 (UTC if no zone) or unix s")
    ],
    end: Annotated[str, typer.Option("--end", help="window end: ISO 8601 or unix seconds")],
    out: Annotated[
        Path, typer.Option("--out", help="writes OUT/<UTC timestamp>/capture/ (OUT/latest)")
    ],
    prometheus: PrometheusOpt = None,
    jaeger: JaegerOpt = None,
    jaeger_service: JaegerServiceOpt = None,
) -> None:
    """Capture: save any window's Prometheus series and Jaeger traces, no API needed.

    A source not given or not answering is recorded in capture/manifest.json; the
    command still succeeds."""
    import json

    from podmill.stress.capture import DEFAULT_JAEGER_SERVICES, parse_moment
    from podmill.stress.scenarios import capture_only

    folder = capture_only(
        out,
        parse_moment(start),
        parse_moment(end),
        prometheus=prometheus or None,
        jaeger=jaeger or None,
        jaeger_services=list(jaeger_service or DEFAULT_JAEGER_SERVICES),
    )
    entry = json.loads((folder / "manifest.json").read_text())["capture"]
    typer.echo(f"prometheus: {entry['prometheus']['status']}")
    typer.echo(f"jaeger: {entry['jaeger']['status']}")
    typer.echo(f"manifest: {folder / 'manifest.json'}")
