"""Job errors and API answers never quote bytes of a fetched response: with private
networks allowed, a tenant must not be able to read an internal page, a service's
banner or a status line through podmill's error messages. Each server below hides
:data:`SECRET` in what it sends; the errors say what was wrong in words instead."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="pip install 'podmill[server]'")

from fastapi.testclient import TestClient

from podmill.api.app import create_app
from podmill.api.webhooks import Notifier
from podmill.errors import DownloadError
from podmill.feeds.download import download
from podmill.pipeline.dag import STAGE_NAMES
from podmill.platform import Platform
from podmill.settings import Settings

from support.api import Caller, make_caller, make_settings
from support.feeds import rss
from support.httpserver import TestHTTPServer
from support.rawserver import RawServer, answer

SECRET = "s3cr3t-7f3a"
HTML = (
    f"<!DOCTYPE html><html><head><title>Intranet {SECRET}</title>"
    f'<link rel="alternate" type="application/rss+xml" href="/{SECRET}.xml"></head>'
    f"<body>{SECRET}</body></html>"
).encode()

# Raw answers: a bad status line, a service banner, a reason phrase, broken chunks.
RAW_ANSWERS = {
    "reason phrase": f"HTTP/1.1 404 {SECRET}\r\nContent-Length: 0\r\n\r\n".encode(),
    "service banner": f"SSH-2.0-OpenSSH_{SECRET}\r\n".encode(),
    "redis banner": f"-ERR wrong number of arguments {SECRET}\r\n".encode(),
    "chunk header": (f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{SECRET}\r\n".encode()),
    "header line": f"HTTP/1.1 200 OK\r\n{SECRET}\r\n\r\n".encode(),
}


@pytest.fixture
def api(tmp_path: Path, db_url: str) -> Iterator[tuple[Platform, Caller]]:
    settings = make_settings(tmp_path, db_url)
    platform = Platform(settings)
    with TestClient(create_app(settings)) as client:
        yield platform, make_caller(platform, client, "mallory")
    platform.close()


def assert_no_secret(text: str) -> None:
    assert SECRET not in text, text
    assert "\n" not in text.strip(), text


@pytest.mark.parametrize(
    "document",
    [
        HTML,
        f'<?xml version="1.0"?><{SECRET}/>'.encode(),
        rss([], title=SECRET),  # a feed with no items, titled with the secret
    ],
    ids=["html page", "xml root", "feed title"],
)
def test_subscribing_to_a_document_does_not_quote_it(
    api: tuple[Platform, Caller], http_server: TestHTTPServer, document: bytes
) -> None:
    _platform, mallory = api
    url = http_server.add_bytes("/internal", document, "text/html")
    response = mallory.post("/subscriptions", json={"url": url})
    assert response.status_code == 422, response.text
    assert_no_secret(response.json()["detail"])


@pytest.mark.parametrize("name", list(RAW_ANSWERS))
def test_subscribing_to_a_non_http_service_does_not_quote_it(
    api: tuple[Platform, Caller], name: str
) -> None:
    _platform, mallory = api
    with RawServer(answer(RAW_ANSWERS[name])) as server:
        response = mallory.post("/subscriptions", json={"url": server.url_for("/feed")})
    assert response.status_code == 422, response.text
    assert_no_secret(response.json()["detail"])


def test_a_job_url_that_is_a_feed_does_not_quote_its_title(
    api: tuple[Platform, Caller], http_server: TestHTTPServer
) -> None:
    _platform, mallory = api
    url = http_server.add_bytes("/show", rss([], title=SECRET), "application/rss+xml")
    response = mallory.post("/jobs", json={"url": url})
    assert response.status_code == 422, response.text
    assert_no_secret(response.json()["detail"])


def test_a_download_error_says_what_came_back_in_words(
    http_server: TestHTTPServer, tmp_path: Path
) -> None:
    url = http_server.add_bytes("/ep.mp3", f"token={SECRET}\n".encode(), "text/plain")
    settings = Settings(data_dir=tmp_path, allow_private_networks=True)
    with pytest.raises(DownloadError) as caught:
        download(url, tmp_path / "ep.mp3", settings)
    assert_no_secret(str(caught.value))
    assert "got plain text (Content-Type: text/plain)" in str(caught.value)


@pytest.mark.parametrize("name", ["service banner", "header line", "reason phrase"])
def test_a_webhook_failure_record_does_not_quote_the_receiver(
    api: tuple[Platform, Caller], name: str
) -> None:
    platform, mallory = api
    with RawServer(answer(RAW_ANSWERS[name])) as hook:
        response = mallory.post(
            "/jobs", json={"url": "http://127.0.0.1:9/a.mp3", "reply_to": hook.url_for("/hook")}
        )
        job_id = response.json()["job"]["id"]
        while platform.store.job(job_id)["status"] != "done":
            for step in platform.store.claim("test-worker", STAGE_NAMES, limit=10):
                platform.store.complete(step.step_id, step.lease_token)
        [delivery] = Notifier(platform).deliver_due()
    assert not delivery.delivered
    assert_no_secret(delivery.error or "")
