"""Outbound calls (feed polls, webhook deliveries) run concurrently, a few per host.

One slow host must not delay another tenant's feed or webhook: a :class:`HostPool` runs
calls on ``workers`` daemon threads, at most ``per_host`` at once for one host. A call
whose host is at its limit waits in the queue without holding a thread, so the threads
go to other hosts meanwhile. Every call has its own overall deadline (the feed fetch's,
the webhook's), so a thread is never held for ever.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


def host_of(url: str) -> str:
    """The host a call to ``url`` counts against (lower case; ``""`` if none)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


@dataclass
class _Call(Generic[T]):
    host: str
    work: Callable[[], T]
    future: Future[T]


class HostPool:
    """A small thread pool with a per-host limit. Threads start when calls come and end
    after ``idle_seconds`` without one; they are daemons: a call stuck on a dead host
    never holds up the process's exit."""

    def __init__(
        self, name: str, *, workers: int, per_host: int, idle_seconds: float = 60.0
    ) -> None:
        self.name = name
        self.workers = workers
        self.per_host = per_host
        self.idle_seconds = idle_seconds
        self._lock = threading.Condition()
        self._queue: deque[_Call[object]] = deque()
        self._busy: Counter[str] = Counter()
        self._threads: list[threading.Thread] = []

    def submit(self, host: str, work: Callable[[], T]) -> Future[T]:
        """Run ``work()`` when a thread and a slot for ``host`` are free."""
        future: Future[T] = Future()
        with self._lock:
            self._queue.append(_Call(host, work, future))  # type: ignore[arg-type]
            self._start_threads()
            self._lock.notify_all()
        return future

    def in_flight(self, host: str) -> int:
        with self._lock:
            return self._busy[host]

    def _start_threads(self) -> None:
        while len(self._threads) < self.workers:
            thread = threading.Thread(
                target=self._serve, name=f"podmill-{self.name}-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _next(self) -> _Call[object] | None:
        """The oldest queued call whose host has a free slot (caller holds the lock)."""
        for call in self._queue:
            if self._busy[call.host] < self.per_host:
                self._queue.remove(call)
                self._busy[call.host] += 1
                return call
        return None

    def _serve(self) -> None:
        while True:
            with self._lock:
                call = self._next()
                while call is None:
                    if not self._lock.wait(self.idle_seconds) and not self._queue:
                        self._threads.remove(threading.current_thread())
                        return  # idle: the next submit starts another
                    call = self._next()
            try:
                if call.future.set_running_or_notify_cancel():
                    try:
                        call.future.set_result(call.work())
                    except BaseException as exc:  # handed to whoever waits on the future
                        call.future.set_exception(exc)
            finally:
                with self._lock:
                    self._busy[call.host] -= 1
                    self._lock.notify_all()
