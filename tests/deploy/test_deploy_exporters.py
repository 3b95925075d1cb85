"""The dashboard and alert rules against what podmill really exports: the exposition text
of the API's and a worker's registries (podmill.obs.metrics, with the fleet gauges read
from a real, migrated SQLite database) must contain every series and label the
deployment queries, and the contract table in deploy_contract.py must match them."""

from __future__ import annotations

import json

import pytest
import yaml
from deploy_contract import (
    BUILTIN,
    CONTRACT,
    DASHBOARD_FILE,
    HISTOGRAM_SUFFIXES,
    PROMETHEUS_DIR,
    expr_refs,
)

parser = pytest.importorskip("prometheus_client.parser", reason="needs the metrics extra")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Sample name → label names, from one scrape of an API and one of a worker."""
    from podmill.obs.metrics import ApiMetrics, WorkerMetrics
    from podmill.pipeline.dag import STAGE_NAMES
    from podmill.storage.db import make_engine, upgrade
    from podmill.storage.fleet import FleetCache

    tmp = tmp_path_factory.mktemp("exporters")
    url = f"sqlite:///{tmp / 'podmill.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        api = ApiMetrics(tmp, FleetCache(engine, stages=STAGE_NAMES, stale_seconds=60))
        api.observe_request("GET", "/jobs/{job_id}", 200, 0.01)
        api.job_submitted()
        worker = WorkerMetrics(tmp, pools=["asr"], stages=STAGE_NAMES)
        worker.model_loaded("whisper-tiny.en", 1.5)
        worker.heartbeat(1_700_000_000.0)
        worker.audio_processed(12.0)
        texts = [api.exposition()[0].decode(), worker.exposition()[0].decode()]
    finally:
        engine.dispose()
    samples: dict[str, set[str]] = {}
    for text in texts:
        for family in parser.text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def deployment_queries() -> list[tuple[str, str]]:
    found = []
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r}", target["expr"]))
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            found.append((f"alert {rule['alert']}", rule["expr"]))
    return found


def test_every_series_the_deployment_queries_is_exported(exported: dict[str, set[str]]) -> None:
    problems = []
    for where, expr in deployment_queries():
        refs = expr_refs(expr)
        for name in refs.metrics - set(BUILTIN):
            if name not in exported:
                problems.append(f"{where}: {name} is not exported by podmill")
                continue
            missing = refs.matcher_labels.get(name, set()) - exported[name] - {"job", "instance"}
            missing -= {"role"}  # added by Prometheus relabelling, not the exporter
            if missing:
                problems.append(f"{where}: {name} is exported without {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_the_contract_table_matches_the_exporters(exported: dict[str, set[str]]) -> None:
    for name, metric in CONTRACT.items():
        if metric.kind == "histogram":
            for suffix in HISTOGRAM_SUFFIXES:
                extra = {"le"} if suffix == "_bucket" else set()
                assert exported.get(name + suffix) == metric.labels | extra, name + suffix
        else:
            assert exported.get(name) == metric.labels, f"{name}: {exported.get(name)}"


def test_the_exporter_check_would_notice_a_renamed_series(exported: dict[str, set[str]]) -> None:
    renamed = {
        k.replace("podmill_queue_depth", "podmill_queue_size"): v for k, v in exported.items()
    }
    missing = [
        name
        for _, expr in deployment_queries()
        for name in expr_refs(expr).metrics - set(BUILTIN)
        if name not in renamed
    ]
    assert "podmill_queue_depth" in missing
