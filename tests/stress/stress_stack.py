"""The stack the stress tests drive: a real ``podmill serve``, real ``podmill worker``
processes on a SQLite file, and ``podmill stress`` run as a subprocess against them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.api import ServerProcess
from support.cli import CliResult, run_cli
from support.workers import EngineDB, WorkerProcess, Workers

# Quick retries, so a step that fails on purpose is dead within a second.
FAST_RETRIES = {"PODMILL_PIPELINE__RETRY_DELAY_SCALE": "0.01"}


@dataclass
class Stack:
    server: ServerProcess
    db: EngineDB
    workers: Workers
    url: str
    key: str  # an admin's key (ab checks for other live workers with it)
    tmp_path: Path

    def worker(self, *args: str, **env: str) -> WorkerProcess:
        """A worker on no-op stages unless ``PODMILL_TEST_NOOP_STAGES="0"``."""
        return self.workers.start("--poll", "0.05", *args, env={**FAST_RETRIES, **env})

    def stop_workers(self) -> None:
        for worker in self.workers.started:
            if worker.proc.poll() is None:
                worker.proc.terminate()
                worker.wait(30)
        self.workers.started.clear()

    def job_count(self) -> int:
        return len(self.server.client(self.key).get("/jobs", params={"limit": 1000}).json())

    def stress(self, *args: str | Path, key: str | None = None, **env: str) -> CliResult:
        """``podmill stress ARGS --api URL`` with the key in PODMILL_API_KEY."""
        return run_cli(
            "stress",
            *args,
            "--api",
            self.server.url,
            "--poll",
            "0.1",
            env={"PODMILL_API_KEY": self.key if key is None else key, **env},
            timeout=300,
        )


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def is_png(path: Path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
