"""A refused private address names ``--allow-private-networks`` where the command has it.

``podmill run`` and ``podmill submit`` take the flag, so their refusal of a 127.0.0.1
feed (one ``error:`` line) or audio URL (the run's summary) says to pass it; where no
command flag applies (the API, a worker's webhook) the message names only the setting.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from podmill.cli import app
from podmill.errors import DownloadError
from podmill.feeds.download import PRIVATE_HINT, check_url
from podmill.settings import Settings

from support.cli import commands, run_cli
from support.feeds import item, rss
from support.httpserver import TestHTTPServer

FLAG = "--allow-private-networks"


def _refusal(text: str) -> bool:
    return "a loopback address" in text and "refusing to download" in text


def test_the_commands_with_the_flag_are_run_and_submit() -> None:
    """The commands this file walks are the ones that have the flag (a new one is seen)."""
    with_flag = {
        path for path, cmd in commands(app).items() if any(FLAG in p.opts for p in cmd.params)
    }
    assert with_flag == {("run",), ("submit",)}


@pytest.mark.parametrize("command", ["run", "submit"])
def test_a_loopback_feed_is_refused_with_the_flag_named(
    command: str, http_server: TestHTTPServer, tmp_path: Path
) -> None:
    audio = http_server.url_for("/a.mp3")
    url = http_server.add_bytes(
        "/feed.xml", rss([item("g1", "Episode one", audio)]), "application/rss+xml"
    )
    refused = run_cli(command, url, "--data-dir", tmp_path / "d")
    assert refused.code == 1
    line = refused.error_line
    assert _refusal(line), refused.stderr
    assert f"pass {FLAG}, or set allow_private_networks = true" in line, line
    assert "PODMILL_ALLOW_PRIVATE_NETWORKS=true" in line and "if you trust this source" in line
    assert http_server.count("/feed.xml") == 0  # refused before any request

    if command == "submit":  # what the message says to do works: the feed is read
        allowed = run_cli(command, url, "--data-dir", tmp_path / "d", FLAG)
        assert allowed.code == 0, allowed.stderr
        assert allowed.stdout.split() == ["1"], allowed.stdout
        assert http_server.count("/feed.xml") >= 1


def test_a_loopback_audio_url_in_a_run_names_the_flag_in_the_summary(
    http_server: TestHTTPServer, tmp_path: Path
) -> None:
    url = http_server.add_bytes("/talk.mp3", b"ID3" + bytes(64), "audio/mpeg")
    result = run_cli("run", url, "--data-dir", tmp_path / "d", env={"COLUMNS": "400"})
    assert result.code == 1
    summary = result.stderr[result.stderr.index("podmill run") :]
    assert "failed" in summary and _refusal(summary), result.stderr
    assert f"pass {FLAG}" in summary, summary
    assert http_server.count("/talk.mp3") == 0


def test_without_a_command_flag_the_message_names_the_setting(tmp_path: Path) -> None:
    """The API and webhooks check URLs with the same guard; no flag to name there."""
    with pytest.raises(DownloadError) as refused:
        check_url("http://127.0.0.1:9/hook", Settings(data_dir=tmp_path))
    assert str(refused.value).endswith(PRIVATE_HINT)
    assert FLAG not in str(refused.value)
