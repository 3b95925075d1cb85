"""Log lines that say which job they belong to: a step context, a filter, two formats.

While a worker runs a step, :func:`step_context` sets a context variable holding the
job's ``correlation_id``, ``job_id``, ``worker_id`` and ``stage``. :class:`ContextFilter`,
installed on the root handler by :func:`configure_logging`, copies those fields onto
every record that passes, so a line from podmill's own loggers and one from a library
(httpx, faster-whisper, ...) both carry them. A filter on the *handler* (not on a
logger) is what catches library records: logger filters only see their own logger's
records.

Context variables follow the code that sets them, not the process: a thread started
inside a step does not inherit them. :func:`propagating` wraps a callable so that it
runs in a copy of the caller's context; hand it to ``Thread(target=...)`` or
``executor.submit`` inside a step.

JSON lines (``--log-format json``, env ``PODMILL_LOG_FORMAT=json``) have the keys
``ts level logger message``, the four step fields when inside a step, ``trace_id`` inside
a span when tracing is on (podmill.obs.tracing), ``exc`` with the
traceback when there is one, and any ``extra={...}`` a caller passed.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from podmill.errors import PodmillError
from podmill.obs.tracing import current_trace_id

STEP_FIELDS = ("correlation_id", "job_id", "worker_id", "stage")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
# podmill's own loggers are children of this one (``podmill.engine.execute``, and the
# API's request lines, ``podmill.access``).
OWN_LOGGER = "podmill"

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class StepContext:
    """What every log line emitted while a step runs says about it."""

    correlation_id: str | None
    job_id: int | None
    worker_id: str | None
    stage: str | None


_current: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "podmill_step", default=None
)


def current_step() -> StepContext | None:
    """The step this code runs for, or ``None`` outside a step."""
    return _current.get()


@contextmanager
def step_context(
    *,
    correlation_id: str | None,
    job_id: int | None = None,
    worker_id: str | None = None,
    stage: str | None = None,
) -> Iterator[StepContext]:
    """Mark every log record emitted inside the block (in this thread or task, and in
    threads started with :func:`propagating`) with these step fields."""
    ctx = StepContext(correlation_id, job_id, worker_id, stage)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def propagating(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` bound to a copy of the current context: call it from another thread and
    it still sees the step context (``threading.Thread`` does not copy it)."""
    ctx = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        # A copy per call: a context can be entered by one thread at a time, and a pool
        # runs the same bound function in several threads at once.
        return ctx.copy().run(fn, *args, **kwargs)

    return run


class ContextFilter(logging.Filter):
    """Adds the current step's fields to a record (a field passed with ``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _current.get()
        for name in STEP_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, getattr(ctx, name) if ctx is not None else None)
        if getattr(record, "trace_id", None) is None:
            trace_id = current_trace_id()  # None (and free) unless tracing is on
            if trace_id is not None:
                record.trace_id = trace_id
        return True


# Attributes every LogRecord has; anything else on a record came from ``extra=``
# (except uvicorn's ANSI-coloured copy of the message, which is noise in JSON).
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


# Loggers shown under another name: uvicorn logs its start and stop as "uvicorn.error",
# which reads as an error to a person and to any grep for one.
SHOWN_AS = {"uvicorn.error": "uvicorn"}


def _shown(record: logging.LogRecord) -> logging.LogRecord:
    """``record``, or a copy of it under the name a person should read."""
    if record.name not in SHOWN_AS:
        return record
    return logging.makeLogRecord({**record.__dict__, "name": SHOWN_AS[record.name]})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601 with ms), level, logger, message, the
    step fields when set, ``exc`` for a traceback, and the caller's ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        record = _shown(record)
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in STEP_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        for name, value in vars(record).items():
            if name not in _RESERVED and name not in STEP_FIELDS and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [cid=… job=… stage=… worker=…]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record = _shown(record)
        text = super().format(record)
        cid = getattr(record, "correlation_id", None)
        if cid is None:
            return text
        tags = [f"cid={cid}"]
        for label, name in (("job", "job_id"), ("stage", "stage"), ("worker", "worker_id")):
            value = getattr(record, name, None)
            if value is not None:
                tags.append(f"{label}={value}")
        first, sep, rest = text.partition("\n")  # tags on the message line, not the traceback
        return f"{first} [{' '.join(tags)}]{sep}{rest}"


def resolve_format(value: str | None) -> str:
    """``text`` or ``json``; anything else is one error line."""
    fmt = (value or "text").strip().lower()
    if fmt not in LOG_FORMATS:
        raise PodmillError(
            f"log format {value!r}: use --log-format text or json (or PODMILL_LOG_FORMAT)"
        )
    return fmt


def resolve_level(value: str) -> str:
    """``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR`` (any case in); anything else is one
    error line."""
    level = value.strip().lower()
    if level == "warn":
        level = "warning"
    if level not in LOG_LEVELS:
        raise PodmillError(
            f"log level {value!r}: use --log-level debug, info, warning or error "
            "(or PODMILL_LOG_LEVEL)"
        )
    return level.upper()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (a test runner swaps it)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr


def configure_logging(
    level: str = "WARNING", fmt: str = "text", own_level: str | None = None
) -> logging.Handler:
    """Send every log record at ``level`` or above to stderr through one handler with the
    step filter and ``fmt``'s formatter; returns the handler. ``own_level`` lets
    podmill's own loggers through from a lower level than the libraries' (a long-running
    command's default: its step and request lines at INFO, httpx's at WARNING). Called
    again (a second command in one process), it replaces the handler it installed
    before, and only that one."""
    handler = _StderrHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if resolve_format(fmt) == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _StderrHandler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(resolve_level(level))
    own = logging.getLevelName(resolve_level(own_level)) if own_level is not None else None
    # below the root's level only: a --log-level debug run shows podmill's DEBUG too
    logging.getLogger(OWN_LOGGER).setLevel(
        own if own is not None and own < root.level else logging.NOTSET
    )
    return handler


def step_fields(ctx: StepContext | None) -> dict[str, Any]:
    """The step fields as a dict (for a JSON body or a header)."""
    return asdict(ctx) if ctx is not None else dict.fromkeys(STEP_FIELDS)
