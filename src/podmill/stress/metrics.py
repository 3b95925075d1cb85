"""Prometheus scrapes at the start and end of a scenario, and per-stage aggregates of
the difference (series named in docs/observability.md).

- ``podmill_stage_duration_seconds{stage}`` (histogram, workers): steps run and their
  mean and estimated p95 during the scenario (bucket deltas, interpolated like
  PromQL's ``histogram_quantile``).
- ``podmill_step_outcomes_total{stage,outcome}`` (counter, workers): outcome deltas.
- ``podmill_queue_depth{stage}`` (gauge, API): the value at start and at end.

Counters and histograms are summed over every scraped source (the API and each worker
exporter); a source that answers 404 or not at all is recorded as unavailable and
left out, so the harness works before an exporter exists.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Labels
    value: float

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)


def parse_exposition(text: str) -> list[Sample]:
    """Samples of a Prometheus text exposition (comments and malformed lines skipped)."""
    samples = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, _, label_text, value = match.group(1), match.group(2), match.group(3), match.group(4)
        labels = tuple(
            sorted(
                (k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
                for k, v in _LABEL.findall(label_text or "")
            )
        )
        try:
            samples.append(Sample(name, labels, float(value)))
        except ValueError:
            continue
    return samples


def _totals(samples: Iterable[Sample], name: str) -> dict[Labels, float]:
    """Sum of ``name`` by label set, over every source."""
    out: dict[Labels, float] = {}
    for s in samples:
        if s.name == name:
            out[s.labels] = out.get(s.labels, 0.0) + s.value
    return out


def _delta(start: dict[Labels, float], end: dict[Labels, float]) -> dict[Labels, float]:
    """end − start per series; a series that went down was reset (a restarted worker):
    then its end value is all that is known to have happened."""
    out = {}
    for labels, value in end.items():
        before = start.get(labels, 0.0)
        out[labels] = value - before if value >= before else value
    return out


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile (0-1) from cumulative ``(upper_bound, count)`` buckets, linear
    within the bucket that holds it, as PromQL does; ``None`` without observations.
    Falling in the ``+Inf`` bucket gives the highest finite bound."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def stage_aggregates(start: list[Sample], end: list[Sample]) -> dict[str, dict[str, Any]]:
    """Per stage: steps run, mean and p95 seconds (from the duration histogram's
    deltas), outcome deltas, and queue depth at start and end. Stages absent from every
    scrape are absent here."""
    stages: dict[str, dict[str, Any]] = {}

    def entry(stage: str) -> dict[str, Any]:
        return stages.setdefault(stage, {})

    name = "podmill_stage_duration_seconds"
    counts = _delta(_totals(start, f"{name}_count"), _totals(end, f"{name}_count"))
    sums = _delta(_totals(start, f"{name}_sum"), _totals(end, f"{name}_sum"))
    buckets = _delta(_totals(start, f"{name}_bucket"), _totals(end, f"{name}_bucket"))
    by_stage: dict[str, list[tuple[float, float]]] = {}
    for labels, value in buckets.items():
        tags = dict(labels)
        if "stage" in tags and "le" in tags:
            by_stage.setdefault(tags["stage"], []).append((float(tags["le"]), value))
    for labels, count in counts.items():
        stage = dict(labels).get("stage")
        if stage is None:
            continue
        total = sums.get(labels, 0.0)
        p95 = histogram_quantile(0.95, by_stage.get(stage, []))
        entry(stage).update(
            {
                "steps": int(count),
                "mean_seconds": round(total / count, 3) if count else None,
                "p95_seconds_estimate": None if p95 is None else round(p95, 3),
            }
        )
    outcomes = _delta(
        _totals(start, "podmill_step_outcomes_total"), _totals(end, "podmill_step_outcomes_total")
    )
    for labels, value in outcomes.items():
        tags = dict(labels)
        if "stage" in tags and "outcome" in tags:
            entry(tags["stage"]).setdefault("outcomes", {})[tags["outcome"]] = int(value)
    for when, samples in (("start", start), ("end", end)):
        for labels, value in _totals(samples, "podmill_queue_depth").items():
            stage = dict(labels).get("stage")
            if stage is not None:
                entry(stage)[f"queue_depth_{when}"] = int(value)
    return dict(sorted(stages.items()))
