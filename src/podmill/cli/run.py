"""``podmill run``, ``show`` and ``demo``: the embedded pipeline on one machine."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
import time
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from podmill.cli import settings as cli_settings
from podmill.cli.engine import database_flags, say_paused
from podmill.cli.options import (
    AllowPrivateOpt,
    ConfigOpt,
    DataDirOpt,
    DbOpt,
    EpisodeLimitOpt,
    LogFormatOpt,
    SinceOpt,
    names_private_flag,
    naming_private_flag,
    parse_since,
)
from podmill.cli.output import err, out, print_json, table
from podmill.domain import Episode
from podmill.errors import MissingExtraError, PodmillError
from podmill.settings import Settings


class ModelChoice(str, Enum):
    tiny_en = "tiny.en"
    base = "base"


class Quality(str, Enum):
    """``--quality``: the Whisper model by what it buys (docs/quality.md, ASR choice)."""

    fast = "fast"
    balanced = "balanced"


# What each --quality runs. ``fast`` is the built-in default (asr.model = tiny.en).
QUALITY_MODELS = {Quality.fast: "tiny.en", Quality.balanced: "base"}


def quality_model(quality: Quality | None, model: ModelChoice | None) -> str | None:
    """The ``asr.model`` that ``--quality`` and ``--model`` ask for (``None``: neither,
    the settings decide); both, naming different models, is an error."""
    if quality is None:
        return model.value if model else None
    wanted = QUALITY_MODELS[quality]
    if model is not None and model.value != wanted:
        raise PodmillError(
            f"--quality {quality.value} is Whisper {wanted}, --model asks for {model.value}; "
            "give one of them"
        )
    return wanted


class ShowFormat(str, Enum):
    outline = "outline"
    json = "json"
    srt = "srt"
    vtt = "vtt"
    txt = "txt"


class ProgressReporter:
    """Rich progress: one line per episode with its stage and audio-seconds per second."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        self.started: dict[str, float] = {}
        self.audio: dict[str, float] = {}

    def episode_started(self, episode: Episode) -> None:
        self.started[episode.episode_key] = time.monotonic()
        self.tasks[episode.episode_key] = self.progress.add_task(
            episode.title[:48], total=10, stage="queued", speed=""
        )

    def stage_started(self, episode: Episode, stage: str) -> None:
        self.progress.update(self.tasks[episode.episode_key], stage=stage)

    def stage_finished(self, episode: Episode, stage: str, seconds: float, cached: bool) -> None:
        self.progress.advance(self.tasks[episode.episode_key])

    def audio_progress(self, episode: Episode, position: float) -> None:
        self.audio[episode.episode_key] = position
        elapsed = time.monotonic() - self.started[episode.episode_key]
        speed = f"{position / elapsed:.1f} audio-s/s" if elapsed > 0 else ""
        self.progress.update(self.tasks[episode.episode_key], speed=speed)

    def episode_finished(self, result: Any) -> None:
        task = self.tasks[result.episode_key]
        elapsed = time.monotonic() - self.started[result.episode_key]
        computed = result.computed_audio_seconds  # reused audio is not throughput
        speed = f"{computed / elapsed:.1f} audio-s/s" if computed and elapsed > 0 else ""
        if result.status != "done":
            label = f"[red]failed ({result.failed_stage})"
        else:
            label = "[green]cached" if result.fully_cached else "[green]done"
        self.progress.update(task, stage=label, speed=speed, completed=10)

    def waiting(self, message: str) -> None:
        self.progress.console.print(f"waiting: {message}", markup=False, soft_wrap=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=20),
        TextColumn("{task.fields[stage]}"),
        TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(),
        console=err,
    )


def _this_run(result: Any) -> str:
    """What this run spent on an episode: its stages' seconds, or ``cached``."""
    if not result.timings:
        return "cached" if result.cached else "-"
    seconds = f"{sum(result.timings.values()):.1f}"
    return f"{seconds} ({len(result.cached)} stages cached)" if result.cached else seconds


def _print_summary(results: list[Any], wall_seconds: float) -> None:
    """The table of episodes, then one line on what this run did: a rerun over reused
    artifacts says ``cached`` and claims no throughput (docs/pipeline.md)."""
    summary = table("podmill run", "episode", "key", "status", "this run (s)", "detail")
    for r in results:
        summary.add_row(
            Text(r.title[:40]),  # Text: brackets in a title or error are not markup
            r.episode_key,
            "[green]done" if r.status == "done" else "[red]failed",
            _this_run(r),
            Text(naming_private_flag(r.error) if r.error else r.artifacts.get("summary_md", "")),
        )
    err.print(summary)
    err.print(run_line(results, wall_seconds), markup=False, soft_wrap=True)


def run_line(results: list[Any], wall_seconds: float) -> str:
    """``this run: 3.2 s wall; 1 episode computed, 2 cached; 11.0 s of audio transcribed
    (3.4 audio-s/s)``: throughput only over the audio this run transcribed."""
    cached = sum(1 for r in results if r.fully_cached)
    computed = sum(1 for r in results if r.timings)
    audio = sum(r.computed_audio_seconds for r in results)
    parts = [f"this run: {wall_seconds:.1f} s wall"]
    counts = [f"{computed} episode{'s' if computed != 1 else ''} computed", f"{cached} cached"]
    failed = sum(1 for r in results if r.status != "done")
    if failed:
        counts.append(f"{failed} failed")
    parts.append(", ".join(counts))
    if audio > 0 and wall_seconds > 0:
        parts.append(f"{audio:.1f} s of audio transcribed ({audio / wall_seconds:.1f} audio-s/s)")
    else:
        parts.append("no audio transcribed")
    return "; ".join(parts)


@names_private_flag
def run(
    source: Annotated[str, typer.Argument(help="feed URL or file, or audio URL or file")],
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
    limit: EpisodeLimitOpt = None,
    since: SinceOpt = None,
    model: Annotated[ModelChoice | None, typer.Option(help="Whisper model")] = None,
    quality: Annotated[
        Quality | None,
        typer.Option(
            help="fast: Whisper tiny.en (the default); balanced: Whisper base, fewer word "
            "errors at about twice the time (needs the 'whisper-base' extra)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per episode")] = False,
    allow_private_networks: AllowPrivateOpt = None,
    diarize: Annotated[
        bool | None,
        typer.Option(help="label speakers (SPEAKER_1, ...); needs the 'diarize' extra"),
    ] = None,
    log_format: LogFormatOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Transcribe and outline a feed's episodes or one audio file (embedded, offline).

    Each episode's job gets a new correlation id; with ``--log-format json`` every log
    line of its stages carries it."""
    from podmill.engine.runner import Runner
    from podmill.feeds.sources import resolve

    settings = cli_settings.load(
        config,
        data_dir=data_dir,
        db=db,
        **{"asr.model": quality_model(quality, model), "diarization.enabled": diarize},
        allow_private_networks=allow_private_networks,
        log_format=log_format,
    )
    from podmill.ml.preflight import require_models

    try:
        require_models(settings)  # before the feed is fetched: a missing extra is one line
    except MissingExtraError as exc:
        if quality is Quality.balanced and exc.extra == "whisper-base":
            raise MissingExtraError(
                "whisper-base",
                "--quality balanced (Whisper base)",
                exc.module,
                instead="--quality fast (Whisper tiny.en)",
            ) from None
        raise
    resolved = resolve(source, settings, limit=limit, since=parse_since(since))
    for item in resolved.skipped:
        err.print(f"skipped {item.title}: {item.reason}", markup=False, soft_wrap=True)
    if not resolved.episodes:
        raise PodmillError(f"{source}: no episodes to process (check --since / --limit)")
    if limit is None and len(resolved.episodes) > 10:
        err.print(
            f"processing all {len(resolved.episodes)} episodes, newest first "
            "(use --limit N or --since DATE for fewer)",
            soft_wrap=True,
        )
    started = time.monotonic()
    with _progress() as progress:
        runner = Runner(settings, ProgressReporter(progress))
        results = runner.run_many(resolved.episodes, feed=resolved.feed)
    if as_json:
        for r in results:
            print_json(r.to_json())  # not markup: "podmill[whisper-base]" stays whole
    _print_summary(results, time.monotonic() - started)
    # a stage paused on this database holds back what `podmill submit` queued there
    say_paused(runner.paused_stages(), database_flags(settings.database_url, None, None))
    if any(r.status == "done" for r in results):
        where = [
            *(["--data-dir", str(data_dir)] if data_dir else []),
            *(["--db", db] if db else []),
        ]
        where += ["--config", str(config)] if config else []
        view = shlex.join([*podmill_command(), "view", *where])
        err.print(f"browse them: {view}  (library, player, search, digest)", markup=False)
    if any(r.status != "done" for r in results):
        raise typer.Exit(1)


# ---------------------------------------------------------------------------- show


_EPISODE_KEY = re.compile(r"[0-9a-fA-F]{1,64}")


def find_episode_dir(settings: Settings, key: str) -> Path:
    """The newest finished artifact directory of an episode (a unique key prefix is enough).

    The key is hex digits only and matched by name against the folders of
    ``DATA_DIR/episodes``: never a glob or a path, so nothing outside the data dir is read.
    """
    from podmill.feeds.identity import KEY_LENGTH
    from podmill.storage.artifacts import ArtifactStore

    if not _EPISODE_KEY.fullmatch(key):
        raise PodmillError(
            f"{key!r} is not an episode key: give the {KEY_LENGTH} hex digits "
            "`podmill run` printed (or a unique prefix of them)"
        )
    key = key.lower()
    root = settings.data_dir / "episodes"
    inside = root.resolve()
    matches = (
        sorted(
            p
            for p in root.iterdir()
            if p.name.startswith(key) and p.is_dir() and p.resolve().parent == inside
        )
        if root.is_dir()
        else []
    )
    if not matches:
        raise PodmillError(
            f"no episode {key!r} in {root}; run `podmill run` first or check --data-dir"
        )
    if len(matches) > 1 and not any(p.name == key for p in matches):
        names = ", ".join(p.name for p in matches[:5])
        raise PodmillError(f"episode key {key!r} is ambiguous ({names}); give more characters")
    episode = next((p for p in matches if p.name == key), matches[0])
    store = ArtifactStore(settings.data_dir)
    fingerprint = store.newest_finished(episode.name)
    if fingerprint is None:
        raise PodmillError(
            f"episode {episode.name} has no finished run in {episode}; "
            "run `podmill run` on its feed or file to finish it"
        )
    return store.episode_dir(episode.name, fingerprint)


def show(
    episode_key: Annotated[str, typer.Argument(help="episode key (or a unique prefix)")],
    data_dir: DataDirOpt = None,
    format: Annotated[ShowFormat, typer.Option("--format", help="what to print")] = (
        ShowFormat.outline
    ),
    config: ConfigOpt = None,
) -> None:
    """Print an episode's outline, topic tree or transcript."""
    from podmill.domain import TopicNode
    from podmill.pipeline.outline import render_outline
    from podmill.storage.artifacts import (
        TRANSCRIPTS,
        Artifact,
        ArtifactDamaged,
        read_set_json,
        read_set_text,
    )

    settings = cli_settings.load(config, data_dir=data_dir)
    folder = find_episode_dir(settings, episode_key)
    try:  # checked reads: a damaged file is one line, and `podmill run` again repairs it
        if format is ShowFormat.outline:
            data = read_set_json(folder, Artifact.TOPICS)
            out.print(render_outline(TopicNode.from_dict(data["root"])), markup=False)
            return
        # --format json is the topic tree; the other formats are the transcript's
        name = Artifact.TOPICS if format is ShowFormat.json else TRANSCRIPTS[format.value]
        sys.stdout.write(read_set_text(folder, name))
    except ArtifactDamaged as exc:
        raise PodmillError(
            f"{exc}; run `podmill run` on its feed or file again to re-process it"
        ) from None


# ---------------------------------------------------------------------------- demo

# What the demo suggests searching for: words of its three-topic episode (Mars rovers).
DEMO_QUERY = "how do rovers collect rock samples"


def demo(
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Process the bundled demo feed (3 short public-domain clips) and print outlines.

    It writes the data dir every command reads (--data-dir, else PODMILL_DATA_DIR, else
    ~/.local/share/podmill) as the feed "podmill demo", then prints show, search and
    digest commands that work as printed, from the same directory."""
    from podmill.domain import TopicNode
    from podmill.engine.runner import Runner
    from podmill.feeds.sources import resolve
    from podmill.pipeline.outline import render_outline

    settings = cli_settings.load(config, data_dir=data_dir, db=db)
    with resources.as_file(resources.files("podmill") / "demo" / "feed.xml") as feed_path:
        resolved = resolve(str(feed_path), settings)
        with _progress() as progress:
            runner = Runner(settings, ProgressReporter(progress))
            results = runner.run_many(resolved.episodes, feed=resolved.feed)
    for r in results:
        out.rule(escape(f"{r.title}  [{r.episode_key}]"))
        if r.status == "done":
            data = json.loads(Path(r.artifacts["topics"]).read_text())
            out.print(render_outline(TopicNode.from_dict(data["root"])), markup=False)
        else:
            out.print(f"failed: {r.error}", markup=False)
    err.print(f"artifacts in {settings.data_dir.resolve()}/episodes/", markup=False)
    if any(r.status != "done" for r in results):
        raise typer.Exit(1)
    published = [ep.published for ep in resolved.episodes if ep.published is not None]
    since = f"{min(published):%Y-%m-%d}" if published else "30d"
    where = (["--data-dir", str(data_dir)] if data_dir else []) + (
        ["--config", str(config)] if config else []
    )
    database = ["--db", db] if db else []  # `show` reads files only: it has no --db
    err.print("next, try:", markup=False)
    for words in (
        ["show", results[0].episode_key, *where],
        ["search", DEMO_QUERY, *where, *database],
        ["digest", "--since", since, *where, *database],  # the demo is not from this week
        ["view", *where, *database],  # the same, in a browser
    ):
        err.print("  " + shlex.join([*podmill_command(), *words]), markup=False, soft_wrap=True)


def podmill_command() -> list[str]:
    """How this process was started, for commands a user copies: ``podmill`` when that
    is what ``PATH`` finds, else the script's path as typed (``.venv/bin/podmill``), or
    ``python -m podmill``."""
    script = sys.argv[0]
    if Path(script).name == "__main__.py":  # python -m podmill
        python = sys.executable
        found = shutil.which(Path(python).name)
        if found and Path(found).absolute() == Path(python).absolute():
            python = Path(python).name
        return [python, "-m", "podmill"]
    found = shutil.which("podmill")
    if found and Path(found).absolute() == Path(script).absolute():
        return ["podmill"]
    return [script]
