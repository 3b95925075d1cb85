"""A port that is already taken, as a user meets it (issue 21, item 10).

``podmill serve`` on a busy port used to announce "podmill API on http://…" and then die
with uvicorn's own ERROR line and exit code 3. It now checks the port first: one
``error:`` line naming the port and what to do, exit code 1, nothing announced and
nothing started. ``worker`` and ``scheduler`` already said so for ``--metrics-port``;
these tests keep it that way.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cli import run_cli


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program listens on (on every address, as a careless server does)."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    "extra",
    [(), ("--workers", "2"), ("--host", "localhost")],
    ids=["one-process", "workers", "localhost"],
)
def test_serve_on_a_busy_port_says_so_first_and_exits_1(
    taken_port: int, tmp_path: Path, extra: tuple[str, ...]
) -> None:
    data = tmp_path / "data"
    result = run_cli("serve", "--port", taken_port, "--data-dir", data, *extra, timeout=30)
    assert result.code == 1, result.stderr
    host = "localhost" if "localhost" in extra else "127.0.0.1"
    assert result.error_line == (
        f"error: --port {taken_port}: cannot listen on {host}:{taken_port} (Address already "
        "in use); another program is listening there: stop it, or choose a free port with "
        "--port N"
    ), result.stderr
    assert result.stderr.strip() == result.error_line  # nothing announced before it
    assert not (data / "podmill.db").exists()  # and nothing started


@pytest.mark.parametrize("extra", [(), ("--workers", "2")], ids=["one-process", "workers"])
def test_serve_on_a_free_port_still_starts(tmp_path: Path, extra: tuple[str, ...]) -> None:
    """The check lets go of the port: the server binds it after (no false "in use")."""
    from support.api import start_server

    log = tmp_path / "serve.log"
    server = start_server(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "data", log, args=extra)
    try:
        assert f"podmill API on {server.url}" in server.log()
        assert "error:" not in server.log() and " ERROR " not in server.log()
    finally:
        server.stop()


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_a_busy_metrics_port_is_one_error_line(
    taken_port: int, tmp_path: Path, command: str
) -> None:
    pytest.importorskip("prometheus_client")
    db = f"sqlite:///{tmp_path / 'p.db'}"
    result = run_cli(command, "--db", db, "--metrics-port", taken_port, timeout=30)
    assert result.code == 1, result.stderr
    assert result.error_line == (
        f"error: --metrics-port {taken_port}: cannot listen on 0.0.0.0:{taken_port} "
        "(Address already in use); choose a free port or 0 to turn metrics off"
    ), result.stderr
    assert "worker metrics on" not in result.stderr
    assert "scheduler polling" not in result.stderr
    assert "Traceback" not in result.stderr
