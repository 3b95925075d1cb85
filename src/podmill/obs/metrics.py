"""Prometheus metrics: what the engine and the models record, and the two exporters.

Two kinds of exporters (docs/observability.md has the series and the design):

- the API process (:class:`ApiMetrics`): its HTTP requests, the jobs it accepted, and the
  whole fleet's queue, worker and job gauges read from the database at scrape time
  (:class:`FleetCollector`, cached ~2 s), so one scrape sees every worker's queue;
- every worker process (:class:`WorkerMetrics`, served on ``--metrics-port``): claim
  latency, stage durations, step outcomes, steps in flight, model loads and residency,
  audio seconds, jobs completed, its heartbeat.

The engine and the model code call the process's :func:`recorder` — a no-op until a
worker installs :class:`WorkerMetrics` — so ``prometheus_client`` is needed only by a
process that exports (the ``metrics`` extra for workers, included in ``server``), and
code that records never checks whether anyone listens.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from podmill import __version__
from podmill.domain import JOB_TERMINAL
from podmill.errors import require

log = logging.getLogger(__name__)

METRICS_EXTRA = "metrics"
PREFIX = "podmill_"
# Step outcomes as exported: the engine's outcome names mapped onto the contract's.
OUTCOMES = ("done", "failed", "dead", "released", "lease_lost")
ENGINE_OUTCOME = {"done": "done", "retry": "failed", "dead": "dead", "lost": "lease_lost"}
# Seconds: claims take milliseconds; stages from milliseconds to an hour of audio.
CLAIM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)
# Seconds a ready step waits to be claimed: milliseconds when idle, hours in a backlog.
QUEUE_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def prometheus(feature: str) -> Any:
    """The ``prometheus_client`` module, or one error line naming the extra."""
    return require("prometheus_client", METRICS_EXTRA, feature)


# --------------------------------------------------------------------- recording


class Recorder:
    """What the engine and the models report. This base records nothing: it is the
    process's recorder until an exporter installs one (:func:`install`)."""

    def claim(self, pool: str, seconds: float) -> None:
        """One claim call of ``pool`` took ``seconds``."""

    def step_started(self, stage: str) -> None:
        """A step of ``stage`` starts running in this process."""

    def step_queue_wait(self, stage: str, seconds: float) -> None:
        """A step of ``stage`` waited ``seconds`` ready (enqueued → claimed)."""

    def step_finished(self, stage: str, seconds: float, outcome: str) -> None:
        """A step ran ``seconds`` and ended with an engine outcome (done/retry/dead/lost)."""

    def step_released(self, stage: str) -> None:
        """A running step was handed back unfinished (shutdown)."""

    def job_completed(self, status: str) -> None:
        """This process moved a job to a terminal status (done or failed)."""

    def model_loaded(self, model: str, seconds: float) -> None:
        """``model`` was loaded in ``seconds`` and is now resident."""

    def model_unloaded(self, model: str) -> None:
        """``model`` is no longer resident."""

    def audio_processed(self, seconds: float) -> None:
        """``seconds`` of audio were transcribed."""

    def model_swapped(self, evicted: str, loaded: str) -> None:
        """``evicted`` was unloaded to make room for ``loaded`` on the same device."""

    def device_tenant(self, device: str, model: str, resident: bool) -> None:
        """``model`` became resident on ``device`` (``resident``) or left it."""

    def llm_call(
        self, backend: str, model: str, prompt_tokens: int, completion_tokens: int, cost: float
    ) -> None:
        """One LLM reply: its token counts and its cost (``llm.cost_per_1k_*_tokens``)."""

    def heartbeat(self, unix_time: float) -> None:
        """This worker's heartbeat was written at ``unix_time``."""


_recorder: Recorder = Recorder()
_recorder_lock = threading.Lock()


def recorder() -> Recorder:
    """This process's recorder (a no-op :class:`Recorder` unless one was installed)."""
    return _recorder


def install(new: Recorder) -> Recorder:
    """Make ``new`` this process's recorder; returns the previous one (to restore)."""
    global _recorder
    with _recorder_lock:
        old, _recorder = _recorder, new
    return old


# ---------------------------------------------------------------------- collectors


class ProcessInfoCollector:
    """``podmill_build_info{version,git_sha}`` = 1 and ``podmill_disk_free_bytes{path}``
    (read at scrape time; every exporter has them). ``path`` is the name ``data_dir``, not
    the directory: where the data lives is for ``/health``'s detail, not for scrapers."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from podmill.obs.health import git_sha

        info = GaugeMetricFamily(
            PREFIX + "build_info", "podmill version and git sha", labels=["version", "git_sha"]
        )
        info.add_metric([__version__, git_sha()], 1)
        yield info
        disk = GaugeMetricFamily(
            PREFIX + "disk_free_bytes", "free bytes under the data directory", labels=["path"]
        )
        free = disk_free_bytes(self.data_dir)
        if free is not None:
            disk.add_metric(["data_dir"], free)
        yield disk


def disk_free_bytes(path: Path) -> int | None:
    """Free bytes on the filesystem holding ``path`` (its nearest existing ancestor)."""
    probe = Path(path).expanduser()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


class FleetCollector:
    """The fleet's gauges, read from the database at scrape time (docs/observability.md)."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache  # a podmill.storage.fleet.FleetCache

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily(
            PREFIX + "database_up", "1 when the fleet gauges could be read from the database"
        )
        try:
            state = self.cache.get()
        except Exception as exc:
            # The scrape still answers (build info, disk, HTTP metrics); the fleet gauges
            # are absent rather than stale, and podmill_database_up says why.
            from podmill.errors import first_line

            log.warning("fleet gauges unavailable: %s", first_line(exc))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        by_stage = (
            ("queue_depth", "steps a worker could claim now", state.queue_depth),
            (
                "queue_paused_depth",
                "steps that would be ready but for their stage's pause",
                state.paused_depth,
            ),
            ("steps_running", "steps in status running", state.running),
            ("steps_dead", "steps in status dead", state.dead),
        )
        for name, doc, values in by_stage:
            family = GaugeMetricFamily(PREFIX + name, doc, labels=["stage"])
            for stage, value in values.items():  # every stage, 0 when it has no steps
                family.add_metric([stage], value)
            yield family
        paused = GaugeMetricFamily(
            PREFIX + "queue_paused", "1 while the stage's queue is paused", labels=["stage"]
        )
        for stage in state.queue_depth:
            paused.add_metric([stage], int(stage in state.paused))
        yield paused
        yield GaugeMetricFamily(
            PREFIX + "workers_alive",
            "workers with status running and a fresh heartbeat",
            value=state.workers_alive,
        )
        jobs = GaugeMetricFamily(PREFIX + "jobs", "jobs by status", labels=["status"])
        for status, count in state.jobs.items():
            jobs.add_metric([status], count)
        yield jobs
        yield GaugeMetricFamily(
            PREFIX + "oldest_running_job_seconds",
            "age of the oldest pending or running job (0 if none)",
            value=state.oldest_unfinished_job_seconds,
        )
        index = GaugeMetricFamily(
            PREFIX + "search_index_documents",
            "search documents in the index, by kind",
            labels=["kind"],
        )
        for kind, count in sorted(state.search_docs.items()):
            index.add_metric([kind], count)
        yield index


def process_exposition(data_dir: Path) -> Any:
    """``() → (body, content type)`` with only build info and disk: the metrics of a
    process that runs no steps (``podmill scheduler --metrics-port``)."""
    pc = prometheus("podmill scheduler --metrics-port")
    registry = pc.CollectorRegistry()
    registry.register(ProcessInfoCollector(data_dir))
    return lambda: (pc.generate_latest(registry), pc.CONTENT_TYPE_LATEST)


# -------------------------------------------------------------------------- worker


class WorkerMetrics(Recorder):
    """A worker process's series, in a registry of its own (served by
    :func:`podmill.obs.server.serve_worker_endpoints`)."""

    def __init__(
        self, data_dir: Path, pools: Iterable[str] = (), stages: Iterable[str] = ()
    ) -> None:
        """``pools`` and ``stages`` are the label values that start at 0 (the worker
        passes its pools and the DAG's stages: obs sits below the pipeline)."""
        pc = prometheus("worker metrics (podmill worker --metrics-port)")
        self.registry = pc.CollectorRegistry()
        r = self.registry
        self.claim_latency = pc.Histogram(
            PREFIX + "claim_latency_seconds",
            "time of one claim call",
            ["pool"],
            buckets=CLAIM_BUCKETS,
            registry=r,
        )
        self.stage_duration = pc.Histogram(
            PREFIX + "stage_duration_seconds",
            "run time of one step",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.queue_wait = pc.Histogram(
            PREFIX + "step_queue_wait_seconds",
            "time a ready step waited to be claimed (enqueued to claimed)",
            ["stage"],
            buckets=QUEUE_WAIT_BUCKETS,
            registry=r,
        )
        self.outcomes = pc.Counter(
            PREFIX + "step_outcomes",
            "steps ended, by outcome (done, failed, dead, released, lease_lost)",
            ["stage", "outcome"],
            registry=r,
        )
        self.in_flight = pc.Gauge(
            PREFIX + "steps_in_flight", "steps this worker is running now", ["stage"], registry=r
        )
        self.model_load = pc.Histogram(
            PREFIX + "model_load_seconds",
            "time of one model load",
            ["model"],
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.model_resident = pc.Gauge(
            PREFIX + "model_resident", "1 while the model is resident", ["model"], registry=r
        )
        self.audio = pc.Counter(
            PREFIX + "audio_seconds_processed", "seconds of audio transcribed", registry=r
        )
        self.jobs_completed = pc.Counter(
            PREFIX + "jobs_completed",
            "jobs this worker moved to a terminal status",
            ["status"],
            registry=r,
        )
        self.model_swaps = pc.Counter(
            PREFIX + "model_swaps",
            "models unloaded to make room for another on the same device",
            ["from", "to"],
            registry=r,
        )
        self.device_tenants = pc.Gauge(
            PREFIX + "device_tenant",
            "1 while the model (tenant) is resident on the device",
            ["device", "tenant"],
            registry=r,
        )
        self.llm_tokens = pc.Counter(
            PREFIX + "llm_tokens",
            "LLM tokens, by backend, model and kind (prompt, completion)",
            ["backend", "model", "kind"],
            registry=r,
        )
        self.llm_cost = pc.Counter(
            PREFIX + "llm_cost",
            "LLM cost in the unit of llm.cost_per_1k_*_tokens, by backend and model",
            ["backend", "model"],
            registry=r,
        )
        self.llm_calls = pc.Counter(
            PREFIX + "llm_calls",
            "LLM replies, by backend and model",
            ["backend", "model"],
            registry=r,
        )
        self.heartbeat_ts = pc.Gauge(
            PREFIX + "worker_heartbeat_timestamp_seconds",
            "unix time of this worker's last heartbeat",
            registry=r,
        )
        r.register(ProcessInfoCollector(data_dir))
        # Every known label value starts at 0, so rate() and absent() work from the start.
        for pool in pools:
            self.claim_latency.labels(pool)
        for stage in stages:
            self.stage_duration.labels(stage)
            self.queue_wait.labels(stage)
            self.in_flight.labels(stage)
            for outcome in OUTCOMES:
                self.outcomes.labels(stage, outcome)
        for status in sorted(JOB_TERMINAL):
            self.jobs_completed.labels(status.value)

    def claim(self, pool: str, seconds: float) -> None:
        self.claim_latency.labels(pool).observe(seconds)

    def step_started(self, stage: str) -> None:
        self.in_flight.labels(stage).inc()

    def step_queue_wait(self, stage: str, seconds: float) -> None:
        self.queue_wait.labels(stage).observe(seconds)

    def step_finished(self, stage: str, seconds: float, outcome: str) -> None:
        self.in_flight.labels(stage).dec()
        self.stage_duration.labels(stage).observe(seconds)
        self.outcomes.labels(stage, ENGINE_OUTCOME.get(outcome, outcome)).inc()

    def step_released(self, stage: str) -> None:
        self.outcomes.labels(stage, "released").inc()

    def job_completed(self, status: str) -> None:
        self.jobs_completed.labels(status).inc()

    def model_loaded(self, model: str, seconds: float) -> None:
        self.model_load.labels(model).observe(seconds)
        self.model_resident.labels(model).set(1)

    def model_unloaded(self, model: str) -> None:
        self.model_resident.labels(model).set(0)

    def audio_processed(self, seconds: float) -> None:
        if seconds > 0:
            self.audio.inc(seconds)

    def model_swapped(self, evicted: str, loaded: str) -> None:
        self.model_swaps.labels(evicted, loaded).inc()

    def device_tenant(self, device: str, model: str, resident: bool) -> None:
        self.device_tenants.labels(device, model).set(1 if resident else 0)

    def llm_call(
        self, backend: str, model: str, prompt_tokens: int, completion_tokens: int, cost: float
    ) -> None:
        self.llm_calls.labels(backend, model).inc()
        self.llm_tokens.labels(backend, model, "prompt").inc(max(prompt_tokens, 0))
        self.llm_tokens.labels(backend, model, "completion").inc(max(completion_tokens, 0))
        self.llm_cost.labels(backend, model).inc(max(cost, 0.0))

    def heartbeat(self, unix_time: float) -> None:
        self.heartbeat_ts.set(unix_time)

    def exposition(self) -> tuple[bytes, str]:
        pc = prometheus("worker metrics")
        return pc.generate_latest(self.registry), pc.CONTENT_TYPE_LATEST


# ----------------------------------------------------------------------------- API


class ApiMetrics:
    """The API process's series: HTTP requests, jobs accepted, the fleet gauges, build
    info and disk.

    With ``PROMETHEUS_MULTIPROC_DIR`` set (``podmill serve --workers N`` sets it), the
    counters and histograms live in files shared by the server processes and every
    scrape, whichever process answers it, adds them all up; the fleet gauges come from
    the database and are the same in every process.
    """

    def __init__(self, data_dir: Path, fleet: Any) -> None:
        pc = prometheus("podmill serve /metrics")
        self.registry = pc.CollectorRegistry()
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.http_duration = pc.Histogram(
            PREFIX + "http_request_duration_seconds",
            "API request duration by route template",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.submitted = pc.Counter(
            PREFIX + "jobs_submitted",
            "jobs submitted through the API",
            ["via"],
            registry=self.registry,
        )
        self.submitted.labels("api")
        self.collectors = [ProcessInfoCollector(data_dir), FleetCollector(fleet)]
        if not self.multiprocess:
            for collector in self.collectors:
                self.registry.register(collector)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_duration.labels(method, route, str(status)).observe(seconds)

    def job_submitted(self, via: str = "api") -> None:
        self.submitted.labels(via).inc()

    def exposition(self) -> tuple[bytes, str]:
        pc = prometheus("podmill serve /metrics")
        registry = self.registry
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = pc.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            for collector in self.collectors:
                registry.register(collector)
        return pc.generate_latest(registry), pc.CONTENT_TYPE_LATEST
