"""A raw TCP server on 127.0.0.1 for misbehaviours an HTTP server library won't do:
trickling the status line or headers, answering with something that is not HTTP,
hanging until told to go on.

    with RawServer(trickle(b"HTTP/1.1 200 OK\\r\\n", every=0.2)) as server:
        ... server.url + "/feed.xml" ...

A handler gets the accepted socket (the request already read) and the server's
``stopping`` event, which it should wait on instead of sleeping.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

Handler = Callable[[socket.socket, threading.Event], None]


class RawServer:
    __test__ = False

    def __init__(self, handler: Handler, host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.stopping = threading.Event()
        self.connections = 0
        self._lock = threading.Lock()
        self._sock = socket.create_server((host, 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def url_for(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:  # the request head (bodies are ignored)
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.handler(conn, self.stopping)


def trickle(head: bytes, filler: bytes = b"a", every: float = 0.2) -> Handler:
    """Send ``head``, then one ``filler`` every ``every`` seconds until the client goes."""

    def handle(conn: socket.socket, stopping: threading.Event) -> None:
        conn.sendall(head)
        while not stopping.wait(every):
            conn.sendall(filler)

    return handle


def answer(data: bytes) -> Handler:
    """Send ``data`` and close (a banner, a malformed answer)."""

    def handle(conn: socket.socket, stopping: threading.Event) -> None:
        conn.sendall(data)

    return handle


def hang_until(release: threading.Event, then: bytes, entered: threading.Event) -> Handler:
    """Set ``entered``, wait for ``release`` (or the server stopping), then send ``then``."""

    def handle(conn: socket.socket, stopping: threading.Event) -> None:
        entered.set()
        while not release.wait(0.05):
            if stopping.is_set():
                return
        conn.sendall(then)

    return handle
