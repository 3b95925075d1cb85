"""A host that does not resolve is one attempt and "cannot resolve host NAME", whatever
``allow_private_networks`` says: real ``podmill run`` against names under ``.invalid``
(RFC 6761: they never resolve, so no query leaves the machine with an answer).

Which error the machine's resolver gives decides what is retried, so both are produced
for real: this machine's resolver (``EAI_NONAME``, "Name or service not known", where
DNS works) and a resolver that cannot be reached (``EAI_AGAIN``, "Temporary failure in
name resolution"): ``unshare`` gives the process its own empty network and an
``/etc/resolv.conf`` naming a server that is not there.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from support.cli import run_cli
from support.feeds import item, rss
from support.paths import FIXTURES

NOWHERE = "http://nowhere.invalid/a.mp3"
SETTINGS = pytest.mark.parametrize("allow_private", ["true", "false"])


def _fetch_step(data_dir: Path) -> tuple[str, int, list[str]]:
    """(status, attempts, notes) of the episode's fetch step."""
    with sqlite3.connect(data_dir / "podmill.db") as db:
        status, attempts, notes = db.execute(
            "SELECT status, attempts, notes FROM steps WHERE stage = 'fetch'"
        ).fetchone()
    return status, attempts, json.loads(notes) if notes else []


def _feed(tmp_path: Path, extra: str = "", url: str | None = NOWHERE) -> Path:
    path = tmp_path / "feed.xml"
    path.write_bytes(rss([item("e1", "Episode one", url, extra=extra)]))
    return path


@SETTINGS
def test_an_enclosure_on_an_unresolvable_host_is_one_attempt(tmp_path, allow_private) -> None:
    data = tmp_path / "d"
    result = run_cli(
        "run",
        _feed(tmp_path),
        "--data-dir",
        data,
        "--json",
        env={"PODMILL_ALLOW_PRIVATE_NETWORKS": allow_private},
    )
    assert result.code == 1, result.stderr
    (line,) = result.json_lines()
    assert "cannot resolve host nowhere.invalid" in line["error"]
    assert "attempts" not in line["error"]  # no download retries either
    assert _fetch_step(data)[:2] == ("dead", 1)


@SETTINGS
def test_a_feed_url_on_an_unresolvable_host_says_so(tmp_path, allow_private) -> None:
    result = run_cli(
        "run",
        "http://nowhere.invalid/feed.xml",
        "--data-dir",
        tmp_path / "d",
        env={"PODMILL_ALLOW_PRIVATE_NETWORKS": allow_private},
    )
    assert result.code != 0
    assert result.error_line.startswith("error: cannot resolve host nowhere.invalid"), result.stderr
    assert "Traceback" not in result.stderr


@SETTINGS
def test_a_transcript_on_an_unresolvable_host_is_a_failed_candidate(
    tmp_path, allow_private
) -> None:
    # The item's <enclosure> has no url attribute (as in podcastparser's no_url.rss), so
    # the transcript is its only input: the failure names the host and the enclosure.
    extra = '<enclosure type="audio/mpeg" length="123"/>'
    extra += '<podcast:transcript url="http://nowhere.invalid/t.vtt" type="text/vtt"/>'
    data = tmp_path / "d"
    result = run_cli(
        "run",
        _feed(tmp_path, extra, url=None),
        "--data-dir",
        data,
        "--json",
        env={"PODMILL_ALLOW_PRIVATE_NETWORKS": allow_private},
    )
    assert result.code == 1, result.stderr
    (line,) = result.json_lines()
    error = line["error"]
    assert "1/1 http://nowhere.invalid/t.vtt (vtt): unusable: cannot resolve host" in error
    assert "'Episode one' has no audio instead (its <enclosure> has no url attribute" in error
    assert _fetch_step(data)[:2] == ("dead", 1)


# --------------------------------------------------- a resolver that cannot be reached


def _unreachable_resolver(tmp_path: Path) -> list[str]:
    """The command prefix that runs a process with no network and a resolver at
    127.0.0.1 that is not there, so every lookup fails with EAI_AGAIN."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        pytest.skip("needs Linux unshare to give a process its own network")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
    wrapper = f'mount --bind {resolv} /etc/resolv.conf && exec "$@"'
    prefix = ["unshare", "--user", "--map-root-user", "--mount", "--net"]
    prefix += ["sh", "-c", wrapper, "sh"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import socket; socket.getaddrinfo('a.invalid', 80)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "Temporary failure" not in probe.stderr and "-3" not in probe.stderr:
        pytest.skip(f"cannot isolate the resolver here: {probe.stderr.strip()[-200:]}")
    return prefix


def test_a_special_use_name_is_final_even_when_the_resolver_is_down(tmp_path) -> None:
    prefix = _unreachable_resolver(tmp_path)
    data = tmp_path / "d"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODMILL_")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    command = [sys.executable, "-m", "podmill", "run", str(_feed(tmp_path))]
    proc = subprocess.run(
        [*prefix, *command, "--data-dir", str(data), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    (line,) = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    error = line["error"]
    assert "cannot resolve host nowhere.invalid: .invalid is a special-use name" in error
    # Before: 4 step attempts of 4 downloads each ("gave up after 4 attempts"), ~30 s.
    assert _fetch_step(data)[:2] == ("dead", 1)


_RETRIED = """
import sys
from podmill.errors import DownloadError
from podmill.feeds.download import check_url, fetch_bytes
from podmill.settings import Settings

settings = Settings(download={"max_attempts": 3, "backoff_seconds": 0.01})
waits = []
try:
    fetch_bytes("http://feeds.podmill-probe.net/t.vtt", settings, sleep=waits.append)
except DownloadError as exc:
    print("fetch", len(waits), exc.retryable, exc)
try:
    check_url("http://hooks.podmill-probe.net/x", settings)
except DownloadError as exc:
    print("check", exc.retryable, exc)
"""


def test_a_name_that_may_exist_is_retried_while_the_resolver_is_down(tmp_path) -> None:
    prefix = _unreachable_resolver(tmp_path)
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", _RETRIED],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        timeout=120,
    )
    fetch, check = proc.stdout.splitlines()
    # A resolver outage passes: three tries (two waits), then a retryable error.
    assert fetch.startswith("fetch 2 True cannot resolve host feeds.podmill-probe.net for now")
    assert "gave up after 3 attempts" in fetch
    # The webhook guard says it in words too (it leaked an internal exception before).
    assert check.startswith("check True cannot resolve host hooks.podmill-probe.net for now")


# ------------------------------------------------------------- no url on the enclosure


def test_an_enclosure_without_url_says_so(tmp_path) -> None:
    # podcastparser's real no_url.rss: one untitled item, <enclosure type length/>.
    result = run_cli(
        "run", FIXTURES / "feeds" / "podcastparser__no_url.rss", "--data-dir", tmp_path / "d"
    )
    assert result.code != 0
    assert result.error_line == (
        "error: feed has 1 item but none with an audio enclosure or a transcript "
        "(1 whose <enclosure> has no url attribute: Untitled episode (item 1)); "
        "ask the publisher to fix the feed"
    ), result.stderr
