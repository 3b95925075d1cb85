"""Structured logs: the JSON and text formats, and the step context across threads."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from podmill.cli import app
from podmill.domain import Episode
from podmill.engine.store import Store
from podmill.engine.worker import Worker
from podmill.errors import PodmillError
from podmill.obs.logging import (
    ContextFilter,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    propagating,
    resolve_format,
    step_context,
)
from podmill.pipeline.dag import STAGE_NAMES
from podmill.storage.db import upgrade


class Captured:
    """A root handler like the one ``configure_logging`` installs, writing to memory."""

    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.addFilter(ContextFilter())
        self.handler.setFormatter(formatter)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def captured() -> Iterator[Captured]:
    root = logging.getLogger()
    capture = Captured(JsonFormatter())
    old_level = root.level
    root.addHandler(capture.handler)
    root.setLevel(logging.INFO)
    try:
        yield capture
    finally:
        root.removeHandler(capture.handler)
        root.setLevel(old_level)


def test_json_lines_have_the_fields_and_the_step_context(captured: Captured) -> None:
    log = logging.getLogger("podmill.test")
    log.info("outside %s", "any step", extra={"episode": "é-1"})
    with step_context(correlation_id="cid-1", job_id=7, worker_id="w:1", stage="segment"):
        logging.getLogger("some.library").warning("inside")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    outside, inside, failed = captured.lines()
    assert outside["message"] == "outside any step"
    assert outside["level"] == "INFO" and outside["logger"] == "podmill.test"
    assert outside["episode"] == "é-1"  # the caller's extra fields are kept
    assert "correlation_id" not in outside and "stage" not in outside
    assert outside["ts"].endswith("+00:00")
    expected = {"correlation_id": "cid-1", "job_id": 7, "worker_id": "w:1", "stage": "segment"}
    assert {k: inside[k] for k in expected} == expected
    assert inside["logger"] == "some.library"  # a library's record gets them too
    assert "ValueError: boom" in failed["exc"]
    assert failed["stage"] == "segment"


def test_an_explicit_extra_wins_over_the_context(captured: Captured) -> None:
    with step_context(correlation_id="ctx", stage="index"):
        logging.getLogger("podmill.test").info("x", extra={"correlation_id": "given"})
    (line,) = captured.lines()
    assert line["correlation_id"] == "given" and line["stage"] == "index"


def test_threads_see_the_step_only_when_propagated(captured: Captured) -> None:
    log = logging.getLogger("podmill.test")
    with step_context(correlation_id="cid-t", job_id=1, worker_id="w", stage="transcribe"):
        plain = threading.Thread(target=log.info, args=("plain thread",))
        plain.start()
        plain.join()
        carried = threading.Thread(target=propagating(log.info), args=("propagated",))
        carried.start()
        carried.join()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(propagating(log.info), ["pool a", "pool b"]))
    by_message = {line["message"]: line for line in captured.lines()}
    assert "correlation_id" not in by_message["plain thread"]  # why propagating exists
    for message in ("propagated", "pool a", "pool b"):
        assert by_message[message]["correlation_id"] == "cid-t", by_message[message]
        assert by_message[message]["stage"] == "transcribe"


def test_one_propagated_function_runs_in_several_threads_at_once() -> None:
    # The barrier makes both pool threads be inside the bound function together; one
    # shared context object could be entered by only one of them.
    both_inside = threading.Barrier(2)

    def meet(n: int) -> int:
        both_inside.wait(timeout=10)
        return n

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(propagating(meet), [1, 2])) == [1, 2]


def test_a_worker_marks_the_lines_of_each_step(tmp_path: Path, captured: Captured) -> None:
    """The engine's step threads, and threads a stage starts with ``propagating``."""
    url = f"sqlite:///{tmp_path / 'podmill.db'}"
    upgrade(url)
    store = Store(url)
    episode = Episode(episode_key="ep-1", title="one", audio_url=None)
    payload = {"episode": episode.to_dict(), "settings": {"data_dir": str(tmp_path)}}
    job_id, _ = store.submit("ep-1", "fp", payload, correlation_id="cid-worker")
    stage_log = logging.getLogger("podmill.stage")

    def run_step(step: Any) -> None:
        stage_log.info("running %s", step.stage)
        with ThreadPoolExecutor(1) as pool:
            pool.submit(propagating(stage_log.info), f"helper of {step.stage}").result()

    worker = Worker(store, {"io": 1, "asr": 1, "cpu": 1, "llm": 1}, run_step=run_step, max_idle=0.5)
    worker.run()
    store.close()
    lines = [line for line in captured.lines() if line["logger"] == "podmill.stage"]
    stages = {line["message"].split()[-1] for line in lines}
    assert stages == set(STAGE_NAMES) and len(lines) == 2 * len(STAGE_NAMES), lines
    for line in lines:
        assert line["correlation_id"] == "cid-worker", line
        assert line["job_id"] == job_id and line["worker_id"] == worker.worker_id
        assert line["message"].endswith(line["stage"])
    engine_lines = [line for line in captured.lines() if line["logger"] == "podmill.engine.execute"]
    assert engine_lines and all(line["correlation_id"] == "cid-worker" for line in engine_lines)


def test_text_format_appends_the_step_tags() -> None:
    capture = Captured(TextFormatter())
    log = logging.getLogger("podmill.text")
    log.addHandler(capture.handler)
    log.propagate = False
    try:
        log.warning("plain")
        with step_context(correlation_id="c9", job_id=3, worker_id="w", stage="fetch"):
            log.warning("in a step")
    finally:
        log.removeHandler(capture.handler)
        log.propagate = True
    plain, inside = capture.text().splitlines()
    assert plain.endswith("WARNING podmill.text: plain")
    assert inside.endswith("in a step [cid=c9 job=3 stage=fetch worker=w]")


def test_a_bad_log_format_is_one_line() -> None:
    assert resolve_format(None) == "text" and resolve_format(" JSON ") == "json"
    with pytest.raises(PodmillError, match="use --log-format text or json"):
        resolve_format("xml")
    result = CliRunner().invoke(app, ["worker", "--db", "sqlite://", "--log-format", "xml"])
    assert isinstance(result.exception, PodmillError)  # main() prints it as one line
    assert str(result.exception) == (
        "log format 'xml': use --log-format text or json (or PODMILL_LOG_FORMAT)"
    )


def test_configure_logging_installs_one_handler_on_the_current_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    try:
        configure_logging("INFO", "text")
        handler = configure_logging("INFO", "json")  # a second command in one process
        assert [h for h in root.handlers if h not in before] == [handler]
        with step_context(correlation_id="cid-cfg", job_id=2, worker_id="w", stage="publish"):
            logging.getLogger("podmill.cfg").info("configured")
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
        assert [(x["message"], x["correlation_id"]) for x in lines] == [("configured", "cid-cfg")]
    finally:
        for extra in [h for h in root.handlers if h not in before]:
            root.removeHandler(extra)
        root.setLevel(level)
