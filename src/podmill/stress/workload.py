"""Run a group of jobs through the API with a fixed number in flight.

Closed loop: ``concurrency`` client threads each upload a job, poll ``GET /jobs/{id}``
until it is terminal, and only then take the next one — as ``concurrency`` users
waiting for their results would. So "concurrency 4" means at most four jobs of this
run queued or running at any moment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from podmill.domain import JOB_TERMINAL
from podmill.errors import PodmillError
from podmill.stress.client import FatalApiError, StressClient
from podmill.stress.records import JobRecord
from podmill.stress.staging import StagedAudio


def _now() -> str:
    return datetime.now(UTC).isoformat()


def run_one(
    client: StressClient,
    audio: StagedAudio,
    index: int,
    group: str,
    *,
    poll: float,
    timeout: float,
    stop: threading.Event | None = None,
) -> JobRecord:
    """Upload one copy and follow its job to a terminal status (or ``timeout`` s, or
    until ``stop`` is set: the run was interrupted)."""
    stop = stop or threading.Event()
    record = JobRecord(index=index, group=group, audio_sha256=audio.sha256, status="submitting")
    record.submitted_at = _now()
    try:
        answer = client.upload(audio.path)
    except FatalApiError:
        raise  # the whole run is broken, not this job
    except PodmillError as exc:
        record.status, record.error = "submit_error", str(exc)
        return record
    record.created = bool(answer.get("created"))
    record.update_from_api(answer["job"])
    deadline = time.monotonic() + timeout
    while record.status not in JOB_TERMINAL:
        if time.monotonic() > deadline:
            record.error = f"not finished after {timeout:g} s (last status {record.status})"
            record.status = "timeout"
            break
        if stop.wait(poll):
            record.error = f"the run was interrupted (last status {record.status})"
            record.status = "interrupted"
            break
        try:
            record.update_from_api(client.job(int(record.id or 0)))
        except FatalApiError:
            raise
        except PodmillError as exc:
            # a 503 or a timed-out poll: the job may still finish; the deadline decides
            record.error = str(exc)
    record.observed_at = _now()
    return record


def run_group(
    client: StressClient,
    copies: Sequence[StagedAudio],
    group: str,
    concurrency: int,
    *,
    poll: float,
    timeout: float,
    first_index: int = 0,
) -> list[JobRecord]:
    """Every copy as one job, at most ``concurrency`` in flight; records in submit order."""
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="stress") as pool:
        futures = [
            pool.submit(
                run_one,
                client,
                audio,
                first_index + i,
                group,
                poll=poll,
                timeout=timeout,
                stop=stop,
            )
            for i, audio in enumerate(copies)
        ]
        try:
            return [f.result() for f in futures]
        except BaseException:
            # the API went away, the key was refused, or Ctrl-C / SIGTERM: start no more
            # jobs, and let the polling threads return now rather than at their deadline
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
