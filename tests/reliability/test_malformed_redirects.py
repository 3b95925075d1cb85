"""A malformed redirect (no Location, garbage, a bad port, a loop) is a clear, final
error: asking again gets the same answer, so it is not retried as a network error and
the API answers 422 naming the problem."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from podmill.errors import DownloadError
from podmill.feeds.download import download, fetch_feed
from podmill.settings import Settings

from support.httpserver import TestHTTPServer

MALFORMED = {
    "no location": ({}, "has no Location header"),
    "empty location": ({"Location": "  "}, "has no Location header"),
    "garbage": ({"Location": "http://[::1/feed"}, "has a malformed Location header"),
    "bad port": ({"Location": "http://127.0.0.1:99999/feed"}, "has a malformed Location"),
    "port not a number": ({"Location": "http://127.0.0.1:http/feed"}, "malformed Location"),
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        allow_private_networks=True,
        download={"max_attempts": 4, "backoff_seconds": 0.01},
    )


@pytest.fixture
def redirects(http_server: TestHTTPServer) -> Iterator[TestHTTPServer]:
    for name, (headers, _) in MALFORMED.items():
        path = "/" + name.replace(" ", "-")
        http_server.add_route(
            path, lambda req, h=headers: req.send_body(b"", None, status=302, headers=h)
        )
    yield http_server


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_redirect_is_final_and_says_why(
    redirects: TestHTTPServer, settings: Settings, tmp_path: Path, name: str
) -> None:
    path = "/" + name.replace(" ", "-")
    with pytest.raises(DownloadError) as caught:
        download(redirects.url_for(path), tmp_path / "ep.mp3", settings)
    assert MALFORMED[name][1] in str(caught.value)
    assert "redirect from" in str(caught.value)
    assert not caught.value.retryable
    assert redirects.count(path) == 1  # not retried


def test_a_redirect_loop_is_final(http_server: TestHTTPServer, settings: Settings) -> None:
    http_server.add_redirect("/a", "/b")
    http_server.add_redirect("/b", "/a")
    with pytest.raises(DownloadError, match=r"redirect loop: .*/a leads back to .*/a") as caught:
        fetch_feed(http_server.url_for("/a"), settings)
    assert not caught.value.retryable
    assert (http_server.count("/a"), http_server.count("/b")) == (1, 1)


def test_a_cookie_bounce_is_not_a_loop(http_server: TestHTTPServer, settings: Settings) -> None:
    # Some hosts set a cookie and redirect to the same URL; the client sends it back.
    feed = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'

    def serve(req):  # type: ignore[no-untyped-def]
        if "seen=1" in (req.headers.get("Cookie") or ""):
            req.send_body(feed, "application/rss+xml")
        else:
            req.send_body(
                b"", None, status=302, headers={"Location": "/feed", "Set-Cookie": "seen=1"}
            )

    url = http_server.add_route("/feed", serve)
    assert fetch_feed(url, settings).body == feed
