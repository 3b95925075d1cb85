"""Prometheus config and alert rules: scrape targets are the compose services on the ports
they listen on, the rules are well-formed and use only contract series, and — when
promtool is installed (Debian package ``prometheus``, scripts/test installs it) — the
config and rules pass ``promtool check`` and the rule unit tests (synthetic series → the
alert fires, or must not) pass, while a rule with a changed threshold fails them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from deploy_contract import (
    PROMETHEUS_DIR,
    REQUIRED_ALERTS,
    contract_problems,
    flag_value,
    interpolate,
    load_compose,
    parse_volume,
    promtool,
)

CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
needs_promtool = pytest.mark.skipif(
    promtool() is None, reason="promtool not installed (Debian package prometheus)"
)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict]:
    return [rule for group in load(ALERTS)["groups"] for rule in group["rules"]]


def listening_port(service: dict) -> int | None:
    """The port a podmill service serves HTTP on, from its command."""
    command = service.get("command") or []
    port = flag_value(command, "--metrics-port") or flag_value(command, "--port")
    return int(port) if port is not None else None


def scrape_targets(config: dict) -> dict[str, set[tuple[str, int]]]:
    """job_name → {(host, port)} from static and DNS service discovery configs."""
    targets: dict[str, set[tuple[str, int]]] = {}
    for job in config["scrape_configs"]:
        found = targets.setdefault(job["job_name"], set())
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                found.add((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            assert dns.get("type", "SRV") == "A", "A records need a port; SRV is not used here"
            found |= {(name, int(dns["port"])) for name in dns["names"]}
    return targets


def test_every_podmill_http_endpoint_is_scraped_at_the_port_it_listens_on() -> None:
    services = load_compose()["services"]
    targets = scrape_targets(load(CONFIG))
    podmill_targets = {t for job, ts in targets.items() if job.startswith("podmill") for t in ts}
    for host, port in podmill_targets:
        assert host in services, f"scrape target {host}:{port} is no compose service"
        assert listening_port(services[host]) == port, f"{host} does not listen on {port}"
    serving = {name for name, svc in services.items() if listening_port(svc) is not None}
    assert serving == {host for host, _ in podmill_targets}, "a podmill endpoint is not scraped"
    assert {"api", "worker-asr", "worker-cpu"} <= serving


def test_alerts_name_only_scrape_jobs_that_exist() -> None:
    jobs = {job["job_name"] for job in load(CONFIG)["scrape_configs"]}
    for rule in alert_rules():
        for job in re.findall(r'job\s*=\s*"([^"]+)"', rule["expr"]):
            assert job in jobs, f"{rule['alert']} selects job {job!r}, which is never scraped"


def test_prometheus_service_mounts_this_config_and_its_rules() -> None:
    service = load_compose()["services"]["prometheus"]
    mounts = {target: source for source, target, _ in map(parse_volume, service["volumes"])}
    config_flag = next(a for a in service["command"] if a.startswith("--config.file="))
    in_container = Path(config_flag.split("=", 1)[1])
    host_dir = (CONFIG.parents[2] / mounts[str(in_container.parent)]).resolve()
    assert host_dir / in_container.name == CONFIG.resolve()
    for rule_file in load(CONFIG)["rule_files"]:
        assert (CONFIG.parent / rule_file).is_file(), f"rule file {rule_file} missing"
    assert interpolate(service["ports"][0]).split(":")[-1] == "9090"


def test_alert_rules_are_well_formed() -> None:
    """The schema check, run with or without promtool."""
    groups = load(ALERTS)["groups"]
    assert groups and all(g["name"] and g["rules"] for g in groups)
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "alert names must be unique"
    assert set(REQUIRED_ALERTS) <= set(names)
    for rule in alert_rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert DURATION.match(rule.get("for", "0s")), f"{rule['alert']}: bad for {rule['for']}"
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        annotations = rule["annotations"]
        assert len(annotations["summary"]) > 15 and len(annotations["description"]) > 60
        assert rule["alert"].startswith("Podmill")


def test_alert_rules_use_only_contract_series_and_labels() -> None:
    problems = [f"{r['alert']}: {p}" for r in alert_rules() for p in contract_problems(r["expr"])]
    assert not problems, "\n".join(problems)


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    fired = {
        case["alertname"]
        for test in load(ALERT_TESTS)["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    quiet = {
        case["alertname"]
        for test in load(ALERT_TESTS)["tests"]
        for case in test["alert_rule_test"]
        if not case.get("exp_alerts")
    }
    names = {rule["alert"] for rule in alert_rules()}
    assert names <= fired, f"no test makes these fire: {sorted(names - fired)}"
    assert names <= quiet, f"no test checks these stay quiet: {sorted(names - quiet)}"


def run_promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@needs_promtool
def test_promtool_accepts_the_config_and_rules(tmp_path: Path) -> None:
    # promtool opens the metrics token's file: point the secret's path at one that exists
    token = tmp_path / "metrics_token"
    token.write_text("s3cret-token")
    text = CONFIG.read_text()
    assert text.count("/run/secrets/metrics_token") == 2
    (tmp_path / CONFIG.name).write_text(text.replace("/run/secrets/metrics_token", str(token)))
    shutil.copy(ALERTS, tmp_path)
    for args, cwd in (
        (("check", "config", CONFIG.name), tmp_path),
        (("check", "rules", ALERTS.name), PROMETHEUS_DIR),
    ):
        result = run_promtool(*args, cwd=cwd)
        assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_alert_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", ALERT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


# A changed threshold or comparison in a rule must break its unit tests.
CHANGED_RULES = {
    "PodmillQueueBacklog": ("> 100", "> 1000"),
    "PodmillDeadStepsGrowing": ("> 0", "< 0"),
    "PodmillDiskLow": ("< 1073741824", "< 107374182"),
}


@needs_promtool
def test_alert_unit_tests_catch_a_changed_rule(tmp_path: Path) -> None:
    runs = {}
    for alert, (old, new) in CHANGED_RULES.items():
        rules = load(ALERTS)
        (rule,) = [r for g in rules["groups"] for r in g["rules"] if r["alert"] == alert]
        assert old in rule["expr"]
        rule["expr"] = rule["expr"].replace(old, new)
        workdir = tmp_path / alert
        workdir.mkdir()
        (workdir / ALERTS.name).write_text(yaml.safe_dump(rules, sort_keys=False))
        shutil.copy(ALERT_TESTS, workdir)
        # Concurrently: each promtool run takes about a second.
        runs[alert] = subprocess.Popen(
            [promtool(), "test", "rules", ALERT_TESTS.name],
            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    for alert, run in runs.items():
        output, _ = run.communicate(timeout=60)
        assert run.returncode != 0, f"changing {alert} did not fail its tests"
        assert f"alertname: {alert}," in output, output


def test_every_alert_has_a_runbook_row_in_docs_deploy() -> None:
    docs = (PROMETHEUS_DIR.parents[1] / "docs" / "deploy.md").read_text()
    rows = set(re.findall(r"^\| \*\*(Podmill\w+)\*\* \((warning|critical)\)", docs, re.M))
    rules = {(rule["alert"], rule["labels"]["severity"]) for rule in alert_rules()}
    assert rules == rows, f"docs/deploy.md alert table differs: {rules ^ rows}"
