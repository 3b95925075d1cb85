"""The safe downloader against a real HTTP server on 127.0.0.1, with real audio.

The only stand-ins are for what cannot happen here: hosts on other networks (an httpx
MockTransport records that no connection is attempted) and a user pressing Ctrl-C.
"""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from podmill.errors import DownloadError
from podmill.feeds.download import Downloaded, download, fetch_bytes
from podmill.settings import Settings

from support.httpserver import RequestHandler, TestHTTPServer
from support.paths import DEMO

MP3 = DEMO / "sonnet001.mp3"
FLAC = DEMO / "jfk.flac"
HTML = b"<!DOCTYPE html><html><head><title>Episode</title></head><body>Listen!</body></html>"


def settings_like(base: Settings, **download: object) -> Settings:
    """``base`` with some download settings changed."""
    changed = base.download.model_copy(update=download)
    return base.model_copy(update={"download": changed})


def public_only(base: Settings) -> Settings:
    return base.model_copy(update={"allow_private_networks": False})


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "media" / "episode.mp3"


class Recorder:
    """An httpx transport for hosts that must never be contacted."""

    def __init__(self, respond: httpx.Response | None = None) -> None:
        self.seen: list[str] = []
        self.respond = respond or httpx.Response(200, content=MP3.read_bytes())

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(str(request.url))
        return self.respond

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


# ----------------------------------------------------------------------------- success


def test_downloads_audio_atomically(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    url = http_server.add_file("/ep/sonnet001.mp3", MP3)

    got = download(url, dest, test_settings)

    data = MP3.read_bytes()
    assert got == Downloaded(
        path=dest,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        content_type="audio/mpeg",
        final_url=url,
        format="mp3",
    )
    assert dest.read_bytes() == data
    assert leftovers(dest.parent) == ["episode.mp3"]  # no .part files
    (request,) = http_server.requests
    assert request.headers["User-Agent"] == test_settings.download.user_agent


def test_flac_with_a_generic_content_type(
    http_server: TestHTTPServer, test_settings: Settings, tmp_path: Path
) -> None:
    url = http_server.add_file("/jfk", FLAC, content_type="application/octet-stream")
    got = download(url, tmp_path / "jfk.flac", test_settings)
    assert (got.format, got.size) == ("flac", FLAC.stat().st_size)


def test_a_failed_download_keeps_the_previous_file(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"previous download")
    http_server.add_status("/gone.mp3", 404)
    with pytest.raises(DownloadError):
        download(http_server.url + "/gone.mp3", dest, test_settings)
    assert dest.read_bytes() == b"previous download"
    assert leftovers(dest.parent) == ["episode.mp3"]


def test_uses_the_given_client_and_leaves_it_open(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    url = http_server.add_file("/a.mp3", MP3)
    with httpx.Client() as client:
        download(url, dest, test_settings, client=client)
        assert not client.is_closed


# ------------------------------------------------------------------------- not audio


def test_html_served_as_audio_is_refused(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    url = http_server.add_bytes("/ep.mp3", HTML, "text/html; charset=utf-8")

    with pytest.raises(DownloadError) as caught:
        download(url, dest, test_settings)

    assert str(caught.value) == (
        f"{url} did not return audio: got an HTML page "
        "(Content-Type: text/html; charset=utf-8); "
        "check that the enclosure URL points at the audio file"
    )
    assert not caught.value.retryable
    assert http_server.count("/ep.mp3") == 1
    assert leftovers(dest.parent) == []


def test_a_large_non_audio_body_is_refused_after_its_first_bytes(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    # An endless text body: sniffing stops it long before any size cap would.
    http_server.add_lying_length("/endless", head=b"Please log in. " * 1000, content_type=None)
    with pytest.raises(DownloadError, match=r"got plain text \(Content-Type: none\)"):
        download(http_server.url + "/endless", dest, test_settings)
    assert leftovers(dest.parent) == []


def test_unknown_binary_passes_only_under_an_audio_content_type(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    odd = bytes(range(1, 256)) * 4  # no signature we know
    http_server.add_bytes("/odd-audio", odd, "audio/x-something")
    http_server.add_bytes("/odd-binary", odd, "application/octet-stream")

    got = download(http_server.url + "/odd-audio", dest, test_settings)
    assert got.format is None  # the decoder will have the final word
    with pytest.raises(DownloadError, match=r"unrecognised binary data \(Content-Type"):
        download(http_server.url + "/odd-binary", dest, test_settings)


def test_expect_audio_false_accepts_anything(
    http_server: TestHTTPServer, test_settings: Settings, tmp_path: Path
) -> None:
    url = http_server.add_bytes("/page", HTML, "text/html")
    got = download(url, tmp_path / "page.html", test_settings, expect_audio=False)
    assert (got.format, got.path.read_bytes()) == (None, HTML)


# ------------------------------------------------------------------ statuses, retries


def test_404_is_not_retried(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    url = http_server.add_status("/missing.mp3", 404)
    with pytest.raises(DownloadError) as caught:
        download(url, dest, test_settings)
    assert str(caught.value) == f"HTTP 404 Not Found for {url}; check the enclosure URL"
    assert not caught.value.retryable
    assert http_server.count("/missing.mp3") == 1


def test_503_twice_then_success(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    url = http_server.add_flaky("/ep.mp3", MP3.read_bytes(), "audio/mpeg", failures=2)
    got = download(url, dest, test_settings)
    assert got.size == MP3.stat().st_size
    assert http_server.count("/ep.mp3") == 3
    assert leftovers(dest.parent) == ["episode.mp3"]


def test_persistent_500_gives_up_with_a_retryable_error(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    url = http_server.add_status("/ep.mp3", 500)
    delays: list[float] = []
    with pytest.raises(DownloadError) as caught:
        download(url, dest, test_settings, sleep=delays.append)
    assert caught.value.retryable
    assert str(caught.value).startswith(f"HTTP 500 Internal Server Error from {url}; ")
    assert "gave up after 3 attempts (download.max_attempts)" in str(caught.value)
    assert http_server.count("/ep.mp3") == test_settings.download.max_attempts
    # Exponential backoff from download.backoff_seconds (0.01), equal jitter (podmill.retry).
    assert len(delays) == 2
    assert 0.005 <= delays[0] <= 0.01 and 0.01 <= delays[1] <= 0.02
    assert leftovers(dest.parent) == []


def test_429_retry_after_is_honoured(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    url = http_server.add_flaky(
        "/ep.mp3", MP3.read_bytes(), "audio/mpeg", status=429, headers={"Retry-After": "3"}
    )
    delays: list[float] = []
    download(url, dest, test_settings, sleep=delays.append)
    assert delays == [3.0]
    assert http_server.count("/ep.mp3") == 2


def test_a_long_retry_after_is_not_waited_for(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    url = http_server.add_status("/ep.mp3", 503, headers={"Retry-After": "3600"})
    delays: list[float] = []
    with pytest.raises(DownloadError, match="the server asked to wait 3600 s") as caught:
        download(url, dest, test_settings, sleep=delays.append)
    assert caught.value.retryable
    assert delays == []
    assert http_server.count("/ep.mp3") == 1


def test_read_timeout_is_retried(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    settings = settings_like(test_settings, read_timeout=0.3)
    url = http_server.add_slow("/ep.mp3", MP3.read_bytes(), delay=2.0, times=1)
    got = download(url, dest, settings)
    assert got.size == MP3.stat().st_size
    assert http_server.count("/ep.mp3") == 2


def test_a_server_that_never_answers_times_out_retryably(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    settings = settings_like(test_settings, read_timeout=0.2, max_attempts=2)
    url = http_server.add_slow("/ep.mp3", MP3.read_bytes(), delay=5.0)
    with pytest.raises(DownloadError) as caught:
        download(url, dest, settings)
    assert str(caught.value).startswith(
        f"no answer from {url} within download.read_timeout = 0.2 s; gave up after 2 attempts"
    )
    assert caught.value.retryable
    assert http_server.count("/ep.mp3") == 2
    assert leftovers(dest.parent) == []


def test_connection_refused_is_retried_then_retryable(test_settings: Settings, dest: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    delays: list[float] = []
    with pytest.raises(DownloadError, match="cannot connect to") as caught:
        download(f"http://127.0.0.1:{port}/ep.mp3", dest, test_settings, sleep=delays.append)
    assert caught.value.retryable
    assert len(delays) == test_settings.download.max_attempts - 1


def test_truncated_body_is_an_error_and_leaves_nothing(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    data = MP3.read_bytes()
    url = http_server.add_truncated("/ep.mp3", data, "audio/mpeg", send_bytes=100_000)
    with pytest.raises(DownloadError) as caught:
        download(url, dest, test_settings)
    assert f"download truncated: got 100000 of {len(data)} bytes" in str(caught.value)
    assert caught.value.retryable
    assert http_server.count("/ep.mp3") == test_settings.download.max_attempts
    assert leftovers(dest.parent) == []


def test_truncated_once_then_complete(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    data = MP3.read_bytes()
    url = http_server.add_truncated("/ep.mp3", data, "audio/mpeg", send_bytes=50_000, times=1)
    got = download(url, dest, test_settings)
    assert got.sha256 == hashlib.sha256(data).hexdigest()
    assert http_server.count("/ep.mp3") == 2
    assert leftovers(dest.parent) == ["episode.mp3"]


def test_ctrl_c_mid_download_leaves_nothing(test_settings: Settings, dest: Path) -> None:
    class Interrupted(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield MP3.read_bytes()[:100_000]
            raise KeyboardInterrupt

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "audio/mpeg"}, stream=Interrupted())

    with (
        httpx.Client(transport=httpx.MockTransport(respond)) as client,
        pytest.raises(KeyboardInterrupt),
    ):
        download("http://127.0.0.1/ep.mp3", dest, test_settings, client=client)
    assert leftovers(dest.parent) == []


# ------------------------------------------------------------------------- size cap


def test_content_length_over_the_cap_is_refused_before_the_body(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    settings = settings_like(test_settings, max_bytes=100_000)
    data = FLAC.read_bytes()
    # Declares the full length but sends only 10 kB: reading the body would end in
    # "truncated", so the size error proves the header alone decided.
    url = http_server.add_truncated("/big.flac", data, "audio/flac", send_bytes=10_000)

    with pytest.raises(DownloadError) as caught:
        download(url, dest, settings)

    message = str(caught.value)
    assert f"({len(data)} bytes)" in message
    assert "over the limit of 97.7 KiB (100000 bytes)" in message
    assert "download.max_bytes" in message
    assert "PODMILL_DOWNLOAD__MAX_BYTES" in message
    assert "truncated" not in message
    assert not caught.value.retryable
    assert http_server.count("/big.flac") == 1
    assert leftovers(dest.parent) == []


def test_a_body_without_content_length_is_cut_off_at_the_cap(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    settings = settings_like(test_settings, max_bytes=300_000)
    http_server.add_lying_length("/endless.mp3", head=MP3.read_bytes()[:20_000])

    with pytest.raises(DownloadError) as caught:
        download(http_server.url + "/endless.mp3", dest, settings)

    assert "went past the limit of 293.0 KiB (300000 bytes)" in str(caught.value)
    assert "download.max_bytes" in str(caught.value)
    assert http_server.count("/endless.mp3") == 1
    assert leftovers(dest.parent) == []


# ------------------------------------------------------------------------ SSRF guard


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_is_refused_unless_private_networks_are_allowed(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path, host: str
) -> None:
    url = http_server.add_file("/ep.mp3", MP3).replace("127.0.0.1", host)

    with pytest.raises(DownloadError) as caught:
        download(url, dest, public_only(test_settings))

    message = str(caught.value)
    assert "loopback address" in message
    assert "127.0.0.1" in message or "::1" in message
    assert "allow_private_networks" in message
    assert not caught.value.retryable
    assert http_server.count("/ep.mp3") == 0
    assert leftovers(dest.parent) == []


@pytest.mark.parametrize(
    ("url", "address", "kind"),
    [
        ("http://10.1.2.3/ep.mp3", "10.1.2.3", "private"),
        ("http://192.168.0.10:8080/ep.mp3", "192.168.0.10", "private"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "cloud metadata"),
        ("http://[::1]/ep.mp3", "::1", "loopback"),
        ("http://[::ffff:127.0.0.1]/ep.mp3", "::ffff:7f00:1 (IPv4 127.0.0.1)", "loopback"),
        ("http://[2002:a00:1::]/ep.mp3", "2002:a00:1:: (IPv4 10.0.0.1)", "private"),
        ("http://[fd12:3456::1]/ep.mp3", "fd12:3456::1", "private"),
        ("http://[fe80::1]/ep.mp3", "fe80::1", "link-local"),
        ("http://0.0.0.0/ep.mp3", "0.0.0.0", "unspecified"),
        ("http://224.0.0.1/ep.mp3", "224.0.0.1", "multicast"),
        ("https://100.64.1.1/ep.mp3", "100.64.1.1", "non-public"),
    ],
)
def test_non_public_addresses_are_refused_without_connecting(
    test_settings: Settings, dest: Path, url: str, address: str, kind: str
) -> None:
    never = Recorder()
    with never.client() as client, pytest.raises(DownloadError) as caught:
        download(url, dest, public_only(test_settings), client=client)
    assert f"{address}, a {kind}" in str(caught.value)
    assert "allow_private_networks" in str(caught.value)
    assert never.seen == []


@pytest.fixture
def public_podcast_host(monkeypatch: pytest.MonkeyPatch) -> str:
    """``podcast.example`` resolves to a public address; other names resolve as usual."""
    real = socket.getaddrinfo

    def resolve(host: str, port: object, *args: object, **kwargs: object) -> list:
        if host == "podcast.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return "podcast.example"


@pytest.mark.parametrize(
    "target",
    ["http://127.0.0.1:8000/admin", "http://localhost/admin", "http://169.254.169.254/latest/"],
)
def test_a_public_url_redirecting_to_a_private_one_is_refused(
    test_settings: Settings, dest: Path, public_podcast_host: str, target: str
) -> None:
    origin = f"http://{public_podcast_host}/ep.mp3"
    hops = Recorder(httpx.Response(302, headers={"Location": target}))

    with hops.client() as client, pytest.raises(DownloadError) as caught:
        download(origin, dest, public_only(test_settings), client=client)

    message = str(caught.value)
    assert message.startswith(f"refusing to download {target} (redirected from {origin}): ")
    assert "allow_private_networks" in message
    assert hops.seen == [origin]  # the private target was never contacted


def test_every_hop_of_a_redirect_chain_is_checked(
    test_settings: Settings, dest: Path, public_podcast_host: str
) -> None:
    origin = f"http://{public_podcast_host}/ep.mp3"
    cdn = f"http://{public_podcast_host}/cdn/ep.mp3"
    seen: list[str] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        location = cdn if request.url.path == "/ep.mp3" else "http://[::1]:9000/internal"
        return httpx.Response(302, headers={"Location": location})

    with (
        httpx.Client(transport=httpx.MockTransport(respond)) as client,
        pytest.raises(DownloadError, match=r"::1, a loopback address"),
    ):
        download(origin, dest, public_only(test_settings), client=client)
    assert seen == [origin, cdn]


def test_redirect_chain_is_followed(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    final = http_server.add_file("/files/ep.mp3", MP3)
    http_server.add_redirect("/a", http_server.url + "/b", status=301)
    http_server.add_redirect("/b", "/c", status=307)
    http_server.add_redirect("/c", "files/ep.mp3")  # relative to /c

    got = download(http_server.url + "/a", dest, test_settings)

    assert got.final_url == final
    assert [r.path for r in http_server.requests] == ["/a", "/b", "/c", "/files/ep.mp3"]


def test_too_many_redirects(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    for n in range(7):
        http_server.add_redirect(f"/hop{n}", f"/hop{n + 1}")
    with pytest.raises(DownloadError, match=r"too many redirects \(more than 5\)"):
        download(http_server.url_for("/hop0"), dest, test_settings)
    assert http_server.count("/hop5") == 1
    assert http_server.count("/hop6") == 0


def test_a_redirect_to_a_local_file_is_refused(
    http_server: TestHTTPServer, test_settings: Settings, dest: Path
) -> None:
    url = http_server.add_redirect("/sneaky.mp3", MP3.as_uri())
    with pytest.raises(DownloadError, match=r"unsupported URL scheme 'file'.*redirected from"):
        download(url, dest, test_settings, allow_file_urls=True)
    assert leftovers(dest.parent) == []


# --------------------------------------------------------------- local files, schemes


@pytest.mark.parametrize("as_uri", [True, False])
def test_local_files_are_refused_unless_allowed(
    test_settings: Settings, dest: Path, as_uri: bool
) -> None:
    url = MP3.as_uri() if as_uri else str(MP3)
    with pytest.raises(DownloadError, match="refusing to read local file"):
        download(url, dest, test_settings)


@pytest.mark.parametrize("as_uri", [True, False])
def test_local_files_are_copied_when_allowed(
    test_settings: Settings, tmp_path: Path, as_uri: bool
) -> None:
    dest = tmp_path / "media" / "jfk.flac"
    url = FLAC.as_uri() if as_uri else str(FLAC)

    got = download(url, dest, test_settings, allow_file_urls=True)

    assert got.sha256 == hashlib.sha256(FLAC.read_bytes()).hexdigest()
    assert (got.format, got.content_type, got.final_url) == ("flac", "audio/flac", FLAC.as_uri())
    assert leftovers(dest.parent) == ["jfk.flac"]


def test_local_file_checks(test_settings: Settings, tmp_path: Path, dest: Path) -> None:
    missing = tmp_path / "nope.mp3"
    with pytest.raises(DownloadError, match=re.escape(f"file not found: {missing}")):
        download(missing.as_uri(), dest, test_settings, allow_file_urls=True)

    page = tmp_path / "page.mp3"
    page.write_bytes(HTML)
    with pytest.raises(DownloadError, match="did not return audio: got an HTML page"):
        download(str(page), dest, test_settings, allow_file_urls=True)

    small = settings_like(test_settings, max_bytes=1000)
    with pytest.raises(DownloadError, match=r"over the limit of 1000 bytes"):
        download(str(MP3), dest, small, allow_file_urls=True)
    assert leftovers(dest.parent) == []


@pytest.mark.parametrize("url", ["ftp://example.com/ep.mp3", "gopher://example.com/1"])
def test_other_schemes_are_refused(test_settings: Settings, dest: Path, url: str) -> None:
    scheme = url.split(":")[0]
    with pytest.raises(DownloadError, match=f"unsupported URL scheme '{scheme}'"):
        download(url, dest, test_settings, allow_file_urls=True)


# ------------------------------------------------------------------------ fetch_bytes


def test_fetch_bytes_follows_redirects_and_sends_accept(
    http_server: TestHTTPServer, test_settings: Settings
) -> None:
    feed = (DEMO / "feed.xml").read_bytes()
    final = http_server.add_bytes("/feed.xml", feed, "application/rss+xml")
    http_server.add_redirect("/old-feed", "/feed.xml", status=301)

    body, content_type, final_url = fetch_bytes(
        http_server.url + "/old-feed", test_settings, accept="application/rss+xml"
    )

    assert (body, content_type, final_url) == (feed, "application/rss+xml", final)
    assert http_server.requests[-1].headers["Accept"] == "application/rss+xml"


def test_fetch_bytes_decompresses_gzip_and_caps_the_result(
    http_server: TestHTTPServer, test_settings: Settings
) -> None:
    import gzip

    text = b"<rss>" + b"x" * 200_000 + b"</rss>"

    def gzipped(req: RequestHandler) -> None:
        req.send_body(gzip.compress(text), "text/xml", headers={"Content-Encoding": "gzip"})

    url = http_server.add_route("/feed", gzipped)
    assert fetch_bytes(url, test_settings)[0] == text
    with pytest.raises(DownloadError, match=r"went past the limit of 97\.7 KiB"):
        fetch_bytes(url, test_settings, max_bytes=100_000)


def test_fetch_bytes_guards_like_download(
    http_server: TestHTTPServer, test_settings: Settings, tmp_path: Path
) -> None:
    missing = http_server.add_status("/t.vtt", 404)
    with pytest.raises(DownloadError, match=r"HTTP 404 Not Found for .*; check the URL$"):
        fetch_bytes(missing, test_settings)
    with pytest.raises(DownloadError, match="loopback"):
        fetch_bytes(http_server.url + "/t.vtt", public_only(test_settings))
    with pytest.raises(DownloadError, match="refusing to read local file"):
        fetch_bytes((DEMO / "feed.xml").as_uri(), test_settings)

    body, _content_type, final_url = fetch_bytes(
        (DEMO / "feed.xml").as_uri(), test_settings, allow_file_urls=True
    )
    assert body == (DEMO / "feed.xml").read_bytes()
    assert final_url == (DEMO / "feed.xml").as_uri()
