"""The provisioned Grafana dashboard and datasource: they parse, every query uses only
series and labels of the metrics contract, the queries are valid PromQL, and the panels
cover what the issue asks for (pipeline overview, stage durations, queue depths, worker
health)."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from deploy_contract import (
    DASHBOARD_FILE,
    DEPLOY,
    contract_problems,
    expr_refs,
    load_compose,
    parse_volume,
    promtool,
    substitute_grafana_variables,
)

PROVISIONING = DEPLOY / "grafana" / "provisioning"


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD_FILE.read_text())


def panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out += panel.get("panels", [])  # collapsed rows nest their panels
    return out


def queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and query variable."""
    found = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            # label_values(metric, label): check it as a query of the metric grouped by label
            metric, label = (s.strip() for s in query.removeprefix("label_values(")[:-1].split(","))
            found.append((f"variable {var['name']!r}", f"count by ({label}) ({metric})"))
    return found


def test_dashboard_parses_with_unique_ids_and_a_grid_that_fits(dashboard: dict) -> None:
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, f"{panel['title']} leaves the grid"
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells


def test_every_query_uses_only_contract_series_and_labels(dashboard: dict) -> None:
    found = queries(dashboard)
    assert len(found) >= 20
    problems = [f"{where}: {p}" for where, expr in found for p in contract_problems(expr)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("original", "typo", "complaint"),
    [
        ("podmill_queue_depth", "podmill_queue_dept", "unknown metric 'podmill_queue_dept'"),
        ("_seconds_bucket{stage=", "_seconds_bucket{stag=", "has no label(s) ['stag']"),
        ("by (le, stage)", "by (le, stages)", "grouping by label(s) ['stages']"),
    ],
)
def test_a_typo_in_a_panel_query_is_caught(
    dashboard: dict, original: str, typo: str, complaint: str
) -> None:
    broken = copy.deepcopy(dashboard)
    changed = 0
    for panel in panels(broken):
        for target in panel.get("targets", []):
            if original in target["expr"]:
                target["expr"] = target["expr"].replace(original, typo)
                changed += 1
    assert changed
    problems = [p for _, expr in queries(broken) for p in contract_problems(expr)]
    assert any(complaint in p for p in problems), problems


def test_the_dashboard_covers_overview_queues_durations_and_worker_health(dashboard: dict) -> None:
    rows = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    assert {"Pipeline overview", "Queues", "Stage durations", "Worker health"} <= rows
    used = set().union(*(expr_refs(expr).metrics for _, expr in queries(dashboard)))
    for series in (
        "podmill_queue_depth",
        "podmill_stage_duration_seconds_bucket",
        "podmill_workers_alive",
        "podmill_worker_heartbeat_timestamp_seconds",
        "podmill_steps_dead",
        "podmill_jobs",
        "up",
    ):
        assert series in used, f"no panel shows {series}"


def test_panels_use_the_provisioned_datasource(dashboard: dict) -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    compose = load_compose()
    host_port = source["url"].removeprefix("http://")
    host, port = host_port.split(":")
    assert host in compose["services"], f"datasource URL names no compose service: {host}"
    assert any(p.endswith(f":{port}") for p in compose["services"][host].get("ports", []))
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"]


def test_the_dashboard_provider_points_at_the_mounted_dashboards() -> None:
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "podmill.yml").read_text())
    (provider,) = providers["providers"]
    grafana = load_compose()["services"]["grafana"]
    mounts = {target: source for source, target, _ in map(parse_volume, grafana["volumes"])}
    dashboards_dir = mounts[provider["options"]["path"]]
    assert (DEPLOY.parent / dashboards_dir).resolve() == DASHBOARD_FILE.parent.resolve()
    assert (DEPLOY.parent / mounts["/etc/grafana/provisioning"]).resolve() == PROVISIONING


@pytest.mark.skipif(promtool() is None, reason="promtool not installed (Debian package prometheus)")
def test_every_dashboard_query_is_valid_promql(dashboard: dict, tmp_path: Path) -> None:
    # promtool parses recording rules' expressions: one rule per panel query.
    rules = [
        {"record": f"dashboard:query_{i}", "expr": substitute_grafana_variables(expr)}
        for i, (_, expr) in enumerate(queries(dashboard))
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
