"""docker-compose.yml (and the GPU override), checked without a Docker engine: it parses,
names every service the deployment needs, wires dependencies, volumes and health checks
consistently, runs nothing as root, and gives each podmill role a command the real
``podmill`` CLI accepts with settings podmill really reads."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
import typer
import yaml
from deploy_contract import (
    COMPOSE_FILE,
    COMPOSE_GPU_FILE,
    DOCKERFILE,
    DOTENV_EXAMPLE,
    PODMILL_SERVICES,
    REPO,
    REQUIRED_SERVICES,
    REQUIRED_VARIABLE,
    MissingVariable,
    flag_value,
    flag_values,
    interpolate,
    load_compose,
    parse_volume,
)

from podmill.cli import app
from podmill.pipeline.dag import PROFILES, STAGE_NAMES, STAGES
from podmill.settings import load_settings

# What an operator's .env holds (.env.example names the variables).
DOTENV = {
    "POSTGRES_PASSWORD": "s3cret-db",
    "GRAFANA_ADMIN_PASSWORD": "s3cret-grafana",
    "PODMILL_METRICS_TOKEN": "s3cret-token",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def cli_options(words: list[str]) -> set[str]:
    """Every option (``--x`` and ``--no-x`` forms) of the command ``podmill WORDS``."""
    command = typer.main.get_command(app)
    ctx = typer.Context(command)
    while hasattr(command, "list_commands"):  # a group: descend to the named subcommand
        sub = command.get_command(ctx, words[0]) if words else None
        assert sub is not None, f"podmill has no command {' '.join(words)!r}"
        command, words = sub, words[1:]
    assert not words, f"podmill {command.name} takes no subcommand {words}"
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


COMPOSE_SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"


def compose_schema_errors(document: dict) -> list[str]:
    """The Compose Specification's JSON schema (vendored from check-jsonschema 0.39.0,
    Apache-2.0, schemas/LICENSE.compose-spec): what ``docker compose config`` checks."""
    validator = jsonschema.Draft202012Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


@pytest.mark.parametrize("path", [COMPOSE_FILE, COMPOSE_GPU_FILE], ids=lambda p: p.name)
def test_compose_files_follow_the_compose_specification(path: Path) -> None:
    errors = compose_schema_errors(load_compose(path))
    assert not errors, "\n".join(errors)


def test_the_schema_check_catches_a_misspelt_key_and_a_bad_condition(compose: dict) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["healthcheck"]["intervall"] = "30s"
    broken["services"]["poller"]["depends_on"] = {"migrate": {"condition": "service_done"}}
    errors = compose_schema_errors(broken)
    assert any("intervall" in e for e in errors)
    assert any(e.startswith("services/poller/depends_on") for e in errors)


def test_every_service_the_deployment_needs_exists(services: dict) -> None:
    assert set(REQUIRED_SERVICES) <= set(services)


def test_dependencies_exist_and_wait_for_health_and_migrations(services: dict) -> None:
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on with conditions, not a list"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = spec["condition"]
            assert condition in {
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            }
            if condition == "service_healthy":
                assert services[target].get("healthcheck", {}).get("test"), (
                    f"{name} waits for {target} to be healthy, but it has no healthcheck"
                )
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in set(PODMILL_SERVICES) - {"migrate"}:
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


def test_named_volumes_are_declared_and_bind_mounts_exist(compose: dict, services: dict) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services.items():
        for spec in service.get("volumes", []):
            source, target, mode = parse_volume(spec)
            assert target.startswith("/") and mode in {"ro", "rw"}, f"{name}: {spec}"
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts missing path {source}"
                assert mode == "ro", f"{name}: config mounts should be read-only ({spec})"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared, f"declared but unused volumes: {declared - used}"


def test_podmill_roles_share_image_database_and_data_volume(services: dict) -> None:
    roles = [services[name] for name in PODMILL_SERVICES]
    assert len({r["image"] for r in roles}) == 1
    for name, role in zip(PODMILL_SERVICES, roles, strict=True):
        assert (REPO / role["build"]["context"] / "Dockerfile").resolve() == DOCKERFILE
        env = role["environment"]
        data_dir = env["PODMILL_DATA_DIR"]
        mounts = {t: s for s, t, _ in map(parse_volume, role["volumes"])}
        assert mounts.get(data_dir) == "podmill-data", f"{name}: {data_dir} is not the data volume"
        assert "@postgres:5432/" in interpolate(env["PODMILL_DB"], DOTENV), name
        assert env["PODMILL_LOG_FORMAT"] == "json", name


def test_podmill_environment_is_read_by_podmill_settings(
    services: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Every PODMILL_* variable must be a real setting: load_settings rejects unknown keys.
    monkeypatch.chdir(tmp_path)  # no podmill.toml here
    for key in [k for k in os.environ if k.startswith("PODMILL_")]:
        monkeypatch.delenv(key)
    env = {k: interpolate(str(v), DOTENV) for k, v in services["worker-asr"]["environment"].items()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings, provenance = load_settings()
    assert settings.db == "postgresql+psycopg://podmill:s3cret-db@postgres:5432/podmill"
    assert settings.server.metrics_token.get_secret_value() == "s3cret-token"
    assert str(settings.data_dir) == "/data"
    assert settings.log_format == "json"
    assert settings.log_level == "INFO"
    assert provenance["db"] == "env PODMILL_DB"


def test_each_role_runs_the_right_podmill_command(services: dict) -> None:
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["poller"]["command"][0] == "scheduler"
    api = services["api"]["command"]
    assert api[0] == "serve" and flag_value(api, "--host") == "0.0.0.0"
    assert "--no-background" in api, "the poller service polls feeds; the API must not too"
    assert flag_value(api, "--port") == "8000"

    def pools(name: str) -> dict[str, int]:
        command = services[name]["command"]
        assert command[0] == "worker"
        found = {}
        for spec in flag_values(command, "--pool"):
            pool, count = spec.split("=")
            assert pool in PROFILES or pool in STAGE_NAMES, f"{name}: unknown pool {pool}"
            found[pool] = int(count)
            assert found[pool] >= 1
        return found

    asr, cpu = pools("worker-asr"), pools("worker-cpu")
    assert set(asr) == {"asr"}
    assert "asr" not in cpu and "transcribe" not in cpu
    # Between them the two workers run every stage (extractive topics: no llm pool needed).
    covered = {s.name for s in STAGES if s.profile in set(asr) | set(cpu)}
    covered |= set(asr) | set(cpu)
    assert set(STAGE_NAMES) <= covered, f"no worker runs {set(STAGE_NAMES) - covered}"


def test_commands_use_only_flags_the_cli_has(services: dict) -> None:
    for name in PODMILL_SERVICES:
        words = list(services[name]["command"])
        first_flag = next((i for i, w in enumerate(words) if w.startswith("--")), len(words))
        options = cli_options(words[:first_flag])
        for word in words[first_flag:]:
            if word.startswith("--"):
                assert word.split("=")[0] in options, f"{name}: podmill has no {word}"


def test_workers_have_health_on_their_metrics_port_and_time_to_drain(services: dict) -> None:
    for name in ("worker-asr", "worker-cpu"):
        service = services[name]
        command = service["command"]
        port = flag_value(command, "--metrics-port")
        assert port and service["expose"] == [port]
        assert service["healthcheck"]["test"][-1] == f"http://127.0.0.1:{port}/health"
        grace = float(flag_value(command, "--grace") or 30)
        stop = service["stop_grace_period"]
        assert stop.endswith("s") and float(stop[:-1]) > grace, (
            f"{name}: stop_grace_period {stop} must exceed --grace {grace}, or Docker kills "
            "steps that were still allowed to finish"
        )
    api = services["api"]
    assert api["healthcheck"]["test"][-1] == "http://127.0.0.1:8000/health"


def test_healthchecks_and_restart_policies(services: dict) -> None:
    for name, service in services.items():
        check = service.get("healthcheck", {})
        if name in {"migrate", "poller"}:
            # No HTTP to probe: the image's default (the API URL) would mark them unhealthy.
            assert check == {"disable": True}, name
        else:
            assert check.get("test"), f"{name} has no healthcheck"
        expected = "no" if name == "migrate" else "unless-stopped"
        assert service["restart"] == expected, name


def test_no_service_runs_as_root(services: dict) -> None:
    for name, service in services.items():
        user = str(service.get("user", "")).split(":")[0]
        assert user and user not in {"root", "0"}, f"{name} runs as root; set user:"
    assert services["api"]["user"] == "10001:10001"  # the image's podmill user


def test_published_ports_are_unique_and_only_for_entry_points(services: dict) -> None:
    published = {}
    for name, service in services.items():
        for spec in service.get("ports", []):
            host_port = interpolate(spec).split(":")[-2]
            assert host_port not in published, f"{name} and {published[host_port]} clash"
            published[host_port] = name
    assert set(published.values()) == {"api", "prometheus", "grafana", "jaeger"}


def test_gpu_override_reserves_a_gpu_for_the_asr_worker(services: dict) -> None:
    override = load_compose(COMPOSE_GPU_FILE)
    assert set(override["services"]) == {"worker-asr"}
    worker = override["services"]["worker-asr"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert worker["build"]["args"]["GPU"] == "1"
    assert "ARG GPU=0" in DOCKERFILE.read_text()
    assert worker["image"] != services["worker-asr"]["image"], "GPU image must not shadow CPU"


# ------------------------------------------------------------------ safe defaults


def published_ports(compose: dict) -> list[tuple[str, str]]:
    """(service, short-syntax port spec) of every published port in a compose document."""
    found = []
    for name, service in compose["services"].items():
        for spec in service.get("ports", []):
            assert isinstance(spec, str), f"{name}: use HOST_IP:HOST_PORT:PORT, not {spec!r}"
            found.append((name, spec))
    return found


def ports_on_every_address(compose: dict) -> list[str]:
    """Published ports that a fresh checkout opens beyond 127.0.0.1."""
    return [
        f"{name} publishes {spec!r}"
        for name, spec in published_ports(compose)
        if interpolate(spec).split(":")[0] != "127.0.0.1" or len(spec.split(":")) < 3
    ]


@pytest.mark.parametrize("path", [COMPOSE_FILE, COMPOSE_GPU_FILE], ids=lambda p: p.name)
def test_every_published_port_listens_on_loopback_by_default(path: Path) -> None:
    assert not ports_on_every_address(load_compose(path))


def test_the_loopback_check_catches_a_port_on_every_address(compose: dict) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["grafana"]["ports"] = ["3000:3000"]
    broken["services"]["postgres"]["ports"] = ["${DB_BIND:-0.0.0.0}:5432:5432"]
    assert len(ports_on_every_address(broken)) == 2


def test_only_the_api_and_grafana_may_be_opened_and_prometheus_never(services: dict) -> None:
    opened = {}
    for name, spec in published_ports(load_compose()):
        parts = interpolate(spec, {"PODMILL_BIND": "0.0.0.0", "GRAFANA_BIND": "0.0.0.0"})
        opened[name] = parts.split(":")[0]
    assert opened == {
        "api": "0.0.0.0",
        "grafana": "0.0.0.0",
        "prometheus": "127.0.0.1",
        "jaeger": "127.0.0.1",
    }
    for name in ("postgres", *PODMILL_SERVICES):
        if name != "api":
            assert "ports" not in services[name], f"{name} must not be published"


def secret_settings(compose: dict) -> list[tuple[str, str, str]]:
    """(service, variable, value) of every environment entry that holds a secret."""
    found = []
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("PASSWORD", "TOKEN", "SECRET")) or key == "PODMILL_DB":
                found.append((name, key, str(value)))
    return found


@pytest.mark.parametrize("path", [COMPOSE_FILE, COMPOSE_GPU_FILE], ids=lambda p: p.name)
def test_no_password_or_token_has_a_default(path: Path) -> None:
    for name, key, value in secret_settings(load_compose(path)):
        assert REQUIRED_VARIABLE.search(value), (
            f"{name}: {key}={value!r} must come from .env as ${{VAR:?...}}, with no default"
        )
        with pytest.raises(MissingVariable):
            interpolate(value)  # a fresh checkout without .env does not start
    text = path.read_text()
    assert not re.search(r"(PASSWORD|TOKEN)\w*:?-", text), f"{path.name}: a secret has a default"
    for literal in ("podmill:podmill@", "PASSWORD: podmill", "PASSWORD: admin"):
        assert literal not in text, f"{path.name}: literal password {literal!r}"


def test_env_example_names_every_required_variable_without_a_value() -> None:
    required = set(REQUIRED_VARIABLE.findall(COMPOSE_FILE.read_text()))
    assert required == set(DOTENV), "update DOTENV in this test with .env.example"
    example = {}
    for line in DOTENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            example[key.strip()] = value.strip()
    assert set(example) == required, f".env.example differs: {set(example) ^ required}"
    assert not any(example.values()), ".env.example must not ship a usable password"
    assert ".env" in (REPO / ".gitignore").read_text().split()
    assert ".env" in (REPO / ".dockerignore").read_text().split()


def test_the_metrics_token_reaches_podmill_and_prometheus(compose: dict, services: dict) -> None:
    token = "${PODMILL_METRICS_TOKEN:?"
    for name in PODMILL_SERVICES:
        assert services[name]["environment"]["PODMILL_SERVER__METRICS_TOKEN"].startswith(token)
    (secret,) = services["prometheus"]["secrets"]
    assert compose["secrets"][secret] == {"environment": "PODMILL_METRICS_TOKEN"}
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        if job["job_name"].startswith("podmill"):
            assert job["authorization"] == {
                "type": "Bearer",
                "credentials_file": f"/run/secrets/{secret}",
            }, job["job_name"]


def test_jaeger_is_opt_in_and_the_podmill_roles_send_it_spans(services: dict) -> None:
    jaeger = services["jaeger"]
    assert jaeger["profiles"] == ["observability"]  # `--profile observability` only
    image, _, tag = jaeger["image"].partition(":")
    assert image == "jaegertracing/all-in-one" and tag[0].isdigit(), "pin the Jaeger tag"
    assert "4318" in [str(p) for p in jaeger["expose"]]  # OTLP/HTTP
    for name in PODMILL_SERVICES:
        env = services[name]["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318", name
        assert interpolate(env["PODMILL_TRACING__ENABLED"], {}) == "false", name  # off by default
        assert interpolate(env["PODMILL_TRACING__ENABLED"], {"PODMILL_TRACING": "true"}) == "true"
