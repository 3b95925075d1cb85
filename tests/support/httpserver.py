"""A real HTTP server on 127.0.0.1 for tests, with ready-made misbehaviours.

It runs :class:`http.server.ThreadingHTTPServer` in a daemon thread, so anything that
speaks HTTP can use it: httpx in-process, or ``podmill run`` in a subprocess.

    server = TestHTTPServer().start()
    server.add_file("/ep1.mp3", Path("tests/fixtures/audio/sonnet001.mp3"))
    server.add_flaky("/feed.xml", feed_bytes, "application/rss+xml", failures=2)
    ... server.url + "/ep1.mp3" ...
    assert server.count("/feed.xml") == 3
    server.stop()

Routes match the path without its query string. Unknown paths answer 404. Every
request is logged in :attr:`TestHTTPServer.requests`. Handlers that outlive a client
(slow or endless bodies) stop quietly when the client goes away or the server stops.
"""

from __future__ import annotations

import contextlib
import mimetypes
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with the query string, as sent
    headers: dict[str, str]


class RequestHandler(BaseHTTPRequestHandler):
    """One request. Route handlers receive this object and answer through it."""

    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: the body ends at close

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    @property
    def route_path(self) -> str:
        return urlsplit(self.path).path

    @property
    def is_head(self) -> bool:
        return self.command == "HEAD"

    @property
    def stopping(self) -> threading.Event:
        """Set when the server shuts down; wait on it instead of ``time.sleep``."""
        return self.server.stopping

    def send_body(
        self,
        data: bytes | Iterable[bytes],
        content_type: str | None = None,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_length: int | None = None,
    ) -> None:
        """Answer with ``data``. Content-Length is ``len(data)`` for bytes, else
        ``content_length`` (omitted when None). HEAD gets the headers only."""
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        if isinstance(data, bytes) and content_length is None:
            content_length = len(data)
        if content_length is not None:
            self.send_header("Content-Length", str(content_length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.is_head:
            return
        for chunk in [data] if isinstance(data, bytes) else data:
            self.wfile.write(chunk)
        self.wfile.flush()

    def _dispatch(self) -> None:
        self.server.owner._record(self)
        route = self.server.owner._routes.get(self.route_path)
        if route is None:
            self.send_body(b"not found\n", "text/plain", status=404)
            return
        route(self)

    def handle(self) -> None:
        # The client hung up: expected in tests of timeouts, caps and aborts.
        with contextlib.suppress(ConnectionError, TimeoutError):
            super().handle()

    def log_message(self, format: str, *args: object) -> None:
        pass  # tests assert on server.requests instead


RouteHandler = Callable[[RequestHandler], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: TestHTTPServer
    stopping: threading.Event

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class TestHTTPServer:
    """A threaded HTTP server bound to 127.0.0.1 on a free port."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self) -> None:
        self._routes: dict[str, RouteHandler] = {}
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> TestHTTPServer:
        server = _Server(("127.0.0.1", 0), RequestHandler)
        server.owner = self
        server.stopping = threading.Event()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> TestHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:41234``."""
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url_for(self, path: str) -> str:
        return self.url + path

    # -- the request log

    def _record(self, handler: RequestHandler) -> None:
        with self._lock:
            self.requests.append(
                RecordedRequest(handler.command, handler.path, dict(handler.headers.items()))
            )

    def count(self, path: str, method: str | None = None) -> int:
        """How many requests reached ``path`` (query string ignored)."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if urlsplit(r.path).path == path and (method is None or r.method == method)
            )

    # -- routes

    def add_route(self, path: str, handler: RouteHandler) -> str:
        """Serve ``path`` with ``handler(request)``. Returns the full URL (only the path
        while the server is not started)."""
        self._routes[path] = handler
        return self.url_for(path) if self._server is not None else path

    def add_bytes(
        self,
        path: str,
        data: bytes,
        content_type: str | None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        return self.add_route(path, lambda req: req.send_body(data, content_type, headers=headers))

    def add_file(self, path: str, file_path: Path, content_type: str | None = None) -> str:
        """Serve a file from disk (read at request time, streamed in chunks)."""
        file_path = Path(file_path)
        content_type = content_type or mimetypes.guess_type(file_path.name)[0]

        def serve(req: RequestHandler) -> None:
            size = file_path.stat().st_size
            with file_path.open("rb") as handle:
                chunks = iter(lambda: handle.read(_CHUNK), b"")
                req.send_body(chunks, content_type, content_length=size)

        return self.add_route(path, serve)

    def add_status(
        self,
        path: str,
        code: int,
        body: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Always answer ``code`` (e.g. 404, 500, or 429 with ``Retry-After``)."""
        text = body or f"status {code}\n".encode()
        return self.add_route(
            path, lambda req: req.send_body(text, "text/plain", status=code, headers=headers)
        )

    def add_flaky(
        self,
        path: str,
        data: bytes,
        content_type: str | None,
        *,
        failures: int = 1,
        status: int = 503,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Answer ``status`` (with ``headers``) to the first ``failures`` requests, then
        serve ``data``."""
        seen = _Counter()

        def serve(req: RequestHandler) -> None:
            if seen.next() <= failures:
                req.send_body(b"try again\n", "text/plain", status=status, headers=headers)
            else:
                req.send_body(data, content_type)

        return self.add_route(path, serve)

    def add_truncated(
        self,
        path: str,
        data: bytes,
        content_type: str | None,
        *,
        send_bytes: int,
        times: int | None = None,
    ) -> str:
        """Declare ``len(data)`` as Content-Length but send ``send_bytes`` and close.
        With ``times``, only the first ``times`` requests are cut short."""
        seen = _Counter()

        def serve(req: RequestHandler) -> None:
            if times is not None and seen.next() > times:
                req.send_body(data, content_type)
            else:
                req.send_body(data[:send_bytes], content_type, content_length=len(data))

        return self.add_route(path, serve)

    def add_slow(
        self,
        path: str,
        data: bytes,
        delay: float,
        content_type: str | None = "application/octet-stream",
        *,
        times: int | None = None,
    ) -> str:
        """Wait ``delay`` seconds before answering (a read timeout for the client).
        With ``times``, only the first ``times`` requests are slow."""
        seen = _Counter()

        def serve(req: RequestHandler) -> None:
            if (times is None or seen.next() <= times) and req.stopping.wait(delay):
                return
            req.send_body(data, content_type)

        return self.add_route(path, serve)

    def add_redirect(self, path: str, location: str, status: int = 302) -> str:
        """Redirect to ``location`` (absolute or relative)."""
        return self.add_route(
            path,
            lambda req: req.send_body(b"", None, status=status, headers={"Location": location}),
        )

    def add_lying_length(
        self,
        path: str,
        total_bytes: int | None = None,
        *,
        head: bytes = b"",
        content_type: str | None = "audio/mpeg",
    ) -> str:
        """Send no Content-Length and stream ``head`` then zeros, up to ``total_bytes``
        (``None``: until the client gives up). Exercises caps that must hold while
        streaming; pass a real audio ``head`` to get past sniffing."""

        def body(req: RequestHandler) -> Iterable[bytes]:
            sent = 0
            if head:
                yield head
                sent = len(head)
            zeros = bytes(_CHUNK)
            while (total_bytes is None or sent < total_bytes) and not req.stopping.is_set():
                chunk = zeros if total_bytes is None else zeros[: total_bytes - sent]
                yield chunk
                sent += len(chunk)

        return self.add_route(path, lambda req: req.send_body(body(req), content_type))


class _Counter:
    """A thread-safe request counter for one route."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._value += 1
            return self._value
