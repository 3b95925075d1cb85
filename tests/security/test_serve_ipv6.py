"""``podmill serve --host ::1`` and ``--host [::1]`` start and answer on
``http://[::1]:PORT`` (a real server process; skipped without an IPv6 loopback)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from support.api import podmill_env
from support.workers import wait_for

pytest.importorskip("fastapi", reason="pip install 'podmill[server]'")


def free_ipv6_port() -> int:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
            return sock.getsockname()[1]
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback on this machine: {exc}")


@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_serve_binds_the_ipv6_loopback(tmp_path: Path, host: str) -> None:
    port = free_ipv6_port()
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "podmill", "serve", "--host", host, "--port", str(port)]
    command += ["--data-dir", str(tmp_path / "data"), "--no-auth", "--no-background"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=podmill_env())
    url = f"http://[::1]:{port}"

    def answers() -> bool:
        assert proc.poll() is None, f"podmill serve --host {host} exited:\n{log.read_text()}"
        try:
            return httpx.get(url + "/health", timeout=2).status_code in (200, 503)
        except httpx.HTTPError:
            return False

    try:
        wait_for(
            answers, 60, f"podmill serve --host {host} to answer on {url}", detail=log.read_text
        )
        me = httpx.get(url + "/me", timeout=10)
        assert me.status_code == 200, me.text
        assert f"podmill API on {url} " in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
