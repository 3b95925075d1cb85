"""Helpers for the API tests (tests/api): a tenant's client, a live feed, error checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from support.feeds import item, rss
from support.httpserver import RequestHandler, TestHTTPServer
from support.paths import DEMO


def assert_error(response: Any, status: int, error: str | None = None) -> dict[str, Any]:
    """``response`` is ``status`` with the JSON error shape ``{"error", "detail"}``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert body["detail"], body
    if error is not None:
        assert body["error"] == error, body
    return body


@dataclass
class Caller:
    """A tenant with a key, and a TestClient that sends it."""

    name: str
    key: str
    client: Any

    def get(self, url: str, **kw: object):  # type: ignore[no-untyped-def]
        return self.client.get(url, headers=self._auth(kw), **kw)

    def post(self, url: str, **kw: object):  # type: ignore[no-untyped-def]
        return self.client.post(url, headers=self._auth(kw), **kw)

    def delete(self, url: str, **kw: object):  # type: ignore[no-untyped-def]
        return self.client.delete(url, headers=self._auth(kw), **kw)

    def _auth(self, kw: dict[str, object]) -> dict[str, str]:
        headers = dict(kw.pop("headers", None) or {})  # type: ignore[call-overload]
        return {"Authorization": f"Bearer {self.key}", **headers}


class LiveFeed:
    """A feed on the test HTTP server that can grow, fail and answer conditional GETs.

    Items point at the demo MP3 served beside it. The ETag changes when the items do;
    a request carrying the current ETag gets 304. ``failing = True`` answers 500.
    """

    def __init__(self, server: TestHTTPServer, path: str = "/feed.xml") -> None:
        self.server = server
        self.path = path
        self.items: list[str] = []
        self.failing = False
        self.not_modified = 0
        self.audio_url = server.add_file(f"{path}.audio/ep.mp3", DEMO / "sonnet001.mp3")
        self.url = server.add_route(path, self._serve)

    def add_item(self, n: int) -> str:
        """Item ``n`` (guid ``item-n``), newest last; returns its audio URL."""
        url = self.server.add_file(f"{self.path}.audio/ep{n}.mp3", DEMO / "sonnet001.mp3")
        date = f"Mon, {n + 1:02d} Nov 2026 10:00:00 GMT"
        self.items.append(item(f"item-{n}", f"Episode {n}", url, date=date))
        return url

    @property
    def etag(self) -> str:
        return f'"v{len(self.items)}"'

    def _serve(self, req: RequestHandler) -> None:
        if self.failing:
            req.send_body(b"broken\n", "text/plain", status=500)
        elif req.headers.get("If-None-Match") == self.etag:
            self.not_modified += 1
            req.send_body(b"", None, status=304, headers={"ETag": self.etag})
        else:
            req.send_body(rss(self.items), "application/rss+xml", headers={"ETag": self.etag})
