"""Every command on a bare ``pip install podmill``: it works, or says in one line which
extra to install; never a traceback.

The commands are walked from the Typer app, so a new command is covered without editing
this file; the extras' modules are hidden as derived from pyproject.toml (support.bare).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from podmill.cli import app

from support import bare
from support.cli import commands
from support.paths import DEMO

TRACEBACK = "Traceback (most recent call last)"
PG_URL = "postgresql+psycopg://podmill@127.0.0.1:5432/test"
MISSING = re.compile(r"\(missing module '([\w.]+)'\): pip install 'podmill\[([\w-]+)\]'")

# A real value for each argument or required option, by parameter name; anything else
# gets "x" (a new command still runs, and must still not traceback).
VALUES = {
    "source": str(DEMO / "feed.xml"),
    "episode_key": "0123abcd",
    "query": "moon landing",
    "job_id": "1",
    "step_id": "1",
    "stage": "transcribe",
    "name": "acme",
    "tenant": "acme",
    "key_id": "1",
    "api": "http://127.0.0.1:9",  # discard port: nothing listens
    "a": "small:--pool asr=1",
    "b": "big:--pool asr=2",
}
# Options a command needs to end by itself.
EXTRA_OPTIONS = {("worker",): ["--max-idle", "0.2"]}
# Commands that run until SIGTERM, and the line that says they are running.
DAEMONS = {("scheduler",): "scheduler polling feeds"}


COMMANDS = commands(app)


def _argv(path: tuple[str, ...], db: str | None, work: Path) -> list[str]:
    args = list(path)
    for param in COMMANDS[path].params:
        if param.param_type_name == "argument":
            args.append(VALUES.get(param.name, "x"))
        elif param.required:
            args += [param.opts[0], VALUES.get(param.name, "x")]
        elif "--db" in param.opts and db is not None:
            args += ["--db", db]
        elif "--data-dir" in param.opts:
            args += ["--data-dir", str(work / "data")]
        elif "--out" in param.opts:
            args += ["--out", str(work / "out")]
    return args + EXTRA_OPTIONS.get(path, [])


@dataclass
class Outcome:
    argv: list[str]
    code: int
    output: str

    def __str__(self) -> str:
        return f"podmill {' '.join(self.argv)} -> {self.code}\n{self.output}"


def _podmill(site: Path, argv: list[str], cwd: Path, ready: str | None = None) -> Outcome:
    """``python -m podmill ARGV`` with ``site``'s hook; a daemon is stopped with SIGTERM
    once it says it is running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODMILL_")}
    src = Path(__file__).resolve().parents[2] / "src"
    env.update(PYTHONPATH=f"{site}{os.pathsep}{src}", COLUMNS="200", NO_COLOR="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "podmill", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
    )
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if ready is not None and ready in line:
                proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)  # a safety bound: every command here ends in seconds
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Outcome(argv, code, "".join(lines))


def _hook(folder: Path, missing: tuple[str, ...], installed: tuple[str, ...] = ()) -> Path:
    return bare.write_sitecustomize(folder, missing, installed)


def _assert_honest(outcome: Outcome) -> None:
    """No traceback; a failure ends in one ``error:`` line; an extra it names really
    provides the module it says is missing."""
    assert TRACEBACK not in outcome.output, outcome
    if outcome.code == 0:
        return
    last = [line for line in outcome.output.splitlines() if line.strip()][-1]
    assert last.startswith("error: "), outcome
    for module, extra in MISSING.findall(outcome.output):
        assert extra in bare.extras_providing(module.partition(".")[0]), outcome


def _takes_db(path: tuple[str, ...]) -> bool:
    return any("--db" in param.opts for param in COMMANDS[path].params)


CASES = [(path, "sqlite") for path in COMMANDS] + [
    (path, "postgres") for path in COMMANDS if _takes_db(path)
]


@pytest.fixture(scope="module")
def bare_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every command on SQLite, and each that takes --db once more on a Postgres URL, run
    four at a time with no extra installed."""
    root = tmp_path_factory.mktemp("bare")
    site = _hook(root / "site", tuple(bare.extras()))

    def one(case: tuple[tuple[str, ...], str]) -> Outcome:
        path, kind = case
        work = root / f"{'-'.join(path)}-{kind}"
        work.mkdir()
        db = f"sqlite:///{work / 'podmill.db'}" if kind == "sqlite" else PG_URL
        return _podmill(site, _argv(path, db, work), work, DAEMONS.get(path))

    with ThreadPoolExecutor(4) as pool:
        return dict(zip(CASES, pool.map(one, CASES)))


@pytest.mark.parametrize("case", CASES, ids=[f"{' '.join(path)}-{db}" for path, db in CASES])
def test_command_on_a_bare_install_works_or_names_the_extra(bare_outcomes, case) -> None:
    _assert_honest(bare_outcomes[case])


def test_the_hook_hides_every_extra_and_no_core_module(tmp_path: Path) -> None:
    site = _hook(tmp_path / "site", tuple(bare.extras()))
    # as where they are not installed: no spec, no import, no metadata
    code = (
        "import importlib, importlib.metadata as md, importlib.util as u\n"
        "for m, d in [('psycopg', 'psycopg'), ('fastapi', 'fastapi'), ('av', 'av'),\n"
        "             ('faster_whisper', 'faster-whisper'), ('matplotlib', 'matplotlib')]:\n"
        "    assert u.find_spec(m) is None, m\n"
        "    try: importlib.import_module(m); print('imported', m)\n"
        "    except ModuleNotFoundError: pass\n"
        "    try: md.version(d); print('listed', d)\n"
        "    except md.PackageNotFoundError: pass\n"
        "import typer, sqlalchemy, alembic, feedparser, httpx, numpy, pydantic_settings\n"
        "md.version('sqlalchemy')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0 and result.stdout == "", result.stderr


def _one_error_line(outcome: Outcome) -> str:
    _assert_honest(outcome)
    assert outcome.code != 0, outcome
    return [line for line in outcome.output.splitlines() if line.strip()][-1]


def test_db_upgrade_on_postgres_without_the_extra_says_so(tmp_path: Path) -> None:
    site = _hook(tmp_path / "site", ("postgres",))
    outcome = _podmill(site, ["db", "upgrade", "--db", PG_URL], tmp_path)
    line = _one_error_line(outcome)
    assert "pip install 'podmill[postgres]'" in line and "127.0.0.1" in line, outcome
    assert outcome.output.strip() == line, outcome  # the only thing it printed


def test_serve_with_server_but_not_postgres_names_postgres_before_binding(
    tmp_path: Path,
) -> None:
    installed = tuple(e for e in bare.extras() if e != "postgres")
    site = _hook(tmp_path / "site", ("postgres",), installed)
    outcome = _podmill(site, ["serve", "--port", "9", "--db", PG_URL], tmp_path)
    assert "pip install 'podmill[postgres]'" in _one_error_line(outcome)
    assert "podmill API on" not in outcome.output, outcome


def test_serve_with_postgres_but_not_server_names_server(tmp_path: Path) -> None:
    site = _hook(tmp_path / "site", ("server", "metrics"), ("postgres",))
    outcome = _podmill(site, ["serve", "--port", "9", "--db", PG_URL], tmp_path)
    assert "pip install 'podmill[server]'" in _one_error_line(outcome)


def test_worker_metrics_without_the_metrics_extra_names_it(tmp_path: Path) -> None:
    installed = tuple(e for e in bare.extras() if e not in ("server", "metrics"))
    site = _hook(tmp_path / "site", ("server", "metrics"), installed)
    argv = ["worker", "--db", f"sqlite:///{tmp_path / 'p.db'}", "--metrics-port", "9"]
    outcome = _podmill(site, [*argv, "--max-idle", "0.2"], tmp_path)
    assert "pip install 'podmill[metrics]'" in _one_error_line(outcome)


def test_every_known_optional_module_names_an_extra_that_provides_it() -> None:
    """errors.EXTRA_OF_MODULE against pyproject.toml: each row's extra brings the module,
    and each module of a package a runtime extra lists has a row."""
    from podmill.errors import EXTRA_OF_MODULE

    installed = bare.hidden_modules(tuple(bare.extras()))
    for module, extra in EXTRA_OF_MODULE.items():
        if module in installed:  # the ones this machine has: pyproject decides
            assert extra in bare.extras_providing(module), (module, extra)
    listed = bare.listed_modules(*(e for e in bare.extras() if e not in ("dev", "bench")))
    assert listed - EXTRA_OF_MODULE.keys() == set()


def test_an_import_error_names_its_extra_only_for_an_extras_module() -> None:
    from podmill.errors import missing_extra

    found = missing_extra(
        ModuleNotFoundError("No module named 'psycopg.pq'", name="psycopg.pq"), "x"
    )
    assert found is not None and "pip install 'podmill[postgres]'" in str(found)
    assert missing_extra(ModuleNotFoundError("nope", name="podmill_typo"), "x") is None
