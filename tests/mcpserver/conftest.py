"""Fixtures of the MCP server's tests: real data, real servers, the SDK's client.

Session-scoped, because real runs are slow. ``mcp_data`` is a data dir that real
``podmill run``s wrote from two feeds on the local HTTP server (``mcp_feeds``):

- "Talk show" (alice's): the demo's three-topic monologue (coffee, Mars rovers, a
  marathon) with a publisher transcript, a WebVTT made from the episode's own ground
  truth (``demo/three-topics.json``), so no speech recognition runs on its 3½ minutes;
  and the demo's eleven seconds of JFK, transcribed by Whisper;
- the viewer tests' hostile feed (bob's): one episode with a publisher transcript.

``mcp_site`` is ``podmill serve`` over a copy with tenants ``alice`` (Talk show), ``bob``
(the other feed) and ``root`` (admin, no subscriptions) (support/browser.py:
``start_site``). ``podmill mcp`` sessions are opened by the tests themselves
(support/mcp_client.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.browser import HOSTILE_VTT, Site, ViewerData, episodes_in, hostile_feed, start_site
from support.cli import run_cli
from support.feeds import item, rss
from support.httpserver import TestHTTPServer
from support.paths import DEMO

pytest.importorskip("mcp", reason="the MCP tests need the 'mcp' extra")

SHOW = "Talk show"
MARS_TITLE = "Coffee, Mars rovers and a first marathon"


def _vtt_of(ground_truth: Path) -> str:
    """A WebVTT of the demo episode's sentences as its script has them timed."""

    def stamp(seconds: float) -> str:
        minutes, secs = divmod(seconds, 60)
        return f"00:{int(minutes):02d}:{secs:06.3f}"

    cues = [
        f"{stamp(s['start'])} --> {stamp(s['end'])}\n{s['text']}\n"
        for topic in json.loads(ground_truth.read_text())["topics"]
        for s in topic["sentences"]
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def serve_mcp_feeds(server: TestHTTPServer) -> tuple[str, str]:
    """Alice's feed and bob's on ``server``; returns their URLs."""
    audio = server.add_file("/talk/three-topics.ogg", DEMO / "three-topics.ogg")
    vtt = server.add_bytes(
        "/talk/three-topics.vtt", _vtt_of(DEMO / "three-topics.json").encode(), "text/vtt"
    )
    jfk = server.add_file("/talk/jfk.flac", DEMO / "jfk.flac")
    transcript = f'<podcast:transcript url="{vtt}" type="text/vtt"/>'
    talk = rss(
        [
            item(
                "talk-1",
                MARS_TITLE,
                audio,
                "audio/ogg",
                transcript,
                "Mon, 02 Mar 2026 09:00:00 GMT",
            ),
            item(
                "talk-2",
                "Ask not what your country can do for you",
                jfk,
                "audio/flac",
                date="Mon, 12 Jan 2026 09:00:00 GMT",
            ),
        ],
        title=SHOW,
    )
    alice = server.add_bytes("/talk/feed.xml", talk, "application/rss+xml")
    other_audio = server.add_file("/hostile/episode.flac", DEMO / "jfk.flac")
    other_vtt = server.add_bytes("/hostile/transcript.vtt", HOSTILE_VTT.encode(), "text/vtt")
    bob = server.add_bytes(
        "/hostile/feed.xml", hostile_feed(other_audio, other_vtt), "application/rss+xml"
    )
    return alice, bob


@pytest.fixture(scope="session")
def mcp_feeds() -> Iterator[TestHTTPServer]:
    with TestHTTPServer() as server:
        yield server


@pytest.fixture(scope="session")
def mcp_data(tmp_path_factory: pytest.TempPathFactory, mcp_feeds: TestHTTPServer) -> ViewerData:
    data_dir = tmp_path_factory.mktemp("mcp") / "data"
    alice, bob = serve_mcp_feeds(mcp_feeds)
    for feed in (alice, bob):
        result = run_cli(
            "run",
            feed,
            "--data-dir",
            data_dir,
            "--allow-private-networks",
            "--json",
            timeout=1500,
        )
        assert result.code == 0, f"podmill run {feed} failed:\n{result.stderr}"
        assert {r["status"] for r in result.json_lines()} == {"done"}, result.stdout
    data = ViewerData(data_dir, alice, bob, episodes_in(data_dir))
    assert len(data.of_feed(alice)) == 2 and len(data.of_feed(bob)) == 1, data.episodes
    return data


@pytest.fixture(scope="session")
def mcp_site(mcp_data: ViewerData, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    site = start_site(mcp_data, tmp_path_factory.mktemp("mcp-serve"))
    try:
        yield site
    finally:
        site.stop()
