"""Distributed mode keeps the catalog: ``podmill submit`` of a feed served over HTTP, a
``podmill worker`` draining it on Postgres, then ``digest`` and ``search`` as a user runs
them.

The feed's name used to be lost (``submit`` wrote no feed row, so digests had no show
names and ``--feed`` said "feeds: none yet"), and a job whose artifact set was already
finished on disk (another database, a database made again) wrote no search documents
(``search`` said the index was empty until ``podmill index rebuild``). Every path that
finishes a job now projects the same rows (podmill.pipeline.projection).

The episode carries a publisher transcript (WebVTT), so no ASR runs: the topic, index
and publish stages and the projection are the real ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from support.cli import CliResult, run_cli
from support.feeds import rss
from support.httpserver import TestHTTPServer
from support.paths import FIXTURES

SHOW = "Podcasting Answers"
EPISODE = "Do we need a trailer?"
TRAILER = FIXTURES / "transcripts" / "podcast-namespace__podcasting-qa-trailer.vtt"
SINCE = "2000-01-01"


def _serve_feed(server: TestHTTPServer) -> str:
    transcript = server.add_file("/trailer.vtt", TRAILER, "text/vtt")
    item = (
        f"<item><title>{EPISODE}</title><guid>qa-trailer</guid>"
        "<pubDate>Mon, 02 Nov 2026 10:00:00 GMT</pubDate>"
        f'<podcast:transcript url="{transcript}" type="text/vtt"/></item>'
    )
    return server.add_bytes("/feed.xml", rss([item], title=SHOW), "application/rss+xml")


def _drain(url: str, data: Path) -> subprocess.CompletedProcess[str]:
    """A real worker that exits once the queue has been empty for a second."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODMILL_")}
    return subprocess.run(
        [sys.executable, "-m", "podmill", "worker", "--db", url, "--data-dir", str(data),
         "--max-idle", "1"],
        capture_output=True, text=True, env=env, timeout=300,  # a safety bound
    )  # fmt: skip


def _feed_rows(url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text("SELECT title, url FROM feeds"))]
    finally:
        engine.dispose()


def _digest(url: str, data: Path, *args: str) -> CliResult:
    return run_cli("digest", "--db", url, "--data-dir", data, "--since", SINCE, *args, timeout=120)


def _search(url: str, data: Path) -> CliResult:
    return run_cli("search", "trailer", "--db", url, "--data-dir", data, "--json", timeout=120)


def _assert_catalog_shown(url: str, data: Path, feed_url: str) -> None:
    """What a user sees once the jobs are done: the show's name in the digest, ``--feed``
    by that name, and the episode in search."""
    assert _feed_rows(url) == [(SHOW, feed_url)]
    digest = _digest(url, data, "--feed", SHOW, "--format", "json")
    assert digest.code == 0, digest.stderr
    document = json.loads(digest.stdout)
    assert [(e["title"], e["feed_title"]) for e in document["episodes"]] == [(EPISODE, SHOW)]
    assert document["stats"]["not_processed"] == 0
    markdown = _digest(url, data)
    assert markdown.code == 0, markdown.stderr
    assert f"### {EPISODE} — {SHOW}" in markdown.stdout

    search = _search(url, data)
    assert search.code == 0, search.stderr
    hits = json.loads(search.stdout)
    assert hits, "search found nothing"
    assert {(h["episode_title"], h["feed_title"]) for h in hits} == {(EPISODE, SHOW)}


def test_submit_and_a_worker_on_postgres_keep_the_feed_and_reused_sets_their_rows(
    postgres_schemas: Callable[[], str], http_server: TestHTTPServer, tmp_path: Path
) -> None:
    feed_url = _serve_feed(http_server)
    data = tmp_path / "data"
    first = postgres_schemas()

    submitted = run_cli(
        "submit", feed_url, "--db", first, "--data-dir", data, "--allow-private-networks",
        "--json",
    )  # fmt: skip
    assert submitted.code == 0, submitted.stderr
    [job] = submitted.json_lines()
    assert _feed_rows(first) == [(SHOW, feed_url)]  # the feed is named before any stage ran

    worker = _drain(first, data)
    assert worker.returncode == 0, worker.stderr
    assert "done=10 " in worker.stderr, worker.stderr  # every step of the one job ran here
    assert http_server.count("/trailer.vtt") == 1
    _assert_catalog_shown(first, data, feed_url)

    # A new database over the same data directory: the job finds every stage's artifacts
    # finished on disk and runs none of them again, yet its rows are all there.
    second = postgres_schemas()
    again = run_cli(
        "submit", feed_url, "--db", second, "--data-dir", data, "--allow-private-networks",
        "--json",
    )  # fmt: skip
    assert again.code == 0, again.stderr
    assert [line["episode_key"] for line in again.json_lines()] == [job["episode_key"]]
    worker = _drain(second, data)
    assert worker.returncode == 0, worker.stderr
    assert http_server.count("/trailer.vtt") == 1  # reused: fetched once, by the first job
    _assert_catalog_shown(second, data, feed_url)

    # The embedded runner's reuse projects the same rows, into a SQLite file this time.
    local = f"sqlite:///{tmp_path / 'local.db'}"
    run = run_cli(
        "run", feed_url, "--data-dir", data, "--allow-private-networks",
        env={"PODMILL_DB": local}, timeout=300,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    assert http_server.count("/trailer.vtt") == 1
    _assert_catalog_shown(local, data, feed_url)
