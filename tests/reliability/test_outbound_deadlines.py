"""Every download, feed fetch and webhook has an overall deadline, not only per-read
timeouts, and feed answers are capped: a server that trickles a byte at a time (in the
body, or in the status line and headers) is cut off at the deadline with an error that
names the setting. Real sockets throughout; the deadlines are short, the safety bounds
generous (timing never decides a test: each call must end, not end fast)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from podmill.errors import DownloadError
from podmill.feeds.download import download, fetch_bytes, fetch_feed
from podmill.settings import Settings

from support.feeds import item, rss
from support.httpserver import RequestHandler, TestHTTPServer
from support.rawserver import RawServer, trickle

T = TypeVar("T")
SAFETY_SECONDS = 60  # a call that has not ended by then never would have


def ends(call: Callable[[], T]) -> T | BaseException:
    """Run ``call`` in a thread; its result or exception, or fail if it never ends."""
    outcome: list[T | BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(SAFETY_SECONDS)
    assert outcome, f"the call was still running after {SAFETY_SECONDS} s: no overall deadline"
    return outcome[0]


def settings_for(tmp_path: Path, **download_settings: object) -> Settings:
    # Per-read timeouts far above the deadline: only the deadline can end the call.
    return Settings(
        data_dir=tmp_path / "data",
        allow_private_networks=True,
        download={"read_timeout": 30, "max_attempts": 3, "backoff_seconds": 0.01}
        | download_settings,
    )


def trickling_body(req: RequestHandler) -> None:
    """200 with a feed-like start, then one byte every 0.1 s for as long as it is read."""

    def body():  # type: ignore[no-untyped-def]
        yield b'<?xml version="1.0"?><rss version="2.0"><channel>'
        while not req.stopping.wait(0.1):
            yield b" "

    req.send_body(body(), "application/rss+xml")


def test_a_feed_trickled_one_byte_at_a_time_is_cut_off_at_the_deadline(
    http_server: TestHTTPServer, tmp_path: Path
) -> None:
    url = http_server.add_route("/feed.xml", trickling_body)
    failure = ends(lambda: fetch_feed(url, settings_for(tmp_path, feed_timeout=1.0)))
    assert isinstance(failure, DownloadError), failure
    message = str(failure)
    assert "took longer than download.feed_timeout = 1 s overall" in message
    assert "\n" not in message
    assert http_server.count("/feed.xml") == 1  # the deadline covers the retries too


def test_trickled_headers_are_cut_off_at_the_deadline(tmp_path: Path) -> None:
    # A status line, then one header byte at a time: no read ever waits long, and no
    # body chunk ever arrives to check a clock on.
    with RawServer(trickle(b"HTTP/1.1 200 OK\r\nX-Slow: ")) as server:
        url = server.url_for("/episode.mp3")
        settings = settings_for(tmp_path, total_timeout=1.0)
        failure = ends(lambda: download(url, tmp_path / "media" / "ep.mp3", settings))
    assert isinstance(failure, DownloadError), failure
    assert "took longer than download.total_timeout = 1 s overall" in str(failure)
    assert failure.retryable
    assert not list((tmp_path / "media").glob("*"))  # no partial file left behind


def test_a_transcript_fetch_has_the_feed_deadline(
    http_server: TestHTTPServer, tmp_path: Path
) -> None:
    url = http_server.add_route("/transcript.vtt", trickling_body)
    failure = ends(lambda: fetch_bytes(url, settings_for(tmp_path, feed_timeout=1.0)))
    assert isinstance(failure, DownloadError), failure
    assert "download.feed_timeout" in str(failure)


def test_a_feed_over_the_cap_is_refused_naming_the_setting(
    http_server: TestHTTPServer, tmp_path: Path
) -> None:
    big = rss([item(f"g{n}", "x" * 200, f"https://example.com/{n}.mp3") for n in range(50)])
    url = http_server.add_bytes("/big.xml", big, "application/rss+xml")
    with pytest.raises(DownloadError) as caught:
        fetch_feed(url, settings_for(tmp_path, feed_max_bytes=4096))
    message = str(caught.value)
    assert "over the limit of 4.0 KiB (4096 bytes)" in message
    assert "download.feed_max_bytes" in message and "\n" not in message


def test_a_feed_without_content_length_stops_at_the_cap(
    http_server: TestHTTPServer, tmp_path: Path
) -> None:
    url = http_server.add_lying_length("/endless.xml", head=b"<rss>", content_type="text/xml")
    with pytest.raises(DownloadError, match=r"went past the limit of 4.0 KiB.*feed_max_bytes"):
        fetch_feed(url, settings_for(tmp_path, feed_max_bytes=4096))


@pytest.mark.parametrize("ok", [True])
def test_a_download_within_its_deadline_is_untouched(
    http_server: TestHTTPServer, tmp_path: Path, ok: bool
) -> None:
    # The deadline's timer must not cut a healthy call (or a later one on the client).
    feed = rss([item("g1", "One", "https://example.com/1.mp3")])
    url = http_server.add_bytes("/ok.xml", feed, "application/rss+xml")
    settings = settings_for(tmp_path, feed_timeout=30.0)
    for _ in range(3):
        assert fetch_feed(url, settings).body == feed
