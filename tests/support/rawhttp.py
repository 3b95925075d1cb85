"""HTTP/1.1 over a raw socket, for attacks a well-behaved client cannot make: a huge
declared ``Content-Length`` with a few bytes sent, an endless chunked body, a body
abandoned half-way. And a process's memory peak, read from ``/proc``."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client got out before the answer came (or the socket broke)

    def json(self) -> Any:
        return json.loads(self.body)


def request_head(
    method: str, path: str, host: str, headers: dict[str, str], *, chunked: bool = False
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunks(payload: Iterable[bytes]) -> Iterator[bytes]:
    """``payload`` in chunked transfer coding (without the final zero-length chunk)."""
    for piece in payload:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"


def endless(size: int = 64 * 1024, total: int | None = None) -> Iterator[bytes]:
    """Blocks of ``size`` bytes, forever or until ``total`` bytes."""
    block = b"x" * size
    sent = 0
    while total is None or sent < total:
        yield block
        sent += size


def send(
    address: tuple[str, int], head: bytes, body: Iterable[bytes] = (), *, timeout: float = 30
) -> Answer:
    """Send ``head``, then ``body`` piece by piece until the server answers (or stops
    reading and closes); then read the answer. ``timeout`` is a safety bound only."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        sock.sendall(head)
        sent = 0
        for piece in body:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # the server answered before the body was done
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        return _read_answer(sock, sent)


def _read_answer(sock: socket.socket, sent: int) -> Answer:
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
        head, _, rest = data.partition(b"\r\n\r\n")
        headers = _headers(head)
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            piece = sock.recv(65536)
            if not piece:
                break
            rest += piece
    except ConnectionResetError:
        head, _, rest = data.partition(b"\r\n\r\n")
        headers = _headers(head)
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    assert status_line.startswith("HTTP/1.1 "), f"no HTTP answer: {data[:200]!r}"
    return Answer(int(status_line.split()[1]), headers, rest, sent)


def _headers(head: bytes) -> dict[str, str]:
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size so far (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def deleted_open_files(pid: int) -> list[str]:
    """Files the process holds open that were unlinked (a spooled temp file, say)."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.endswith(" (deleted)"):
            found.append(target)
    return found
