"""Run capture: the timestamped run folder, and what Prometheus and Jaeger held during a
run's window, saved beside its artifacts so dashboards can be built off a run later.

- :func:`new_run_folder` makes ``OUT/<UTC timestamp>/`` (never reusing or deleting an
  earlier run's), writes its ``.git-sha`` and points ``OUT/latest`` at it;
  :func:`write_index` writes the folder's top-level ``report.md`` linking each scenario.
- :func:`capture_prometheus` saves ``query_range`` answers (``step`` 5 s over the window)
  for the series in :data:`QUERIES`, each raw JSON envelope as Prometheus sent it, under
  ``prometheus/``.
- :func:`capture_jaeger` saves the traces of the window (Jaeger's HTTP query API,
  ``GET /api/traces?service=…&start=…&end=…``, per service) and of each job (the same,
  with ``tags={"correlation_id": …}``) under ``jaeger/``.

Neither is required: a URL not given, or a server that does not answer, is recorded in
the manifest's ``capture`` entry and the run goes on (docs/stress.md, "Capture").
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STEP_SECONDS = 5
TIMESTAMP = "%Y%m%dT%H%M%SZ"
LATEST = "latest"
GIT_SHA_FILE = ".git-sha"

# name → PromQL. Raw series keep every instance's labels; the p95s are what a
# dashboard's latency panel draws. podmill_step_queue_wait_seconds may be absent from
# an older deployment: its answer is then an empty result, saved like any other.
QUERIES: tuple[tuple[str, str], ...] = (
    ("stage_duration_count", "podmill_stage_duration_seconds_count"),
    ("stage_duration_sum", "podmill_stage_duration_seconds_sum"),
    (
        "stage_duration_p95",
        "histogram_quantile(0.95, sum by (stage, le) "
        "(rate(podmill_stage_duration_seconds_bucket[1m])))",
    ),
    ("queue_wait_count", "podmill_step_queue_wait_seconds_count"),
    ("queue_wait_sum", "podmill_step_queue_wait_seconds_sum"),
    (
        "queue_wait_p95",
        "histogram_quantile(0.95, sum by (stage, le) "
        "(rate(podmill_step_queue_wait_seconds_bucket[1m])))",
    ),
    ("jobs_completed", "podmill_jobs_completed_total"),
    ("queue_depth", "podmill_queue_depth"),
    ("model_swaps", "podmill_model_swaps_total"),
    ("device_tenant", "podmill_device_tenant"),
    ("llm_tokens", "podmill_llm_tokens_total"),
)
DEFAULT_JAEGER_SERVICES = ("podmill-api",)
# The span attribute that carries a job's correlation id (docs/observability.md).
JAEGER_TAG = "correlation_id"
_TIMEOUT = 30.0


# ------------------------------------------------------------------ run folder


def new_run_folder(out: Path, now: datetime | None = None) -> Path:
    """``OUT/<UTC timestamp>/`` (``-2``, ``-3``… if a run of the same second exists), with
    ``.git-sha``; ``OUT/latest`` is repointed at it. Earlier runs are never touched."""
    from podmill.stress.scenarios import git_sha  # the manifest's sha, one definition

    out.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime(TIMESTAMP)
    folder, n = out / stamp, 1
    while True:
        try:
            folder.mkdir()
            break
        except FileExistsError:
            n += 1
            folder = out / f"{stamp}-{n}"
    (folder / GIT_SHA_FILE).write_text(git_sha() + "\n")
    point_latest(out, folder.name)
    return folder


def point_latest(out: Path, name: str) -> None:
    """``OUT/latest`` → ``name`` (relative, so OUT can move), replaced atomically."""
    link = out / LATEST
    if link.exists() and not link.is_symlink():
        return  # a real file or folder named latest is not ours to replace
    temporary = out / f".{LATEST}.{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(name, target_is_directory=True)
    os.replace(temporary, link)


def write_index(folder: Path) -> Path:
    """The run folder's ``report.md``: each scenario (or capture) in it, its verdict,
    and links to its report, manifest and captured series."""
    sha = (folder / GIT_SHA_FILE).read_text().strip() if (folder / GIT_SHA_FILE).exists() else ""
    lines = [f"# podmill stress run {folder.name}", "", f"- git sha: `{sha or 'unknown'}`", ""]
    rows = []
    for child in sorted(p for p in folder.iterdir() if p.is_dir()):
        manifest_path = child / "manifest.json"
        if not manifest_path.exists():
            continue
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError:
            manifest = {}
        verdict = (
            "capture" if child.name == "capture" else ("PASS" if manifest.get("passed") else "FAIL")
        )
        links = [f"[manifest]({child.name}/manifest.json)"]
        if (child / "report.md").exists():
            links.insert(0, f"[report]({child.name}/report.md)")
        for sub in ("prometheus", "jaeger"):
            if (child / sub).is_dir():
                links.append(f"[{sub}]({child.name}/{sub}/)")
        capture = manifest.get("capture") or {}
        sources = "; ".join(
            f"{kind}: {(capture.get(kind) or {}).get('status', '–')}"
            for kind in ("prometheus", "jaeger")
        )
        reason = str(manifest.get("reason", "")).replace("|", "\\|")
        rows.append(f"| {child.name} | {verdict} | {reason} | {sources} | {' · '.join(links)} |")
    lines += [
        "| scenario | verdict | reason | capture | files |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path


# ------------------------------------------------------------------ prometheus


def _unix(moment: datetime) -> float:
    return round(moment.timestamp(), 3)


def range_request(
    base: str, query: str, start: datetime, end: datetime, step: int = STEP_SECONDS
) -> tuple[str, dict[str, str]]:
    """URL and parameters of one ``query_range`` (start and end as unix seconds). Points
    fall at ``start + k·step``: the end is rounded up to a whole step, so the last point
    is at or after the window's end and shows its final values."""
    first, last = _unix(start), _unix(end)
    steps = max(1, math.ceil(round((last - first) / step, 6)))
    return (
        base.rstrip("/") + "/api/v1/query_range",
        {
            "query": query,
            "start": str(first),
            "end": str(round(first + steps * step, 3)),
            "step": f"{step}s",
        },
    )


def capture_prometheus(
    base: str | None,
    start: datetime,
    end: datetime,
    folder: Path,
    queries: Sequence[tuple[str, str]] = QUERIES,
    step: int = STEP_SECONDS,
) -> dict[str, Any]:
    """Each query's ``query_range`` envelope into ``folder/prometheus/NAME.json``; the
    manifest entry says what was saved, and why not when nothing was."""
    entry: dict[str, Any] = {
        "url": base,
        "step_seconds": step,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "queries": [],
    }
    if not base:
        entry["status"] = "not captured: --prometheus was not given"
        return entry
    import httpx

    target = folder / "prometheus"
    with httpx.Client(timeout=_TIMEOUT) as client:
        for name, query in queries:
            url, params = range_request(base, query, start, end, step)
            record: dict[str, Any] = {"name": name, "query": query, "file": None}
            try:
                response = client.get(url, params=params)
            except httpx.HTTPError as exc:
                entry["status"] = f"unavailable: cannot reach {base} ({_short(exc)})"
                entry["queries"] = []
                return entry
            record["http_status"] = response.status_code
            series = _series_count(response)
            if series is None:
                record["status"] = f"HTTP {response.status_code}: {response.text[:160]}"
            else:
                target.mkdir(parents=True, exist_ok=True)
                (target / f"{name}.json").write_bytes(response.content)
                record.update(file=f"prometheus/{name}.json", series=series, status="ok")
            entry["queries"].append(record)
    saved = sum(1 for q in entry["queries"] if q["file"])
    entry["status"] = (
        f"ok: {saved} of {len(queries)} queries saved"
        if saved
        else f"unavailable: {base} answered no query ({entry['queries'][0]['status']})"
    )
    return entry


def _series_count(response: Any) -> int | None:
    """Series in a successful ``query_range`` answer; ``None`` for anything else."""
    try:
        data = response.json()
    except ValueError:
        return None
    if response.status_code != 200 or not isinstance(data, dict) or data.get("status") != "success":
        return None
    return len((data.get("data") or {}).get("result") or [])


# ---------------------------------------------------------------------- jaeger


@dataclass(frozen=True)
class JaegerQuery:
    """One ``GET /api/traces`` of Jaeger's HTTP query API (the one its UI uses): traces
    of ``service`` that touch the window, optionally only those with ``tags``."""

    service: str
    start: datetime
    end: datetime
    limit: int = 100
    tags: dict[str, str] | None = None

    def request(self, base: str) -> tuple[str, dict[str, str]]:
        """URL and parameters; Jaeger takes start/end in microseconds since the epoch and
        tags as one JSON object."""
        params = {
            "service": self.service,
            "start": str(int(self.start.timestamp() * 1_000_000)),
            "end": str(int(self.end.timestamp() * 1_000_000)),
            "limit": str(self.limit),
        }
        if self.tags:
            params["tags"] = json.dumps(self.tags, sort_keys=True, separators=(",", ":"))
        return base.rstrip("/") + "/api/traces", params


def jaeger_queries(
    services: Sequence[str],
    start: datetime,
    end: datetime,
    jobs: Sequence[dict[str, Any]] = (),
    tag: str = JAEGER_TAG,
) -> list[tuple[str, JaegerQuery]]:
    """``(file, query)``: the window per service, then one per job by correlation id."""
    limit = max(100, 2 * len(jobs) + 20)
    out = [
        (f"jaeger/window-{_safe(service)}.json", JaegerQuery(service, start, end, limit))
        for service in services
    ]
    for job in jobs:
        cid, job_id = job.get("correlation_id"), job.get("id")
        if cid and job_id and services:
            out.append(
                (
                    f"jaeger/jobs/{_safe(str(job_id))}.json",
                    JaegerQuery(services[0], start, end, 20, {tag: str(cid)}),
                )
            )
    return out


def capture_jaeger(
    base: str | None,
    start: datetime,
    end: datetime,
    folder: Path,
    *,
    services: Sequence[str] = DEFAULT_JAEGER_SERVICES,
    jobs: Sequence[dict[str, Any]] = (),
    tag: str = JAEGER_TAG,
) -> dict[str, Any]:
    """The window's and each job's traces into ``folder/jaeger/``; the manifest entry."""
    entry: dict[str, Any] = {
        "url": base,
        "services": list(services),
        "tag": tag,
        "files": [],
        "traces": 0,
    }
    if not base:
        entry["status"] = "not captured: --jaeger was not given"
        return entry
    import httpx

    problems: list[str] = []
    with httpx.Client(timeout=_TIMEOUT) as client:
        for name, query in jaeger_queries(services, start, end, jobs, tag):
            url, params = query.request(base)
            try:
                response = client.get(url, params=params)
            except httpx.HTTPError as exc:
                entry["status"] = f"unavailable: cannot reach {base} ({_short(exc)})"
                return entry
            try:
                data = response.json()
            except ValueError:
                data = None
            if response.status_code != 200 or not isinstance(data, dict):
                problems.append(f"{name}: HTTP {response.status_code}: {response.text[:120]}")
                continue
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(response.content)
            entry["files"].append(name)
            if name.startswith("jaeger/window-"):
                entry["traces"] += len(data.get("data") or [])
    entry["problems"] = problems
    entry["status"] = (
        f"ok: {len(entry['files'])} files, {entry['traces']} traces in the window"
        if entry["files"]
        else f"unavailable: {base} answered no query ({problems[0] if problems else 'none'})"
    )
    return entry


# ------------------------------------------------------------------- both


def capture_window(
    folder: Path,
    start: datetime,
    end: datetime,
    *,
    prometheus: str | None,
    jaeger: str | None,
    jaeger_services: Sequence[str] = DEFAULT_JAEGER_SERVICES,
    jobs: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The manifest's ``capture`` entry for one window (either source may be absent)."""
    return {
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "prometheus": capture_prometheus(prometheus, start, end, folder),
        "jaeger": capture_jaeger(jaeger, start, end, folder, services=jaeger_services, jobs=jobs),
    }


def parse_moment(text: str) -> datetime:
    """An ISO 8601 time (UTC when it names no zone) or unix seconds."""
    from podmill.errors import PodmillError

    value = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return datetime.fromtimestamp(float(value), UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PodmillError(
            f"{text!r} is not a time: give ISO 8601 (2026-12-04T19:00:00Z) or unix seconds"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "_"


def _short(exc: BaseException) -> str:
    from podmill.errors import first_line

    return first_line(exc) or type(exc).__name__
