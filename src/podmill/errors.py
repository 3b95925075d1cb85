"""Errors a user can act on. Each message says what was wrong and what to do."""

from __future__ import annotations


class PodmillError(Exception):
    """Base for errors shown to the user as one line (no traceback)."""


class MissingExtraError(PodmillError):
    """An optional dependency group is not installed."""

    def __init__(self, extra: str, feature: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the '{extra}' extra (missing module {module!r}): "
            f"pip install 'podmill[{extra}]'"
        )
        self.extra = extra


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


def require(module: str, extra: str, feature: str):
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(extra, feature, module) from exc
