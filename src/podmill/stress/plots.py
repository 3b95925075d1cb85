"""The PNG plots of a stress run (matplotlib, the ``stress`` extra; imported lazily so
``podmill --help`` does not load it). A run calls :func:`check` before it submits
anything, so a missing extra costs seconds, not a soak (docs/stress.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from podmill.errors import require
from podmill.stress.records import GroupSummary, JobRecord, parse_time

# The PNGs a run draws, in the order it draws them, and their titles in report.md.
FILES = {
    "waterfall.png": "per-job stage waterfall",
    "levels.png": "throughput and p95 latency",
}


def check() -> None:
    """Raise :class:`~podmill.errors.MissingExtraError` now, before any work, unless
    pyplot can be loaded; the message says how to run without the plots."""
    _pyplot()


def _pyplot() -> Any:
    matplotlib = require(
        "matplotlib",
        "stress",
        "drawing the stress plots",
        instead="pass --no-plots to run without them",
    )
    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def waterfall(jobs: Sequence[JobRecord], stage_names: Sequence[str], path: Path) -> Path:
    """One row per job: a grey bar from its creation to its finish, and over it a
    coloured bar per stage from the step's start to its end (grey left showing is time
    spent waiting for a worker), on the server's clock, in seconds since the first job
    was created."""
    plt = _pyplot()
    created = [t for j in jobs if (t := parse_time(j.created_at)) is not None]
    origin = min(created) if created else None
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(11, max(2.5, 0.32 * len(jobs) + 1.5)))
    labels = []
    for row, job in enumerate(jobs):
        labels.append(f"{job.group} #{job.id if job.id is not None else job.index}")
        if origin is None:
            continue
        job_created = parse_time(job.created_at)
        ends = [t for s in job.stages.values() if (t := parse_time(s.finished_at))]
        job_end = parse_time(job.finished_at) or (max(ends) if ends else None)
        if job_created and job_end:
            # the job's whole life in grey: what shows between the stage bars is waiting
            ax.barh(
                row,
                (job_end - job_created).total_seconds(),
                left=(job_created - origin).total_seconds(),
                color="#dddddd",
                height=0.6,
            )
        for index, name in enumerate(stage_names):
            stage = job.stages.get(name)
            if stage is None:
                continue
            begin, end = parse_time(stage.started_at), parse_time(stage.finished_at)
            if begin is None or end is None:
                continue
            ax.barh(
                row,
                max((end - begin).total_seconds(), 0.01),
                left=(begin - origin).total_seconds(),
                color=colours(index % 10),
                height=0.6,
                edgecolor="black" if stage.status not in ("done", "skipped") else None,
            )
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours(i % 10)) for i in range(len(stage_names))]
    handles.append(plt.Rectangle((0, 0), 1, 1, color="#dddddd"))
    ax.legend(handles, [*stage_names, "waiting"], loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_yticks(range(len(jobs)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first job was created (server clock)")
    ax.set_title("per-job stage waterfall")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def levels(summaries: Sequence[GroupSummary], path: Path, xlabel: str) -> Path:
    """Throughput (jobs/min, bars) and p95 job latency (s, line) per level or arm."""
    plt = _pyplot()
    names = [s.group for s in summaries]
    xs = list(range(len(summaries)))
    fig, left = plt.subplots(figsize=(7, 4))
    left.bar(xs, [s.throughput_per_minute or 0 for s in summaries], color="#4c72b0", width=0.5)
    left.set_ylabel("throughput (done jobs / minute)", color="#4c72b0")
    left.set_xticks(xs, names)
    left.set_xlabel(xlabel)
    right = left.twinx()
    right.plot(xs, [s.latency_p95 or 0 for s in summaries], color="#dd8452", marker="o")
    right.set_ylabel("p95 job latency (s)", color="#dd8452")
    right.set_ylim(bottom=0)
    left.set_title("throughput and p95 latency")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
