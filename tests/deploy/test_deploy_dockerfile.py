"""The Dockerfile, .dockerignore and the container health probe, checked without a Docker
engine: stages, user, health check, entrypoint and build arguments are parsed from the
Dockerfile; the build context the .dockerignore leaves is enough to build the podmill
wheel; the probe script answers like Docker needs against a real HTTP server."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from deploy_contract import (
    DEPLOY,
    DOCKERFILE,
    REPO,
    build_context_files,
    dockerignore_patterns,
    dockerignored,
    load_compose,
    parse_volume,
)

HEALTHCHECK_SCRIPT = DEPLOY / "healthcheck.py"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(path: Path = DOCKERFILE) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            match = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", args, re.IGNORECASE)
            assert match, f"cannot read FROM {args}"
            stages.append(Stage(match.group(1), match.group(2)))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


def env_of(stage: Stage) -> dict[str, str]:
    env = {}
    for args in stage.all("ENV"):
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            env[key] = value
    return env


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile()


def test_multi_stage_build_with_a_slim_runtime(dockerfile) -> None:
    global_args, stages = dockerfile
    assert len(stages) >= 2
    builder, runtime = stages[0], stages[-1]
    assert builder.name == "builder" and runtime.name == "runtime"
    assert "slim" in runtime.base
    copies_from_builder = [c for c in runtime.all("COPY") if "--from=builder" in c]
    assert copies_from_builder == ["--from=builder /opt/venv /opt/venv"]
    # Compilers stay in the builder.
    runtime_installs = " ".join(runtime.all("RUN"))
    assert "build-essential" in " ".join(builder.all("RUN"))
    assert "build-essential" not in runtime_installs and "gcc" not in runtime_installs
    assert re.search(r"install .*\bffmpeg\b", runtime_installs), "ffmpeg missing at run time"
    # The LD_LIBRARY_PATH for the GPU wheels names the venv's Python version.
    version = global_args["PYTHON_VERSION"]
    assert (
        f"/opt/venv/lib/python{version}/site-packages/nvidia" in env_of(runtime)["LD_LIBRARY_PATH"]
    )


def test_final_stage_runs_as_a_non_root_user_the_compose_file_also_uses(dockerfile) -> None:
    _, stages = dockerfile
    users = stages[-1].all("USER")
    assert users, "the runtime stage sets no USER: it would run as root"
    user = users[-1]
    assert user.split(":")[0] not in {"root", "0"}
    assert any("useradd" in r and f"--uid {user.split(':')[0]}" in r for r in stages[-1].all("RUN"))
    assert load_compose()["services"]["api"]["user"] == user


def test_healthcheck_entrypoint_and_git_sha(dockerfile) -> None:
    _, stages = dockerfile
    runtime = stages[-1]
    (healthcheck,) = runtime.all("HEALTHCHECK")
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert command == ["podmill-healthcheck"]
    assert any(
        c.endswith(f"{HEALTHCHECK_SCRIPT.relative_to(REPO)} /usr/local/bin/podmill-healthcheck")
        for c in runtime.all("COPY")
    )
    (entrypoint,) = runtime.all("ENTRYPOINT")
    assert json.loads(entrypoint)[-1] == "podmill"
    assert "PODMILL_GIT_SHA=unknown" in runtime.all("ARG")
    assert env_of(runtime)["PODMILL_GIT_SHA"] == "${PODMILL_GIT_SHA}"


def test_image_data_dir_is_where_compose_mounts_the_data_volume(dockerfile) -> None:
    _, stages = dockerfile
    data_dir = env_of(stages[-1])["PODMILL_DATA_DIR"]
    assert f'VOLUME ["{data_dir}"]' in [f"VOLUME {v}" for v in stages[-1].all("VOLUME")]
    api = load_compose()["services"]["api"]
    assert api["environment"]["PODMILL_DATA_DIR"] == data_dir
    assert (
        "podmill-data",
        data_dir,
        "rw",
    ) in map(parse_volume, api["volumes"])


def test_default_extras_exist_and_cover_every_role(dockerfile) -> None:
    _, stages = dockerfile
    extras_arg = next(a for a in stages[0].all("ARG") if a.startswith("EXTRAS="))
    extras = set(extras_arg.split("=", 1)[1].split(","))
    declared = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    assert extras <= declared, f"unknown extras {extras - declared}"
    # asr worker: ml; database: postgres; API and scheduler: server; worker /metrics: metrics
    assert {"ml", "postgres", "server", "metrics"} <= extras
    assert any('pip install ".[${EXTRAS}]"' in r for r in stages[0].all("RUN"))


def test_dockerignore_keeps_local_state_out_and_what_copy_needs_in(dockerfile) -> None:
    _, stages = dockerfile
    patterns = dockerignore_patterns()
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "src/x/__pycache__/a.pyc",
        "deploy/prometheus/alerts.yml",
        ".env",
    ):
        assert dockerignored(path, patterns), f"{path} would be sent to the Docker daemon"
    assert "deploy/healthcheck.py" in build_context_files(patterns)
    sources = []
    for stage in stages:
        for args in stage.all("COPY"):
            words = [w for w in args.split() if not w.startswith("--")]
            if "--from=" not in args:
                sources += words[:-1]
    assert sources, "no COPY from the build context"
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such path"
        assert not dockerignored(source, patterns), f"COPY {source} is excluded by .dockerignore"


def test_the_build_context_builds_the_podmill_wheel(tmp_path: Path) -> None:
    """What the builder stage's pip install sees: only files .dockerignore lets through,
    and only those the Dockerfile copies (pyproject.toml, README.md, src/)."""
    if not _can_build_wheels_offline():
        pytest.skip("setuptools >= 70.1 (or the wheel package) needed to build offline")
    context = tmp_path / "context"
    for rel in build_context_files():
        if rel in {"pyproject.toml", "README.md"} or rel.startswith("src/"):
            (context / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, context / rel)
    # The PEP 517 backend pip would call, without pip's start-up (half the time).
    (tmp_path / "wheels").mkdir()
    build = "from setuptools import build_meta as b; import sys; b.build_wheel(sys.argv[1])"
    result = subprocess.run(
        [sys.executable, "-c", build, str(tmp_path / "wheels")],
        cwd=context, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "wheels").glob("podmill-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # Package data the runtime needs: migrations (podmill db upgrade), tokenizer, prompts.
    migrations = REPO / "src/podmill/storage/migrations/versions"
    for migration in migrations.glob("*.py"):
        assert f"podmill/storage/migrations/versions/{migration.name}" in names
    assert "podmill/ml/data/minilm-tokenizer.json" in names
    assert any(n.startswith("podmill/pipeline/prompts/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "podmill = podmill.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def _can_build_wheels_offline() -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = (int(p) for p in version("setuptools").split(".")[:2])
    except PackageNotFoundError:
        return False
    if (major, minor) >= (70, 1):  # bdist_wheel moved into setuptools
        return True
    try:
        version("wheel")
    except PackageNotFoundError:
        return False
    return True


# ------------------------------------------------------------------- the health probe


class _Health(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, str]]] = {
        "/healthy": (200, "healthy"),
        "/degraded": (200, "degraded"),
        "/unhealthy": (503, "unhealthy"),
    }

    def do_GET(self) -> None:
        code, status = self.answers.get(self.path, (404, "missing"))
        body = json.dumps({"status": status, "checks": {}}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def health_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK_SCRIPT), *args],
        capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("path", "code", "said"),
    [
        ("/healthy", 0, "ok: {url}: HTTP 200 healthy"),
        ("/degraded", 0, "ok: {url}: HTTP 200 degraded"),  # alerts handle degraded
        ("/unhealthy", 1, "failing: {url}: HTTP 503 unhealthy"),
        ("/nowhere", 1, "failing: {url}: HTTP 404"),
    ],
)
def test_health_probe_passes_healthy_and_degraded_only(
    health_server: str, path: str, code: int, said: str
) -> None:
    url = health_server + path
    result = probe(url)
    assert result.returncode == code
    assert result.stdout.strip().startswith(said.format(url=url))


def test_health_probe_fails_when_nothing_answers_and_reads_its_url_from_env(
    health_server: str,
) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Health) as closed:
        port = closed.server_address[1]
    result = probe(f"http://127.0.0.1:{port}/health")
    assert result.returncode == 1 and "no answer" in result.stdout
    env = {"PATH": "/usr/bin:/bin", "PODMILL_HEALTH_URL": health_server + "/unhealthy"}
    assert probe(env=env).returncode == 1
    env["PODMILL_HEALTH_URL"] = health_server + "/healthy"
    assert probe(env=env).returncode == 0
