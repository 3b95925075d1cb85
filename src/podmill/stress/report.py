"""``report.md``: the verdict, the numbers per level or arm, per-stage latency, the
evidence the verdict rests on, and for A/B a side-by-side table with B/A ratios."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from podmill.pipeline.dag import STAGE_NAMES
from podmill.stress import plots
from podmill.stress.records import ratio

if TYPE_CHECKING:
    from podmill.stress.scenarios import GroupResult


def _fmt(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def group_rows(groups: Sequence[GroupResult]) -> list[list[str]]:
    return [
        [
            g.name,
            str(g.concurrency),
            f"{g.summary.done}/{g.summary.jobs}",
            _fmt(g.summary.throughput_per_minute),
            _fmt(g.summary.latency_p50),
            _fmt(g.summary.latency_p95),
            _fmt(g.summary.latency_max),
            "pass" if g.passed else "FAIL",
        ]
        for g in groups
    ]


def comparison(a: GroupResult, b: GroupResult) -> list[list[str]]:
    """Rows ``metric | A | B | B/A`` for throughput, job latency and per-stage p95."""
    rows: list[tuple[str, float | None, float | None]] = [
        ("throughput (jobs/min)", a.summary.throughput_per_minute, b.summary.throughput_per_minute),
        ("job latency p50 (s)", a.summary.latency_p50, b.summary.latency_p50),
        ("job latency p95 (s)", a.summary.latency_p95, b.summary.latency_p95),
        ("window (s)", a.summary.window_seconds, b.summary.window_seconds),
    ]
    for stage in STAGE_NAMES:
        sa, sb = a.summary.stages.get(stage, {}), b.summary.stages.get(stage, {})
        if sa or sb:
            rows.append((f"{stage} p95 (s)", sa.get("p95"), sb.get("p95")))
    return [[name, _fmt(x), _fmt(y), _fmt(ratio(x, y))] for name, x, y in rows]


def render_report(manifest: dict[str, Any], groups: Sequence[GroupResult]) -> str:
    scenario = manifest["scenario"]
    verdict = "PASS" if manifest["passed"] else "FAIL"
    lines = [
        f"# podmill stress {scenario}: {verdict}",
        "",
        f"**{verdict}** — {manifest['reason']}",
        "",
        *[f"- {error}" for error in manifest["artifact_errors"]],
        *([""] if manifest["artifact_errors"] else []),
        f"- API: {manifest['api']} (tenant {manifest['server']['tenant']})",
        f"- git sha: `{manifest['git_sha']}`, podmill {manifest['podmill_version']}, "
        f"host {manifest['host']['hostname']} ({manifest['host']['cpus']} CPUs)",
        f"- window: {manifest['started_at']} → {manifest['finished_at']} "
        f"({manifest['duration_seconds']:.1f} s)",
        f"- settings: `{_settings_line(manifest['settings'])}`",
        f"- run id: `{manifest['run_id']}` (tags every staged audio copy)",
        "",
        "## Jobs per " + ("arm" if scenario == "ab" else "concurrency level"),
        "",
        "Latency: job creation → finish on the server's clock. Throughput: done jobs per "
        "minute from the first creation to the last finish of the group.",
        "",
    ]
    lines += _table(
        ["group", "concurrency", "done", "jobs/min", "p50 s", "p95 s", "max s", "result"],
        group_rows(groups),
    )
    if scenario == "ab" and len(groups) == 2:
        a, b = groups
        lines += [f"## A/B: {a.name} vs {b.name}", ""]
        for g in groups:
            lines.append(
                f"- **{g.name}**: `podmill worker {' '.join(g.settings.get('worker_args', []))}`"
            )
        lines.append("")
        lines += _table(["metric", a.name, b.name, f"{b.name}/{a.name}"], comparison(a, b))
    lines += ["## Stages (seconds per step, from GET /jobs)", ""]
    stage_rows = []
    for g in groups:
        for stage in STAGE_NAMES:
            stats = g.summary.stages.get(stage)
            if stats:
                m = g.metrics.get(stage, {})
                stage_rows.append(
                    [
                        g.name,
                        stage,
                        _fmt(stats["count"]),
                        _fmt(stats["p50"]),
                        _fmt(stats["p95"]),
                        _fmt(stats["max"]),
                        _fmt(m.get("p95_seconds_estimate")),
                    ]
                )
    lines += _table(
        ["group", "stage", "steps", "p50", "p95", "max", "p95 from /metrics"], stage_rows
    )
    lines += ["## Evidence", ""]
    evidence = manifest["evidence"]
    lines.append(f"- step states: {evidence['step_states']}")
    if evidence["worker_logs"]:
        lines.append(
            f"- worker logs scanned (lines written during each group): "
            f"{', '.join(evidence['worker_logs'])}; error lines: {evidence['log_error_lines']}"
        )
    else:
        lines.append(f"- worker logs: {evidence['worker_logs_note']}")
    for sample in evidence["log_error_samples"][:10]:
        lines.append(f"  - `{sample['group']}` {sample['path']}: `{sample['line']}`")
    for g in groups:
        for problem in g.problems[:10]:
            lines.append(f"- {g.name}: {problem}")
    lines += ["", "## Metrics", ""]
    sources: dict[str, str] = {}
    for note in manifest_sources(manifest):
        sources.setdefault(note["url"], note["status"])
    for url, status in sources.items():
        lines.append(f"- {url}: {status}")
    lines += [
        "",
        "Raw scrapes and per-stage aggregates: `metrics/` (`snapshot.json`).",
        "",
        *_capture_lines(manifest.get("capture")),
        "## Plots",
        "",
    ]
    drawn = manifest["plots"]["files"]
    lines += [line for name in drawn for line in (f"![{plots.FILES[name]}]({name})", "")]
    if manifest["plots"]["note"]:
        lines += [f"Not drawn: {manifest['plots']['note']}.", ""]
    return "\n".join(lines)


def manifest_sources(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return list(manifest.get("metrics_sources", []))


def _settings_line(settings: dict[str, Any]) -> str:
    keep = {k: v for k, v in settings.items() if k not in ("spawned_logs", "worker_logs")}
    return ", ".join(f"{k}={v}" for k, v in keep.items())


def _capture_lines(capture: dict[str, Any] | None) -> list[str]:
    """The run window's Prometheus series and Jaeger traces: where they are, or why not."""
    if not capture:
        return []
    lines = ["## Capture", ""]
    prometheus = capture.get("prometheus") or {}
    lines.append(f"- Prometheus: {prometheus.get('status', '–')}")
    for query in prometheus.get("queries", []):
        if query.get("file"):
            lines.append(f"  - [{query['name']}]({query['file']}): {query.get('series', 0)} series")
    jaeger = capture.get("jaeger") or {}
    lines.append(f"- Jaeger: {jaeger.get('status', '–')}")
    if jaeger.get("files"):
        lines.append(f"  - {len(jaeger['files'])} files under `jaeger/`")
    return [*lines, ""]
