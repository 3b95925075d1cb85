"""Local ``podmill worker`` processes for one A/B arm, started and stopped by the harness.

Worker settings (pool sizes, claim order, lease) live in the worker processes, not in
the API, so an A/B comparison of them has to control the workers: each arm starts its
own workers with its own arguments against the API's database, runs the workload, and
stops them before the next arm starts.
"""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from podmill.errors import PodmillError


@dataclass(frozen=True)
class Arm:
    """A named worker setting: ``small:--pool asr=1 --pool cpu=1``."""

    name: str
    args: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Arm:
        name, sep, rest = text.partition(":")
        name = name.strip()
        if not sep or not name or not name.replace("-", "").replace("_", "").isalnum():
            raise PodmillError(
                f"arm {text!r}: write NAME:WORKER-ARGS, e.g. 'small:--pool asr=1' "
                "(NAME: letters, digits, - and _)"
            )
        try:
            args = tuple(shlex.split(rest))
        except ValueError as exc:
            raise PodmillError(f"arm {text!r}: cannot split its arguments: {exc}") from None
        return cls(name, args)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SpawnedWorker:
    proc: subprocess.Popen[bytes]
    log_path: Path
    metrics_url: str | None

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class WorkerSet:
    """The workers of one arm."""

    arm: Arm
    workers: list[SpawnedWorker] = field(default_factory=list)

    @property
    def pids(self) -> set[int]:
        return {w.proc.pid for w in self.workers}

    @property
    def log_paths(self) -> list[Path]:
        return [w.log_path for w in self.workers]

    @property
    def metrics_urls(self) -> list[str]:
        return [w.metrics_url for w in self.workers if w.metrics_url]

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` s (a worker finishes its step first)."""
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for worker in self.workers:
            try:
                worker.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait(timeout=10)


def start_workers(arm: Arm, count: int, db: str, folder: Path) -> WorkerSet:
    """``count`` workers with the arm's arguments, logging to ``folder``; returns once
    each has printed its start line (registered with the database), or raises with the
    log of one that exited."""
    folder.mkdir(parents=True, exist_ok=True)
    started = WorkerSet(arm)
    try:
        for index in range(count):
            extra: list[str] = []
            # JSON logs for the error scan; a metrics port of its own for the aggregates
            if "--log-format" not in arm.args:
                extra += ["--log-format", "json"]
            metrics_url = None
            if "--metrics-port" not in arm.args:
                port = free_port()
                extra += ["--metrics-port", str(port)]
                metrics_url = f"http://127.0.0.1:{port}/metrics"
            log_path = folder / f"worker-{index}.log"
            with log_path.open("wb") as log_file:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "podmill", "worker", "--db", db, *extra, *arm.args],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            started.workers.append(SpawnedWorker(proc, log_path, metrics_url))
        for worker in started.workers:
            _wait_started(worker)
    except BaseException:
        started.stop(grace=5)
        raise
    return started


def _wait_started(worker: SpawnedWorker, timeout: float = 120.0) -> None:
    # `podmill worker` prints "worker ID on DB, pools …" once it has registered
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise PodmillError(
                f"a spawned worker exited with code {worker.proc.returncode} "
                f"(args: {' '.join(worker.proc.args[3:])}):\n{worker.log_tail()}"  # type: ignore[index]
            )
        text = worker.log_path.read_text(errors="replace")
        if ", pools " in text:
            return
        time.sleep(0.1)
    raise PodmillError(f"a spawned worker did not start in {timeout:g} s:\n{worker.log_tail()}")
