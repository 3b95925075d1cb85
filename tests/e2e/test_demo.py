"""`podmill demo` as a new user meets it: the commands it prints at the end work as printed.

The demo writes where every other command reads (the data dir: ``--data-dir``, else
``PODMILL_DATA_DIR``, else ``$XDG_DATA_HOME/podmill``), so ``show``, ``search`` and
``digest`` find its episodes; each printed command is run exactly as printed
(``shlex.split``), from the same directory, in the same environment.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from support.cli import CliResult, run_cli

pytestmark = pytest.mark.slow


def _next_commands(result: CliResult) -> list[list[str]]:
    """The commands listed after ``next, try:`` (the demo's last lines), split as a shell would."""
    lines = result.stderr.splitlines()
    assert "next, try:" in lines, result.stderr
    return [shlex.split(line) for line in lines[lines.index("next, try:") + 1 :]]


def _run_as_printed(argv: list[str], cwd: Path, env: dict[str, str]) -> CliResult:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PODMILL_")}
    full_env.update({"COLUMNS": "200", "NO_COLOR": "1", **env})
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=full_env, timeout=300)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def _check_next_commands(result: CliResult, cwd: Path, env: dict[str, str]) -> list[list[str]]:
    commands = _next_commands(result)
    assert [c[c.index("podmill") + 1] for c in commands] == ["show", "search", "digest", "view"]
    # The episode with three topics is the one shown and the one the search finds.
    key = commands[0][commands[0].index("show") + 1]
    show, search, digest = (_run_as_printed(c, cwd, env) for c in commands[:3])
    _check_view(commands[3], cwd, env, key)

    assert show.code == 0, show.stderr
    assert show.stdout.startswith("Coffee, Mars rovers and a first marathon")
    assert show.stdout.count("\n     0") >= 3  # its three timed topics

    assert search.code == 0, search.stderr
    hits = [line for line in search.stdout.splitlines() if line.strip().startswith("1. ")]
    assert hits, search.stdout + search.stderr
    assert f"[{key}]" in search.stdout and "rover" in search.stdout.lower()

    assert digest.code == 0, digest.stderr
    assert "3 new episodes" in digest.stdout, digest.stdout + digest.stderr
    assert "Coffee, Mars rovers and a first marathon — podmill demo" in digest.stdout
    return commands


def _check_view(argv: list[str], cwd: Path, env: dict[str, str], key: str) -> None:
    """``podmill view`` as printed (on a free port, so tests may run side by side) serves
    the library with the demo's episodes."""
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PODMILL_")}
    full_env.update({"COLUMNS": "200", "NO_COLOR": "1", **env})
    proc = subprocess.Popen(
        [*argv, "--port", str(port)], cwd=cwd, env=full_env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "podmill view did not answer in 60 s"
                time.sleep(0.2)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_demo_prints_next_commands_that_work_as_printed(tmp_path: Path) -> None:
    cwd = tmp_path / "work"
    cwd.mkdir()
    xdg = tmp_path / "xdg"
    env = {"HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(xdg)}

    demo = run_cli("demo", cwd=cwd, env=env, timeout=540)

    assert demo.code == 0, demo.stderr
    assert "Coffee, Mars rovers and a first marathon" in demo.stdout  # its outlines
    # One rule for where data lives: the demo wrote the default data dir, not ./podmill-demo.
    assert (xdg / "podmill" / "podmill.db").is_file()
    assert not any(cwd.iterdir())
    commands = _check_next_commands(demo, cwd, env)
    assert not any("--data-dir" in c for c in commands)  # the default needs no flag

    # Given --data-dir (relative, as a user types it), every printed command carries it.
    # The copy makes this a rerun: nothing is computed again.
    shutil.copytree(xdg / "podmill", cwd / "mine")
    again = run_cli("demo", "--data-dir", "mine", cwd=cwd, env=env, timeout=540)
    assert again.code == 0, again.stderr
    commands = _check_next_commands(again, cwd, {**env, "XDG_DATA_HOME": str(tmp_path / "empty")})
    assert all(c[-2:] == ["--data-dir", "mine"] for c in commands)
