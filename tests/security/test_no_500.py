"""No 500 on bad input (docs/security.md): every route of a real ``podmill serve``,
walked from its own OpenAPI document, with malformed path and query values, odd content
types, malformed bodies and bad URLs. Each answer is a 4xx with the JSON error shape;
a URL that would only fail later (at download) is a 422 up front.

The probe prints its tally (tries, 4xx, 5xx) for the probe table in docs/security.md.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from podmill.platform import Platform
from podmill.settings import Settings

from support.api import ServerProcess, start_server

pytest.importorskip("fastapi", reason="pip install 'podmill[server]'")

# Values that are wrong for a path or query parameter of any type.
BAD_VALUES = [
    "",
    "0",
    "-1",
    "abc",
    "9" * 40,
    "nan",
    "inf",
    "1e309",
    "é",
    "\x00",
    "%ff",
    "a" * 5000,
    "2026-13-45",
    "[]",
    "../../etc/passwd",
]
# URLs that cannot be fetched whatever the network says: refused up front with a 422.
BAD_URLS = [
    "http://",
    "https://",
    "http://[::1",
    "http://[::1]x/",
    "https://exa mple.com/a.mp3",
    "http://example.com:99999/a.mp3",
    "http://example.com:0/a.mp3",
    "http://example.com:-1/a.mp3",
    "http://example.com:port/a.mp3",
    "http://" + "a" * 64 + ".example.com/a.mp3",
    "http://" + ("a" * 60 + ".") * 5 + "com/a.mp3",
    "https://example.com/" + "a" * 4100,
    "http://ex\u00e4m\u200bple..com/a.mp3",
    "http://\u2603\u2603..com/",
    "http://xn--zz.example.com/a.mp3",  # an A-label that is not punycode
    "http://exa%00mple.com/a.mp3",
    "http://user:pass@/a.mp3",
    "ftp://example.com/a.mp3",
    "javascript:alert(1)",
    "//example.com/a.mp3",
    "example.com/a.mp3",
    "http:\\\\example.com\\a.mp3",
    "http://example.com/a.mp3\r\nX-Injected: 1",
]
URL_FIELDS = {"url", "reply_to"}
ODD_BODIES = [
    ("text/plain", b"http://example.com/a.mp3"),
    ("application/xml", b"<job><url>http://example.com/a.mp3</url></job>"),
    ("multipart/form-data", b"--x\r\nContent-Disposition: form-data\r\n\r\nx\r\n--x--\r\n"),
    ("multipart/form-data; boundary=zz", b"--yy\r\ngarbage"),
    ("application/x-www-form-urlencoded", b"url=http%3A%2F%2Fexample.com%2Fa.mp3"),
    ("application/json", b"{not json"),
    ("application/json", b"\xff\xfe\x00\x01"),
    ("application/json", b"[]"),
    ("application/json", b"null"),
    ("application/json", b'"a string"'),
    ("application/json", b'{"url": {"nested": true}, "interval_seconds": "x"}'),
    ("application/json", b'{"unknown_field": 1}'),
    ("application/json; charset=latin-7", b"{}"),
    ("application/octet-stream", b"\x00" * 100),
    ("image/png", b"\x89PNG\r\n"),
]


@dataclass
class Tally:
    tries: int = 0
    statuses: Counter[int] | None = None

    def __post_init__(self) -> None:
        self.statuses = Counter()


TALLY = Tally()


@dataclass
class Probed:
    server: ServerProcess
    client: httpx.Client
    schema: dict[str, Any]


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probed]:
    root = tmp_path_factory.mktemp("no500")
    data_dir = root / "data"
    url = f"sqlite:///{root / 'podmill.db'}"
    server = start_server(url, data_dir, root / "server.log", args=("--no-background",))
    service = Platform(Settings(db=url, data_dir=data_dir))
    try:
        service.create_tenant("root", admin=True)
        key = service.create_key("root")[1]
    finally:
        service.close()
    client = server.client(key)
    try:
        schema = client.get("/openapi.json").json()
        yield Probed(server, client, schema)
    finally:
        client.close()
        server.stop()
        statuses = TALLY.statuses or Counter()
        fives = sum(n for status, n in statuses.items() if status >= 500)
        print(
            f"\nno-500 probe: {TALLY.tries} tries, {TALLY.tries - fives} passed, {fives} 5xx; "
            f"statuses {dict(sorted(statuses.items()))}"
        )


# GET /events is a server-sent event stream that stays open (heartbeats, no end) when its
# parameters are valid, so a probe of it would wait forever; its bad Last-Event-ID and
# query values are tested against a real server in tests/api/test_events.py.
ENDLESS = {"/events"}


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        if path in ENDLESS:
            continue
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, operation


def fill(path: str, value: str = "1") -> str:
    return re.sub(r"\{[^}]+\}", quote(value, safe=""), path)


def check(
    failures: list[str], response: httpx.Response, what: str, *, want: int | None = None
) -> None:
    """Tally ``response``; note it in ``failures`` unless it is a 4xx with the error shape
    (exactly ``want`` if given). Every try runs, so one test reports every bad answer."""
    TALLY.tries += 1
    assert TALLY.statuses is not None
    TALLY.statuses[response.status_code] += 1
    status = response.status_code
    if status >= 500 or (want is not None and status != want):
        failures.append(f"{what}: {status} {response.text[:200]}")
    elif status >= 400:
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if not (isinstance(body, dict) and set(body) == {"error", "detail"} and body["detail"]):
            failures.append(f"{what}: {status} without the error shape: {body!r:.200}")


def send(probed: Probed, method: str, url: str, **kw: Any) -> httpx.Response:
    try:
        return probed.client.request(method, url, **kw)
    except httpx.TransportError:
        # the server closes the connection after a 500: the next request finds it reset
        return probed.client.request(method, url, **kw)


def test_bad_path_parameters_are_4xx(probed: Probed) -> None:
    failures: list[str] = []
    for method, path, operation in operations(probed.schema):
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        for name in names:
            for value in BAD_VALUES:
                url = re.sub(r"\{" + name + r"\}", quote(value, safe=""), path)
                url = fill(url)
                check(failures, send(probed, method, url), f"{method} {url}")
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures)


def test_bad_query_parameters_are_4xx(probed: Probed) -> None:
    failures: list[str] = []
    for method, path, operation in operations(probed.schema):
        if method != "GET":
            continue
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
        for name in names:
            for value in BAD_VALUES:
                response = send(probed, method, fill(path), params={name: value})
                check(failures, response, f"{method} {path}?{name}={value[:40]!r}")
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures)


def test_odd_content_types_and_malformed_bodies_are_4xx(probed: Probed) -> None:
    failures: list[str] = []
    for method, path, _operation in operations(probed.schema):
        if method not in ("POST", "PUT", "PATCH"):
            continue
        for content_type, payload in ODD_BODIES:
            response = send(
                probed, method, fill(path), content=payload, headers={"Content-Type": content_type}
            )
            check(failures, response, f"{method} {path} {content_type} {payload[:30]!r}")
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures)


def url_operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    for method, path, operation in operations(schema):
        content = (operation.get("requestBody") or {}).get("content", {})
        body_schema = content.get("application/json", {}).get("schema", {})
        if "$ref" in body_schema:
            body_schema = schema["components"]["schemas"][body_schema["$ref"].split("/")[-1]]
        for field in URL_FIELDS & set(body_schema.get("properties", {})):
            yield method, path, field


def test_bad_urls_are_a_422_up_front(probed: Probed) -> None:
    failures: list[str] = []
    found = list(url_operations(probed.schema))
    assert {(p, f) for _m, p, f in found} >= {
        ("/jobs", "url"),
        ("/jobs", "reply_to"),
        ("/feeds", "url"),
        ("/subscriptions", "url"),
    }
    for method, path, field in found:
        for bad in BAD_URLS:
            body: dict[str, Any] = {field: bad}
            if field == "reply_to":
                body["episode_key"] = "0123456789abcdef"
            response = send(probed, method, fill(path), json=body)
            check(failures, response, f"{method} {path} {field}={bad[:60]!r}", want=422)
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures)


def test_odd_authorization_headers_are_401(probed: Probed) -> None:
    failures: list[str] = []
    for value in [
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "bearer x y z",
        "Bearer a\tb",
        "x" * 9000,
    ]:
        response = httpx.get(probed.server.url + "/me", headers={"Authorization": value})
        check(failures, response, f"Authorization: {value[:30]!r}", want=401)
    raw = httpx.get(probed.server.url + "/me", headers=[(b"Authorization", "Bearer ké".encode())])
    check(failures, raw, "a non-ASCII key")
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures)


def test_the_probe_walked_every_route(probed: Probed) -> None:
    routes = {(m, p) for m, p, _ in operations(probed.schema)}
    assert len(routes) >= 20, sorted(routes)
