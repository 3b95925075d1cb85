"""An overall time limit for one outbound call (a download, a feed fetch, a webhook),
every try and redirect included.

Per-read timeouts alone do not bound a call: a server that sends one byte a second, in
the status line, the headers or the body, never trips them. A :class:`Deadline` records
the socket of every connection opened under it (through httpx's ``trace`` extension)
and, when the time is up, shuts those sockets down from a timer thread. The blocked read
fails at once and the caller turns that failure into :meth:`Deadline.error`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from podmill.errors import DownloadError


class Deadline:
    """``seconds`` from now; ``setting`` names the setting that gave them (for errors)."""

    def __init__(
        self, seconds: float, setting: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.setting = setting
        self._clock = clock
        self._at = clock() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False

    @property
    def expired(self) -> bool:
        return self._expired or self.remaining() <= 0

    def remaining(self) -> float:
        return self._at - self._clock()

    def error(self, url: str) -> DownloadError:
        """What a call stopped by this deadline raises (retryable: the server may be
        quicker later)."""
        return DownloadError(
            f"{url} took longer than {self.setting} = {self.seconds:g} s overall (every try "
            "included) and was stopped; the server may be slow or trickling data: try again "
            f"later or raise {self.setting}",
            retryable=True,
        )

    def check(self, url: str) -> None:
        if self.expired:
            raise self.error(url)

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpx ``trace`` extension: remember each new connection's socket."""
        if event != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets.append(sock)
            if self._expired:
                self._cut()

    @contextlib.contextmanager
    def enforced(self) -> Iterator[Deadline]:
        """While inside, a timer cuts this deadline's connections when it passes."""
        timer = threading.Timer(max(0.0, self.remaining()), self._expire)
        timer.daemon = True
        timer.start()
        try:
            yield self
        finally:
            timer.cancel()

    def _expire(self) -> None:
        self._expired = True
        self._cut()

    def _cut(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in another thread
