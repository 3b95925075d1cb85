#!/usr/bin/env python3
"""Run docker-compose.yml's podmill roles as local processes and check them end to end.

For machines without a Docker engine (where the compose file was written). It takes the
commands and environment of ``migrate``, ``api``, ``worker-asr``, ``worker-cpu`` and
``poller`` from docker-compose.yml, runs them against ``--db`` (an empty Postgres
database) with free local ports, then:

1. probes each HTTP role with ``deploy/healthcheck.py`` (the image's HEALTHCHECK);
2. creates a tenant and key, uploads audio through ``POST /jobs`` and waits for it;
3. starts a local ``prometheus`` (Debian package ``prometheus``) with the alert rules,
   scraping the API and both workers under the compose job names, submits a second job,
   and runs every dashboard query against it: each must return data (except the
   firing-alerts table) and every rule must evaluate without error;
4. lints each ``/metrics`` with ``promtool check metrics``.

Usage (from the repository root, with the dev venv)::

    createdb -h 127.0.0.1 -U postgres deploysmoke
    .venv/bin/python deploy/smoke_without_docker.py \\
        --db postgresql+psycopg://postgres@127.0.0.1:5432/deploysmoke

Exit status 0 when every check passed. Takes one to three minutes (two short jobs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
AUDIO = (REPO / "src/podmill/demo/jfk.flac", REPO / "src/podmill/demo/sonnet001.mp3")
ROLES = ("api", "worker-asr", "worker-cpu", "poller")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR:-default}`` and ``${VAR:?error}`` from ``env``: a variable's value,
    else its default; a required one that is missing stops the smoke with its error."""

    def one(m: re.Match[str]) -> str:
        name, kind, text = m.group(1), m.group(2) or "", m.group(3) or ""
        if env.get(name):
            return env[name]
        if kind.endswith("?"):
            raise SystemExit(f"docker-compose.yml needs {name}: {text}")
        return text

    return re.sub(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}", one, value)


class Stack:
    """The compose roles as child processes on free ports."""

    def __init__(self, db: str, work: Path) -> None:
        compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
        self.services = compose["services"]
        self.work = work
        self.env = dict(os.environ)
        # what .env holds in a deployment; PODMILL_DB is replaced by --db below
        self.metrics_token = secrets.token_hex(16)
        dotenv = {"POSTGRES_PASSWORD": "unused", "PODMILL_METRICS_TOKEN": self.metrics_token}
        for key, value in self.services["api"]["environment"].items():
            self.env[key] = interpolate(str(value), {**dotenv, **os.environ})
        self.env["PODMILL_DB"] = db
        self.env["PODMILL_DATA_DIR"] = str(work / "data")  # the compose data volume
        self.podmill = str(Path(sys.executable).parent / "podmill")
        self.ports = {"api": free_port(), "worker-asr": free_port(), "worker-cpu": free_port()}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def command(self, role: str) -> list[str]:
        words = list(self.services[role]["command"])
        for flag in ("--metrics-port", "--port"):
            if flag in words:
                words[words.index(flag) + 1] = str(self.ports[role])
        if "--host" in words:
            words[words.index("--host") + 1] = "127.0.0.1"
        return [self.podmill, *words]

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [self.podmill, *args], env=self.env, capture_output=True, text=True, check=True
        )
        return done.stdout

    def start(self, name: str, argv: list[str]) -> None:
        log = (self.work / f"{name}.log").open("w")
        self.procs[name] = subprocess.Popen(
            argv, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def stop(self) -> dict[str, int | None]:
        for proc in self.procs.values():
            proc.terminate()
        codes = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = None
        return codes


def wait_healthy(url: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while True:
        probe = subprocess.run(
            [sys.executable, str(REPO / "deploy/healthcheck.py"), url],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 or time.monotonic() > deadline:
            return probe.stdout.strip()
        time.sleep(1)


def run_job(client: httpx.Client, audio: Path) -> dict[str, Any]:
    with audio.open("rb") as fh:
        answer = client.post("/jobs", files={"file": (audio.name, fh, "application/octet-stream")})
    answer.raise_for_status()
    job_id = answer.json()["job"]["id"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(2)
    raise SystemExit(f"job {job_id} did not finish in 10 minutes")


def prometheus_config(stack: Stack, token_file: Path) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml's jobs with local static targets (no compose DNS),
    sending the metrics token from ``token_file`` as compose's Prometheus does."""
    authorization = {"type": "Bearer", "credentials_file": str(token_file)}
    return {
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "rule_files": [str(REPO / "deploy/prometheus/alerts.yml")],
        "scrape_configs": [
            {
                "job_name": "podmill-api",
                "authorization": authorization,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{stack.ports['api']}"], "labels": {"role": "api"}}
                ],
            },
            {
                "job_name": "podmill-workers",
                "authorization": authorization,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{stack.ports[r]}"], "labels": {"role": r}}
                    for r in ("worker-asr", "worker-cpu")
                ],
            },
        ],
    }


def check_dashboard(prom: str) -> list[str]:
    problems = []
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/podmill.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            query = target["expr"].replace("$__rate_interval", "1m").replace("$stage", ".*")
            answer = httpx.get(f"{prom}/api/v1/query", params={"query": query}).json()
            if answer["status"] != "success":
                problems.append(f"{panel['title']}: {answer.get('error')}")
            elif not answer["data"]["result"] and "ALERTS" not in query:
                problems.append(f"{panel['title']}: no data for {query}")
    rules = httpx.get(f"{prom}/api/v1/rules").json()["data"]["groups"]
    for group in rules:
        for rule in group["rules"]:
            if rule["health"] != "ok":
                problems.append(f"rule {rule['name']}: {rule.get('lastError')}")
    return problems


def main() -> int:
    """Entry point: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="URL of an empty Postgres database")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    for tool in ("promtool", "prometheus"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install prometheus")
    work = Path(tempfile.mkdtemp(prefix="podmill-smoke-"))
    stack = Stack(args.db, work)
    problems: list[str] = []
    started = time.monotonic()
    migrate = subprocess.run(stack.command("migrate"), env=stack.env, capture_output=True)
    if migrate.returncode != 0:
        raise SystemExit(f"migrate failed: {migrate.stderr.decode()[-2000:]}")
    try:
        for role in ROLES:
            stack.start(role, stack.command(role))
        for role in ("api", "worker-asr", "worker-cpu"):
            said = wait_healthy(f"http://127.0.0.1:{stack.ports[role]}/health")
            print(f"{role}: {said}")
            problems += [] if said.startswith("ok:") else [f"{role} not healthy: {said}"]
        stack.run("tenants", "create", "smoke", "--admin")
        key = json.loads(stack.run("keys", "create", "smoke", "--json").splitlines()[-1])["key"]
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{stack.ports['api']}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        job = run_job(client, AUDIO[0])
        print(f"job 1: {job['status']}; stages by worker:",
              {s: v["worker_id"] for s, v in job["steps"].items()})  # fmt: skip
        problems += [] if job["status"] == "done" else [f"job 1 {job['status']}: {job['error']}"]
        prom_port = free_port()
        (work / "metrics_token").write_text(stack.metrics_token)
        config = prometheus_config(stack, work / "metrics_token")
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        stack.start(
            "prometheus",
            [
                "prometheus",
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
        )
        time.sleep(6)
        job = run_job(client, AUDIO[1])  # rates move while Prometheus watches
        print(f"job 2: {job['status']}")
        time.sleep(6)
        dashboard_problems = check_dashboard(f"http://127.0.0.1:{prom_port}")
        print(f"dashboard queries and rules: {len(dashboard_problems)} problem(s)")
        problems += dashboard_problems
        for role in ("api", "worker-asr", "worker-cpu"):
            text = httpx.get(
                f"http://127.0.0.1:{stack.ports[role]}/metrics",
                headers={"Authorization": f"Bearer {stack.metrics_token}"},
            ).text
            lint = subprocess.run(
                ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
            )
            if lint.returncode != 0:
                problems.append(f"{role} /metrics: {lint.stdout}{lint.stderr}")
    finally:
        codes = stack.stop()
        print("exit codes after SIGTERM:", codes)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs and data: {work}")
    print(f"{len(problems)} problem(s) in {time.monotonic() - started:.0f} s")
    for problem in problems:
        print(" -", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
