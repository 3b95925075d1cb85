"""Bounded memory before authentication (docs/security.md): request bodies against a
real ``podmill serve`` process, over raw sockets.

A declared 2 GB body, an endless chunked stream and an abandoned upload are refused or
dropped without the server reading, holding or keeping more than its limit; a stranger's
body is a 401 before a byte of it is read.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from podmill.platform import Platform
from podmill.settings import Settings

from support.api import ServerProcess, assert_error, start_server
from support.rawhttp import (
    chunks,
    deleted_open_files,
    endless,
    peak_rss_bytes,
    request_head,
    send,
)
from support.workers import wait_for

pytest.importorskip("fastapi", reason="pip install 'podmill[server]'")

UPLOAD_CAP = 128 * 1024**2
BODY_CAP = 1024**2  # server.max_body_bytes, the default
GIB = 1024**3
BOUNDARY = "podmillboundary"


@dataclass
class Served:
    server: ServerProcess
    key: str
    data_dir: Path
    tmp_dir: Path

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", int(self.server.url.rsplit(":", 1)[1]))

    @property
    def pid(self) -> int:
        return self.server.proc.pid

    def head(self, path: str, *, key: str | None = None, chunked: bool = False, **headers: str):
        named = {k.replace("_", "-"): v for k, v in headers.items()}
        if key:
            named["Authorization"] = f"Bearer {key}"
        return request_head("POST", path, self.address[0], named, chunked=chunked)

    def leftovers(self) -> list[str]:
        """Upload files in the data dir, temp files, and unlinked files still open."""
        uploads = self.data_dir / "uploads"
        files = [str(p) for p in uploads.iterdir()] if uploads.exists() else []
        files += [str(p) for p in self.tmp_dir.iterdir()]
        return files + deleted_open_files(self.pid)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("bodies")
    data_dir, tmp_dir = root / "data", root / "tmp"
    tmp_dir.mkdir()
    url = f"sqlite:///{root / 'podmill.db'}"
    env = {"PODMILL_SERVER__MAX_UPLOAD_BYTES": str(UPLOAD_CAP), "TMPDIR": str(tmp_dir)}
    server = start_server(url, data_dir, root / "server.log", env)
    service = Platform(Settings(db=url, data_dir=data_dir))
    try:
        service.create_tenant("alice")
        key = service.create_key("alice")[1]
    finally:
        service.close()
    try:
        yield Served(server, key, data_dir, tmp_dir)
    finally:
        server.stop()


def multipart_opening() -> bytes:
    return (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.mp3"\r\n'
        "Content-Type: audio/mpeg\r\n\r\n"
    ).encode()


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


# ------------------------------------------------------------ declared Content-Length


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/jobs", MULTIPART), ("/jobs", "application/json"), ("/feeds", "application/json")],
)
def test_a_declared_2gb_body_from_a_stranger_is_a_401_unread(
    served: Served, path: str, content_type: str
) -> None:
    head = served.head(path, Content_Type=content_type, Content_Length=str(2 * GIB))
    answer = send(served.address, head, [b"{}" * 8])
    assert answer.status == 401, answer.body
    assert answer.json()["error"] == "unauthorized"
    assert answer.headers["connection"] == "close"


@pytest.mark.parametrize(
    ("path", "content_type", "setting"),
    [
        ("/jobs", MULTIPART, "server.max_upload_bytes"),
        ("/jobs", "application/json", "server.max_body_bytes"),
        ("/subscriptions", "application/json", "server.max_body_bytes"),
    ],
)
def test_a_declared_2gb_body_is_a_413_unread(
    served: Served, path: str, content_type: str, setting: str
) -> None:
    head = served.head(path, key=served.key, Content_Type=content_type, Content_Length=str(2 * GIB))
    answer = send(served.address, head, [b"{}" * 8])
    assert answer.status == 413, answer.body
    body = answer.json()
    assert body["error"] == "too_large"
    assert setting in body["detail"]


# ------------------------------------------------------------------- chunked streams


def test_a_strangers_endless_chunked_upload_is_a_401_before_it_is_read(served: Served) -> None:
    head = served.head("/jobs", chunked=True, Content_Type=MULTIPART)
    answer = send(served.address, head, chunks(itertools.chain([multipart_opening()], endless())))
    assert answer.status == 401, answer.body
    # the server answered on the headers: what got out is what the sockets buffer
    assert answer.sent < 32 * 1024**2


def test_an_endless_chunked_json_body_is_a_413_past_max_body_bytes(served: Served) -> None:
    head = served.head("/feeds", key=served.key, chunked=True, Content_Type="application/json")
    answer = send(served.address, head, chunks(endless(total=GIB)))
    assert answer.status == 413, answer.body
    assert answer.json()["error"] == "too_large"
    assert BODY_CAP < answer.sent < BODY_CAP + 32 * 1024**2


def test_an_endless_chunked_upload_is_a_413_with_bounded_memory_and_nothing_kept(
    served: Served,
) -> None:
    # warm up the upload path (imports, buffers), so the peak measures the stream only
    warm = httpx.post(
        served.server.url + "/jobs",
        headers={"Authorization": f"Bearer {served.key}"},
        files={"file": ("note.txt", b"not audio " * 1000, "text/plain")},
    )
    assert_error(warm, 415, "not_audio")
    before = peak_rss_bytes(served.pid)

    head = served.head("/jobs", key=served.key, chunked=True, Content_Type=MULTIPART)
    body = chunks(itertools.chain([multipart_opening()], endless(total=GIB)))
    answer = send(served.address, head, body, timeout=120)

    growth = peak_rss_bytes(served.pid) - before
    print(f"\nchunked upload refused after {answer.sent} bytes; peak RSS +{growth >> 20} MiB")
    assert answer.status == 413, answer.body
    assert "server.max_upload_bytes" in answer.json()["detail"]
    assert UPLOAD_CAP < answer.sent < UPLOAD_CAP + 32 * 1024**2
    assert growth < 100 * 1024**2, f"peak RSS grew {growth >> 20} MiB for a 1 GiB stream"
    wait_for(
        lambda: not served.leftovers(),
        30,
        "the refused upload's files to go",
        detail=lambda: str(served.leftovers()),
    )


def test_an_upload_abandoned_half_way_leaves_nothing_on_disk(served: Served) -> None:
    head = served.head("/jobs", key=served.key, chunked=True, Content_Type=MULTIPART)
    body = list(chunks([multipart_opening(), *endless(total=8 * 1024**2)]))
    address = served.address
    import socket

    with socket.create_connection(address) as sock:
        sock.sendall(head)
        for piece in body:
            sock.sendall(piece)
    # the client went away mid-body: the server drops what it spooled
    wait_for(
        lambda: not served.leftovers(),
        30,
        "the abandoned upload's files to go",
        detail=lambda: str(served.leftovers()),
    )
    assert httpx.get(served.server.url + "/health").status_code == 200


# ------------------------------------------------------- bad bodies: 4xx, never a 500


@pytest.mark.parametrize(
    ("content_type", "payload", "status", "error"),
    [
        ("application/json", b"{not json", 400, "invalid_json"),
        ("application/json", b"\xff\xfe\x00garbage", 400, "invalid_json"),
        ("application/json", b"[1, 2, 3]", 422, "invalid_request"),
        ("application/json", b'{"url": 5}', 422, "invalid_url"),
        ("text/plain", b"http://example.com/a.mp3", 415, "unsupported_media_type"),
        ("application/xml", b"<url>x</url>", 415, "unsupported_media_type"),
        ("application/x-www-form-urlencoded", b"url=x", 415, "unsupported_media_type"),
        ("multipart/form-data", b"--x\r\n\r\n", 400, "invalid_upload"),
        (MULTIPART, b"--nope\r\ngarbage", 400, "invalid_upload"),
        (MULTIPART, f"--{BOUNDARY}--\r\n".encode(), 422, "invalid_upload"),
    ],
)
def test_a_malformed_body_is_a_4xx_with_the_error_shape(
    served: Served, content_type: str, payload: bytes, status: int, error: str
) -> None:
    answer = httpx.post(
        served.server.url + "/jobs",
        headers={"Authorization": f"Bearer {served.key}", "Content-Type": content_type},
        content=payload,
    )
    assert_error(answer, status, error)
