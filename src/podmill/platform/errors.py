"""What the platform refuses, as domain errors: a thing that is not there
(:class:`NotFound`), a request the current state rules out (:class:`Conflict`), a value
that cannot be used (:class:`Invalid`). They carry no HTTP: ``podmill.api.errors`` maps
each kind to a status, the CLI prints the message."""

from __future__ import annotations

from podmill.errors import PodmillError


class PlatformError(PodmillError):
    """A request the platform cannot serve. ``code`` names the reason for machines (the
    API's ``error``); the message says what was wrong and what to do."""

    code = "invalid_request"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class NotFound(PlatformError):
    """No such row, or none this tenant may see (another tenant's data is not found)."""

    code = "not_found"


class Conflict(PlatformError):
    """The row is there, but its state rules the request out (cancel a done job)."""

    code = "conflict"


class Invalid(PlatformError):
    """A value that cannot be used: a URL that is not a feed, a bad name."""

    code = "invalid_request"
