"""What the deployment files must agree with: the metrics contract, PromQL name checks,
compose interpolation and .dockerignore matching. Shared by the tests in tests/deploy.

The metric names and labels are the contract of docs/observability.md (issue 8): exporters
may add series, never rename. The dashboard and the alert rules may use only these (plus
Prometheus' own ``up`` and ``ALERTS``), so a typo or a renamed series fails a test here
instead of leaving an empty panel or an alert that can never fire.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_GPU_FILE = REPO / "docker-compose.gpu.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PROMETHEUS_DIR = DEPLOY / "prometheus"
DASHBOARD_FILE = DEPLOY / "grafana" / "dashboards" / "podmill.json"

# The services the issue names, by role.
PODMILL_SERVICES = ("migrate", "api", "worker-asr", "worker-cpu", "poller")
REQUIRED_SERVICES = ("postgres", *PODMILL_SERVICES, "prometheus", "grafana")
REQUIRED_ALERTS = (
    "PodmillWorkerDown",
    "PodmillQueueBacklog",
    "PodmillEpisodeStuck",
    "PodmillDeadStepsGrowing",
    "PodmillDiskLow",
)


@dataclass(frozen=True)
class Metric:
    kind: str  # gauge | counter | histogram
    labels: frozenset[str]


def _m(kind: str, *labels: str) -> Metric:
    return Metric(kind, frozenset(labels))


CONTRACT: dict[str, Metric] = {
    # read from the database by the API's collector
    "podmill_queue_depth": _m("gauge", "stage"),
    "podmill_steps_running": _m("gauge", "stage"),
    "podmill_steps_dead": _m("gauge", "stage"),
    "podmill_workers_alive": _m("gauge"),
    "podmill_jobs": _m("gauge", "status"),
    "podmill_oldest_running_job_seconds": _m("gauge"),
    # the API process
    "podmill_http_request_duration_seconds": _m("histogram", "method", "route", "status"),
    "podmill_jobs_submitted_total": _m("counter", "via"),
    "podmill_disk_free_bytes": _m("gauge", "path"),
    "podmill_build_info": _m("gauge", "version", "git_sha"),
    # each worker process
    "podmill_claim_latency_seconds": _m("histogram", "pool"),
    "podmill_stage_duration_seconds": _m("histogram", "stage"),
    "podmill_step_queue_wait_seconds": _m("histogram", "stage"),
    "podmill_step_outcomes_total": _m("counter", "stage", "outcome"),
    "podmill_steps_in_flight": _m("gauge", "stage"),
    "podmill_model_load_seconds": _m("histogram", "model"),
    "podmill_model_resident": _m("gauge", "model"),
    "podmill_audio_seconds_processed_total": _m("counter"),
    "podmill_jobs_completed_total": _m("counter", "status"),
    "podmill_worker_heartbeat_timestamp_seconds": _m("gauge"),
    # added by the API beyond the contract: 0 while the fleet gauges cannot be read
    "podmill_database_up": _m("gauge"),
}
# Series Prometheus makes itself: scrape health and the firing-alerts view.
BUILTIN: dict[str, Metric] = {
    "up": _m("gauge"),
    "ALERTS": _m("gauge", "alertname", "alertstate", "severity"),
}
# Labels every scraped series carries (job and instance from Prometheus, role from the
# worker job's relabelling in deploy/prometheus/prometheus.yml).
TARGET_LABELS = frozenset({"job", "instance", "role"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)", re.IGNORECASE
)
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^{}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_IDENT = re.compile(r"(?<![\w.:$])([A-Za-z_:][\w:]*)")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}
    | {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"}
    | {"bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)


@dataclass
class ExprRefs:
    """What one PromQL expression refers to."""

    metrics: set[str]
    matcher_labels: dict[str, set[str]]  # metric → labels its selectors match on
    grouping_labels: set[str]


def expr_refs(expr: str) -> ExprRefs:
    """Metric names and label names a PromQL expression uses (Grafana variables such as
    ``$stage`` or ``$__rate_interval`` may appear in matchers and ranges)."""
    text = _STRING.sub('""', expr)
    grouping: set[str] = set()
    for match in _GROUPING.finditer(text):
        grouping |= {label.strip() for label in match.group(2).split(",") if label.strip()}
    text = _GROUPING.sub(" ", text)
    matcher_labels: dict[str, set[str]] = {}
    for match in _SELECTOR.finditer(text):
        labels = set(_MATCHER_LABEL.findall(match.group(2)))
        name = match.group(1)
        if name is None:  # {__name__="..."} selectors are not used here
            raise ValueError(f"selector without a metric name in {expr!r}: name the metric")
        matcher_labels.setdefault(name, set()).update(labels)
    text = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery selectors
    metrics: set[str] = set()
    for match in _IDENT.finditer(text):
        name = match.group(1)
        following = text[match.end() :].lstrip()
        if following.startswith("(") or name.lower() in _KEYWORDS:
            continue  # a function or an operator keyword
        metrics.add(name)
    return ExprRefs(metrics, matcher_labels, grouping)


def known_metric(name: str) -> Metric | None:
    """The contract entry for a series name (histogram ``_bucket/_sum/_count`` included)."""
    if name in CONTRACT:
        return None if CONTRACT[name].kind == "histogram" else CONTRACT[name]
    if name in BUILTIN:
        return BUILTIN[name]
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and base in CONTRACT and CONTRACT[base].kind == "histogram":
            labels = CONTRACT[base].labels | ({"le"} if suffix == "_bucket" else set())
            return Metric("histogram", frozenset(labels))
    return None


def contract_problems(expr: str) -> list[str]:
    """Everything in ``expr`` the contract does not have: unknown series, a label a
    selector matches that its series lacks, a grouping label no series in it has."""
    refs = expr_refs(expr)
    problems: list[str] = []
    labels_here: set[str] = set(TARGET_LABELS)
    for name in sorted(refs.metrics):
        metric = known_metric(name)
        if metric is None:
            hint = " (query a histogram's _bucket, _sum or _count)" if name in CONTRACT else ""
            problems.append(f"unknown metric {name!r}{hint}")
            continue
        labels_here |= metric.labels
        extra = refs.matcher_labels.get(name, set()) - metric.labels - TARGET_LABELS
        if extra:
            problems.append(f"{name} has no label(s) {sorted(extra)}")
    unknown_grouping = refs.grouping_labels - labels_here
    if unknown_grouping:
        problems.append(f"grouping by label(s) {sorted(unknown_grouping)} no series here has")
    return problems


def substitute_grafana_variables(expr: str) -> str:
    """Plain PromQL from a Grafana query (for promtool): ranges and variables filled in."""
    expr = re.sub(r"\$__(rate_interval|interval|range)", "5m", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


# ----------------------------------------------------------------------- compose helpers

_INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")
# ${VAR:?error}: compose refuses to start while VAR is unset or empty
REQUIRED_VARIABLE = re.compile(r"\$\{(\w+):\?[^}]*\}")
DOTENV_EXAMPLE = REPO / ".env.example"


class MissingVariable(AssertionError):
    """A ``${VAR:?error}`` without a value: ``docker compose`` would stop with the error."""


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` / ``${VAR:?error}`` with an empty
    environment by default: the values a fresh checkout runs with (a required variable
    without a value raises :class:`MissingVariable`)."""
    env = env or {}

    def one(m: re.Match[str]) -> str:
        name, kind, text = m.group(1), m.group(2) or "", m.group(3) or ""
        if env.get(name):
            return env[name]
        if kind.endswith("?"):
            raise MissingVariable(f"{name}: {text}")
        return text

    return _INTERPOLATION.sub(one, value)


def load_compose(path: Path = COMPOSE_FILE) -> dict:
    with path.open() as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict) or "services" not in data:
        raise AssertionError(f"{path.name}: no services mapping")
    return data


def parse_volume(spec: str) -> tuple[str, str, str]:
    """(source, target, mode) of a short-syntax volume ``SOURCE:TARGET[:MODE]``."""
    parts = spec.split(":")
    if len(parts) < 2:
        raise AssertionError(f"volume {spec!r}: use SOURCE:TARGET (anonymous volumes are lost)")
    return parts[0], parts[1], parts[2] if len(parts) > 2 else "rw"


def flag_value(command: list[str], flag: str) -> str | None:
    """``--flag VALUE`` or ``--flag=VALUE`` in an exec-form command, else None."""
    for i, arg in enumerate(command):
        if arg == flag and i + 1 < len(command):
            return command[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def flag_values(command: list[str], flag: str) -> list[str]:
    values = []
    for i, arg in enumerate(command):
        if arg == flag and i + 1 < len(command):
            values.append(command[i + 1])
        elif arg.startswith(flag + "="):
            values.append(arg.split("=", 1)[1])
    return values


# -------------------------------------------------------------------- .dockerignore


def dockerignore_patterns(path: Path = DOCKERIGNORE) -> list[tuple[bool, str]]:
    """(negated, pattern) per line, comments and blanks dropped."""
    patterns = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        patterns.append((negated, line.lstrip("!").strip("/")))
    return patterns


def dockerignored(relpath: str, patterns: list[tuple[bool, str]]) -> bool:
    """Whether Docker leaves ``relpath`` out of the build context: the last matching
    pattern wins, and a pattern matching a parent directory excludes what is under it."""
    parts = relpath.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, pattern in patterns:
        if any(_docker_match(pattern, p) for p in prefixes):
            excluded = not negated
    return excluded


def _docker_match(pattern: str, path: str) -> bool:
    if pattern.startswith("**/"):
        rest = pattern[3:]
        segments = path.split("/")
        return any(fnmatch.fnmatchcase("/".join(segments[i:]), rest) for i in range(len(segments)))
    # Go's filepath.Match: '*' does not cross '/'.
    regex = fnmatch.translate(pattern).replace(".*", "[^/]*")
    return re.match(regex, path) is not None


def build_context_files(patterns: list[tuple[bool, str]] | None = None) -> list[str]:
    """Files of the working tree (not git's own) that reach the Docker build context."""
    patterns = patterns if patterns is not None else dockerignore_patterns()
    files = []
    for root, dirs, names in os.walk(REPO):
        rel_root = os.path.relpath(root, REPO)
        rel_root = "" if rel_root == "." else rel_root + "/"
        # Docker still looks inside an excluded directory that an exception (!) reaches into.
        reopened = [p for negated, p in patterns if negated]
        dirs[:] = [
            d
            for d in dirs
            if not dockerignored(rel_root + d, patterns)
            or any(p.startswith(rel_root + d + "/") for p in reopened)
        ]
        files += [rel_root + n for n in names if not dockerignored(rel_root + n, patterns)]
    return sorted(files)


def promtool() -> str | None:
    return shutil.which("promtool")
