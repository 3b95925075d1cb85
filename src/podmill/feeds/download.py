"""Safe downloads of enclosures, feeds and transcripts.

Every URL here comes from someone else's feed, so each request is treated as hostile:

- only ``http``/``https`` (``file://`` and local paths only when the caller allows them,
  never through a redirect);
- every hop's host is resolved and refused if any address is not public, unless
  ``allow_private_networks`` is set (redirects are followed by hand, at most
  :data:`MAX_REDIRECTS`, so each hop is checked);
- a size cap checked against Content-Length up front and again while streaming;
- bodies stream to a hidden temp file next to the destination and are renamed into
  place only when complete, so a failed download never leaves a partial file behind;
- timeouts, connection errors, truncated bodies, 5xx and 429 answers are retried with
  exponential backoff; other 4xx answers and malformed redirects are final;
- every call has an overall deadline (every try included), not only per-read timeouts;
- errors say what was wrong in words (status, content type, size), never quoting the
  bytes a server sent.

See ``docs/download.md`` for the rules and their limits (DNS rebinding).
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import logging
import mimetypes
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import BinaryIO, TypeVar
from urllib.parse import SplitResult, urljoin, urlsplit
from urllib.request import url2pathname

import httpx

from podmill.audio import SNIFF_BYTES, describe_served, identify_non_audio, sniff_audio
from podmill.errors import DownloadError
from podmill.feeds.deadline import Deadline
from podmill.obs import tracing
from podmill.retry import MAX_RETRY_AFTER_SECONDS, Backoff, RetryAfterTooLong, parse_retry_after
from podmill.settings import Settings

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
FETCH_MAX_BYTES = 50 * 1024**2
_CHUNK = 64 * 1024
_AUDIO_ACCEPT = "audio/*, video/*;q=0.8, */*;q=0.5"
_SETTING_HINT = "raise download.max_bytes (env PODMILL_DOWNLOAD__MAX_BYTES) to allow it"
_FEED_HINT = "raise download.feed_max_bytes (env PODMILL_DOWNLOAD__FEED_MAX_BYTES) to allow it"
PRIVATE_SETTING = "allow_private_networks = true (env PODMILL_ALLOW_PRIVATE_NETWORKS=true)"
# the end of every "a private address" refusal; a command with --allow-private-networks
# names its flag in it (podmill.cli.options.naming_private_flag)
PRIVATE_HINT = f"set {PRIVATE_SETTING} if you trust this source"

T = TypeVar("T")
Sleep = Callable[[float], None]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Downloaded:
    """A completed download: the file at ``path`` holds exactly ``size`` bytes."""

    path: Path
    sha256: str
    size: int
    content_type: str | None
    final_url: str
    format: str | None  # what sniff_audio saw in the first bytes, e.g. "mp3"


def download(
    url: str,
    dest: Path,
    settings: Settings,
    *,
    allow_file_urls: bool = False,
    expect_audio: bool = True,
    client: httpx.Client | None = None,
    sleep: Sleep = time.sleep,
) -> Downloaded:
    """Download ``url`` to ``dest`` atomically and return what was stored.

    ``allow_file_urls`` lets ``file://`` URLs and plain paths through (copied the same
    way); pass it only for input the user named directly, never for feed content.
    With ``expect_audio`` the first bytes must look like audio, so an HTML error page
    served with status 200 fails here instead of in the decoder. ``client`` is used as
    given (its redirects are not followed; timeouts come from ``settings``) and is not
    closed. ``sleep`` waits between retries. All tries together end after
    ``download.total_timeout`` seconds.

    Raises :class:`DownloadError`; ``retryable`` is true when trying later may help.
    With tracing on, a ``download`` span (the URL's host, the bytes stored).
    """
    with tracing.span("download", {"url.host": _host(url)}) as span:
        got = _download(url, dest, settings, allow_file_urls, expect_audio, client, sleep)
        span.set_attributes({"bytes": got.size, "format": got.format or ""})
        return got


def _download(
    url: str,
    dest: Path,
    settings: Settings,
    allow_file_urls: bool,
    expect_audio: bool,
    client: httpx.Client | None,
    sleep: Sleep,
) -> Downloaded:
    cap = _Cap(settings.download.max_bytes, _SETTING_HINT)
    deadline = Deadline(settings.download.total_timeout, "download.total_timeout")
    local = _local_path(url, allow_file_urls)
    if local is not None:
        return _copy_local(local, dest, cap, expect_audio=expect_audio)

    def into_temp(http: httpx.Client, out: BinaryIO) -> Downloaded:
        with _open_response(
            http,
            url,
            settings,
            accept=_AUDIO_ACCEPT,
            identity=True,
            check="check the enclosure URL",
            deadline=deadline,
        ) as response:
            content_type = response.headers.get("content-type")
            body = _Body(out, cap, str(response.url), content_type, expect_audio=expect_audio)
            _stream(response, body, deadline)
            body.finish()
            return body.result(dest, str(response.url))

    with _client(client, settings) as http, deadline.enforced():
        # Each attempt streams into a fresh temp file, which is removed if it fails.
        return _retrying(
            settings, sleep, lambda: _write_atomically(dest, partial(into_temp, http)), deadline
        )


def fetch_bytes(
    url: str,
    settings: Settings,
    *,
    max_bytes: int = FETCH_MAX_BYTES,
    allow_file_urls: bool = False,
    accept: str | None = None,
    client: httpx.Client | None = None,
    sleep: Sleep = time.sleep,
) -> tuple[bytes, str | None, str]:
    """Fetch a small document (a feed, a transcript) into memory, with the same guards.

    Returns ``(body, content_type, final_url)``; ``final_url`` is where redirects ended
    (resolve relative links against it). The cap is ``max_bytes`` or
    ``download.max_bytes``, whichever is smaller; bodies are decompressed
    (gzip, deflate) and the cap applies to the decompressed size. All tries together
    end after ``download.feed_timeout`` seconds.
    """
    if settings.download.max_bytes < max_bytes:
        cap = _Cap(settings.download.max_bytes, _SETTING_HINT)
    else:
        cap = _Cap(max_bytes, "this limit protects against runaway feeds and transcripts")
    local = _local_path(url, allow_file_urls)
    if local is not None:
        return _read_local(local, cap)

    deadline = Deadline(settings.download.feed_timeout, "download.feed_timeout")

    def attempt(http: httpx.Client) -> tuple[bytes, str | None, str]:
        with _open_response(
            http,
            url,
            settings,
            accept=accept or "*/*",
            identity=False,
            check="check the URL",
            deadline=deadline,
        ) as response:
            buffer = io.BytesIO()
            content_type = response.headers.get("content-type")
            _stream(response, _Body(buffer, cap, str(response.url), content_type), deadline)
            return buffer.getvalue(), content_type, str(response.url)

    with _client(client, settings) as http, deadline.enforced():
        return _retrying(settings, sleep, lambda: attempt(http), deadline)


@dataclass(frozen=True)
class FeedFetch:
    """A conditional GET of a feed: ``body`` is ``None`` when the server said 304."""

    body: bytes | None
    etag: str | None
    last_modified: str | None
    final_url: str


def fetch_feed(
    url: str,
    settings: Settings,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    client: httpx.Client | None = None,
    sleep: Sleep = time.sleep,
    deadline: Deadline | None = None,
) -> FeedFetch:
    """Fetch a feed like :func:`fetch_bytes`, sending ``If-None-Match`` /
    ``If-Modified-Since`` when validators from an earlier fetch are given.

    A feed over ``download.feed_max_bytes`` is refused. All tries together end at
    ``deadline`` (default: ``download.feed_timeout`` seconds from now)."""
    if settings.download.feed_max_bytes <= settings.download.max_bytes:
        cap = _Cap(settings.download.feed_max_bytes, _FEED_HINT)
    else:
        cap = _Cap(settings.download.max_bytes, _SETTING_HINT)
    deadline = deadline or Deadline(settings.download.feed_timeout, "download.feed_timeout")
    conditional = {"If-None-Match": etag} if etag else {}
    if last_modified:
        conditional["If-Modified-Since"] = last_modified

    def attempt(http: httpx.Client) -> FeedFetch:
        with _open_response(
            http,
            url,
            settings,
            accept="application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5",
            identity=False,
            check="check the feed URL",
            conditional=conditional or None,
            deadline=deadline,
        ) as response:
            new_etag = response.headers.get("etag") or etag
            new_modified = response.headers.get("last-modified") or last_modified
            if response.status_code == 304:
                return FeedFetch(None, new_etag, new_modified, str(response.url))
            buffer = io.BytesIO()
            content_type = response.headers.get("content-type")
            _stream(response, _Body(buffer, cap, str(response.url), content_type), deadline)
            return FeedFetch(buffer.getvalue(), new_etag, new_modified, str(response.url))

    with _client(client, settings) as http, deadline.enforced():
        return _retrying(settings, sleep, lambda: attempt(http), deadline)


# ------------------------------------------------------------------- size and sniffing


@dataclass(frozen=True)
class _Cap:
    max_bytes: int
    hint: str

    def refuse(self, what: str, size: int) -> DownloadError:
        return DownloadError(
            f"{what} is {_size(size)}, over the limit of {_size(self.max_bytes)}; {self.hint}"
        )

    def exceeded(self, source: str) -> DownloadError:
        return DownloadError(
            f"{source} went past the limit of {_size(self.max_bytes)} while being read "
            f"(its declared size was missing or wrong), so it was stopped; {self.hint}"
        )


class _Body:
    """Counts, caps and hashes the bytes of one attempt, writing them to ``out`` and
    keeping the first :data:`SNIFF_BYTES` for sniffing."""

    def __init__(
        self,
        out: BinaryIO,
        cap: _Cap,
        url: str,
        content_type: str | None,
        *,
        expect_audio: bool = False,
    ) -> None:
        self.out = out
        self.cap = cap
        self.url = url
        self.content_type = content_type
        self.expect_audio = expect_audio
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.head = b""
        self.sniffed = False
        self.format: str | None = None

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.cap.max_bytes:
            raise self.cap.exceeded(self.url)
        if len(self.head) < SNIFF_BYTES:
            self.head += chunk[: SNIFF_BYTES - len(self.head)]
            if len(self.head) == SNIFF_BYTES:
                self._sniff()  # refuse a non-audio body before reading the rest of it
        self.sha256.update(chunk)
        self.out.write(chunk)

    def finish(self) -> None:
        """Call at the end of the body: sniffs a body shorter than the sniff window."""
        if not self.sniffed:
            self._sniff()

    def _sniff(self) -> None:
        """With ``expect_audio``, refuse what is clearly not audio."""
        self.sniffed = True
        self.format = sniff_audio(self.head)
        if not self.expect_audio or self.format is not None:
            return
        # Unknown binary under an audio/video Content-Type gets the benefit of the doubt:
        # it may be a codec we do not sniff, and probing will have the final word.
        if identify_non_audio(self.head) is None and _is_media_type(self.content_type):
            return
        raise DownloadError(
            f"{self.url} did not return audio: got {describe_served(self.head)} "
            f"(Content-Type: {self.content_type or 'none'}); "
            "check that the enclosure URL points at the audio file"
        )

    def result(self, dest: Path, final_url: str) -> Downloaded:
        return Downloaded(
            path=dest,
            sha256=self.sha256.hexdigest(),
            size=self.size,
            content_type=self.content_type,
            final_url=final_url,
            format=self.format,
        )


def _is_media_type(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media.startswith(("audio/", "video/"))


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit} ({n} bytes)"
    return f"{n} bytes"


def _write_atomically(dest: Path, write: Callable[[BinaryIO], T]) -> T:
    """Run ``write`` on a hidden temp file beside ``dest``; rename it onto ``dest`` only
    if ``write`` returns. The temp file is removed on every failure, Ctrl-C included."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.parent / f".{dest.name}.part-{secrets.token_hex(6)}"
    try:
        with temp.open("xb") as out:
            result = write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return result


# ------------------------------------------------------------------------ local files


def _host(url: str) -> str:
    """The URL's host for a span (``local`` for a path; never the path or query)."""
    try:
        return urlsplit(url).hostname or "local"
    except ValueError:
        return "invalid"


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise DownloadError(f"invalid URL {url!r}: {exc}") from exc
    return parts


def _local_path(url: str, allowed: bool) -> Path | None:
    """The path a ``file://`` URL or plain path names; None for other URLs."""
    parts = _split(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise DownloadError(f"file URL with a remote host is not supported: {url}")
        path = Path(url2pathname(parts.path))
    elif parts.scheme == "":
        path = Path(url).expanduser()
    else:
        return None
    if not allowed:
        raise DownloadError(
            f"refusing to read local file {url}: local files are read only when you name "
            "them directly (podmill run FILE), never from a feed or another download"
        )
    return path


def _open_local(path: Path, cap: _Cap) -> BinaryIO:
    if not path.exists():
        raise DownloadError(f"file not found: {path}")
    if not path.is_file():
        raise DownloadError(f"not a regular file: {path}")
    size = path.stat().st_size
    if size > cap.max_bytes:
        raise cap.refuse(str(path), size)
    try:
        return path.open("rb")
    except OSError as exc:
        raise DownloadError(f"cannot read {path}: {exc.strerror}") from exc


def _copy_local(path: Path, dest: Path, cap: _Cap, *, expect_audio: bool) -> Downloaded:
    content_type = mimetypes.guess_type(path.name)[0]
    with _open_local(path, cap) as source:

        def into_temp(out: BinaryIO) -> Downloaded:
            body = _Body(out, cap, str(path), content_type, expect_audio=expect_audio)
            while chunk := source.read(_CHUNK):
                body.write(chunk)  # the cap still applies if the file grows meanwhile
            body.finish()
            return body.result(dest, path.resolve().as_uri())

        return _write_atomically(dest, into_temp)


def _read_local(path: Path, cap: _Cap) -> tuple[bytes, str | None, str]:
    with _open_local(path, cap) as source:
        data = source.read(cap.max_bytes + 1)
    if len(data) > cap.max_bytes:
        raise cap.exceeded(str(path))
    return data, mimetypes.guess_type(path.name)[0], path.resolve().as_uri()


# ------------------------------------------------------------------------------- HTTP


class _Retry(Exception):
    """A failure that may succeed on another attempt."""

    def __init__(
        self, reason: str, *, retry_after: str | None = None, url: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after  # the answer's Retry-After header, if any
        self.url = url


@contextmanager
def _client(client: httpx.Client | None, settings: Settings) -> Iterator[httpx.Client]:
    """The caller's client (left open), or one of our own for this call."""
    if client is not None:
        yield client
        return
    with httpx.Client(timeout=_timeout(settings), follow_redirects=False) as own:
        yield own


def _timeout(settings: Settings, deadline: Deadline | None = None) -> httpx.Timeout:
    d = settings.download
    left = deadline.remaining() if deadline is not None else float("inf")
    connect, read = min(d.connect_timeout, left), min(d.read_timeout, left)
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


def _retrying(settings: Settings, sleep: Sleep, attempt: Callable[[], T], deadline: Deadline) -> T:
    """Run ``attempt`` up to ``download.max_attempts`` times, backing off between tries,
    all of them within ``deadline``. A ``Retry-After`` over
    :data:`~podmill.retry.MAX_RETRY_AFTER_SECONDS` is not waited for: the download fails
    (retryable) and the pipeline's own retry schedule takes over."""
    attempts = max(1, settings.download.max_attempts)
    backoff = Backoff(settings.download.backoff_seconds, cap=MAX_RETRY_AFTER_SECONDS)
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except _Retry as failure:
            if deadline.expired:
                raise deadline.error(failure.url or "the server") from failure.__cause__
            try:
                after = parse_retry_after(failure.retry_after, datetime.now(UTC))
            except RetryAfterTooLong as too_long:
                raise DownloadError(
                    f"{failure.reason}; {too_long}; try again later", retryable=True
                ) from failure.__cause__
            if number == attempts:
                raise DownloadError(
                    f"{failure.reason}; gave up after {number} attempts "
                    "(download.max_attempts); try again later",
                    retryable=True,
                ) from failure.__cause__
            delay = max(backoff.delay(number), after or 0.0)
            if delay >= deadline.remaining():
                raise DownloadError(
                    f"{failure.reason}; no time is left for another try within "
                    f"{deadline.setting} = {deadline.seconds:g} s; try again later",
                    retryable=True,
                ) from failure.__cause__
            log.info("%s; retry %d/%d in %.2f s", failure.reason, number, attempts - 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")


@contextmanager
def _open_response(
    client: httpx.Client,
    url: str,
    settings: Settings,
    *,
    accept: str,
    identity: bool,
    check: str,
    deadline: Deadline,
    conditional: Mapping[str, str] | None = None,
) -> Iterator[httpx.Response]:
    """GET ``url`` following redirects by hand, checking every hop; yield the final
    2xx response, still streaming (or a 304 when ``conditional`` validators were sent)."""
    headers = {"User-Agent": settings.download.user_agent, "Accept": accept}
    headers.update(conditional or {})
    if identity:  # the stored bytes, their size and hash are the server's file
        headers["Accept-Encoding"] = "identity"
    current = url
    visited = {url}
    for _hop in range(MAX_REDIRECTS + 1):
        _check_url(current, settings, origin=url)
        deadline.check(current)
        try:
            request = client.build_request(
                "GET",
                current,
                headers=headers,
                timeout=_timeout(settings, deadline),
                extensions={"trace": deadline.trace},
            )
        except httpx.InvalidURL as exc:
            raise DownloadError(f"invalid URL {current!r}: {exc}") from exc
        try:
            response = client.send(request, stream=True, follow_redirects=False)
        except httpx.TransportError as exc:
            raise _request_failure(exc, current, settings, deadline) from exc
        try:
            if conditional and response.status_code == 304:
                yield response  # not modified since the validators we sent
                return
            if response.is_redirect:
                current = _redirect_target(response, current, url)
                # A revisit that sets a cookie is a cookie bounce, not a loop.
                if current in visited and "set-cookie" not in response.headers:
                    raise DownloadError(
                        f"redirect loop: {url} leads back to {current}; "
                        "ask the publisher to fix the URL"
                    )
                visited.add(current)
                continue
            _raise_for_status(response, current, check)
            yield response
            return
        finally:
            response.close()
    raise DownloadError(
        f"too many redirects (more than {MAX_REDIRECTS}) starting at {url}; last was {current}"
    )


def _request_failure(
    exc: httpx.TransportError, url: str, settings: Settings, deadline: Deadline
) -> Exception:
    """What a failed request (no response yet) raises. The exception's own text is not
    quoted when it may hold the server's bytes (h11 quotes a bad status line)."""
    if deadline.expired:
        return deadline.error(url)
    if isinstance(exc, httpx.RemoteProtocolError) and "location header" in str(exc).lower():
        # httpx reads a redirect's Location even when it does not follow it: one it
        # cannot parse fails the request. The same answer comes again: final.
        return DownloadError(
            f"HTTP 3xx redirect from {url} has a malformed Location header; "
            "ask the publisher to fix the URL"
        )
    if isinstance(exc, httpx.ConnectTimeout):
        return _Retry(
            f"timed out connecting to {url} "
            f"(download.connect_timeout = {settings.download.connect_timeout:g} s)",
            url=url,
        )
    if isinstance(exc, httpx.TimeoutException):
        return _Retry(
            f"no answer from {url} within "
            f"download.read_timeout = {settings.download.read_timeout:g} s",
            url=url,
        )
    if isinstance(exc, httpx.ProtocolError):
        return _Retry(f"{url} did not answer with valid HTTP ({type(exc).__name__})", url=url)
    return _Retry(f"cannot connect to {url}: {exc}", url=url)


def _redirect_target(response: httpx.Response, current: str, origin: str) -> str:
    """Where a redirect points; a missing or unusable Location is a final error (the
    server is misconfigured: asking again gives the same answer)."""
    location = response.headers.get("location", "").strip()
    via = "" if current == origin else f" (redirected from {origin})"
    if not location:
        raise DownloadError(
            f"HTTP {response.status_code} redirect from {current}{via} has no Location "
            "header; ask the publisher to fix the URL"
        )
    try:
        target = urljoin(current, location)
        parts = urlsplit(target)
        parts.port  # noqa: B018 - raises ValueError for a bad or out-of-range port
        httpx.URL(target)
    except (ValueError, httpx.InvalidURL):
        raise DownloadError(
            f"HTTP {response.status_code} redirect from {current}{via} has a malformed "
            f"Location header ({len(location)} characters); ask the publisher to fix the URL"
        ) from None
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise DownloadError(
            f"HTTP {response.status_code} redirect from {current}{via} points at a URL "
            "without a host; ask the publisher to fix the URL"
        )
    return target


def _stream(response: httpx.Response, body: _Body, deadline: Deadline) -> None:
    """Copy the response body into ``body``; a short body is a retryable truncation."""
    declared = _content_length(response)
    if declared is not None and declared > body.cap.max_bytes:
        raise body.cap.refuse(f"{response.url} (Content-Length)", declared)
    url = str(response.url)
    try:
        # No chunk size: each piece as it arrives, so a trickle still meets the deadline.
        for chunk in response.iter_bytes():
            body.write(chunk)
            deadline.check(url)
    except httpx.TimeoutException as exc:
        if deadline.expired:
            raise deadline.error(url) from exc
        raise _Retry(
            f"{url} stalled after {body.size} bytes (no data within download.read_timeout)",
            url=url,
        ) from exc
    except httpx.DecodingError as exc:
        raise DownloadError(
            f"{url} sent a body that does not match its Content-Encoding "
            f"({response.headers.get('content-encoding', 'none')})"
        ) from exc
    except httpx.TransportError as exc:
        if deadline.expired:
            raise deadline.error(url) from exc
        got = response.num_bytes_downloaded
        if declared is not None and got < declared:
            raise _Retry(f"download truncated: got {got} of {declared} bytes from {url}") from exc
        raise _Retry(
            f"connection to {url} failed mid-download ({type(exc).__name__})", url=url
        ) from exc
    # Cutting the socket ends a body without Content-Length as if it were complete.
    deadline.check(url)
    got = response.num_bytes_downloaded
    if declared is not None and got < declared:
        raise _Retry(f"download truncated: got {got} of {declared} bytes from {url}", url=url)


def _content_length(response: httpx.Response) -> int | None:
    try:
        value = int(response.headers.get("content-length", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


_STATUS_ADVICE = {
    401: "the server wants credentials; private feeds need their full URL with the token",
    403: "the server refused access; the link may have expired or be region-locked",
    410: "the server says it was removed for good",
}


def _raise_for_status(response: httpx.Response, url: str, check: str) -> None:
    code = response.status_code
    if 200 <= code < 300:
        return
    # The standard phrase, never the server's own: that is bytes it chose to send.
    status = f"HTTP {code} {httpx.codes.get_reason_phrase(code)}"
    if code == 429 or code >= 500:
        retry_after = response.headers.get("retry-after")
        raise _Retry(f"{status.strip()} from {url}", retry_after=retry_after, url=url)
    advice = _STATUS_ADVICE.get(code, check)
    raise DownloadError(f"{status.strip()} for {url}; {advice}")


# ----------------------------------------------------------------------- SSRF guard


def check_url(url: str, settings: Settings) -> None:
    """Raise :class:`DownloadError` unless podmill may send a request to ``url``: http(s)
    only, and a public host unless ``allow_private_networks`` (for URLs a user gives
    podmill to call, such as webhooks). A resolver that may recover later makes the
    error ``retryable``."""
    try:
        _check_url(url, settings, origin=url)
    except _Retry as failure:
        raise DownloadError(f"{failure.reason}; try again later", retryable=True) from None


def _check_url(url: str, settings: Settings, *, origin: str) -> None:
    """Refuse schemes other than http(s) and, unless allowed, non-public hosts."""
    parts = _split(url)
    if parts.scheme not in ("http", "https"):
        via = "" if url == origin else f" (redirected from {origin})"
        raise DownloadError(
            f"unsupported URL scheme {parts.scheme!r} in {url}{via}; "
            "only http and https are downloaded"
        )
    host = parts.hostname
    if not host:
        raise DownloadError(f"no host in URL {url}")
    allowed = _metadata_allowlist(settings)
    for address, how in _addresses(host, parts.port or (443 if parts.scheme == "https" else 80)):
        metadata = _metadata_address(address)
        if metadata is not None and not any(metadata in net for net in allowed):
            via = "" if url == origin else f" (redirected from {origin})"
            raise DownloadError(
                f"refusing to download {url}{via}: {how} {metadata}, a cloud metadata "
                "address (refused even with allow_private_networks); list it in "
                "metadata_allowlist (env PODMILL_METADATA_ALLOWLIST='[\"ADDRESS\"]') "
                "only if podmill must call it"
            )
        if settings.allow_private_networks:
            continue
        verdict = _non_public(address)
        if verdict is not None:
            shown, kind = verdict
            via = "" if url == origin else f" (redirected from {origin})"
            raise DownloadError(
                f"refusing to download {url}{via}: {how} {shown}, a {kind} address; {PRIVATE_HINT}"
            )


def _addresses(host: str, port: int) -> list[tuple[IPAddress, str]]:
    try:
        return [(ipaddress.ip_address(host), "its host is")]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _resolve_failure(host, exc) from exc
    how = f"{host} resolves to"
    # A zone suffix ("fe80::1%eth0") is not part of the address.
    return [(ipaddress.ip_address(str(info[4][0]).split("%")[0]), how) for info in infos]


# Names that never resolve in the DNS (RFC 6761 .invalid, .test, .example, .localhost;
# RFC 7686 .onion): whatever the resolver said, asking again cannot give an address.
_SPECIAL_USE_DOMAINS = ("invalid", "test", "example", "localhost", "onion")


def _special_use_domain(host: str) -> str | None:
    """The special-use top-level domain ``host`` is under, e.g. "invalid"; else None."""
    top = host.rstrip(".").rpartition(".")[2].lower()
    return top if top in _SPECIAL_USE_DOMAINS else None


def _resolve_failure(host: str, exc: socket.gaierror) -> Exception:
    """What a failed lookup of ``host`` raises: final, except a temporary failure
    (``EAI_AGAIN``) of a name that may exist, retried because a resolver outage passes."""
    special = _special_use_domain(host)
    if special is not None:
        return DownloadError(
            f"cannot resolve host {host}: .{special} is a special-use name that never "
            f"resolves ({exc.strerror}); check the URL"
        )
    if exc.errno == socket.EAI_AGAIN:
        return _Retry(
            f"cannot resolve host {host} for now: {exc.strerror} (the DNS resolver may be down)"
        )
    return DownloadError(f"cannot resolve host {host}: {exc.strerror}; check the URL")


# Cloud metadata and platform endpoints: they hand out credentials to whoever asks from
# inside the machine, so they stay refused when private networks are allowed.
_METADATA_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "169.254.169.0/24",  # AWS, GCP, Azure, Oracle, OpenStack, DigitalOcean, ... (.254)
        "169.254.170.0/24",  # AWS ECS task metadata (.2), EKS Pod Identity (.23)
        "169.254.0.23/32",  # Tencent Cloud
        "100.100.100.200/32",  # Alibaba Cloud
        "192.0.0.192/32",  # Oracle Cloud (legacy)
        "168.63.129.16/32",  # Azure WireServer (a public address)
        "fd00:ec2::/64",  # AWS IMDS, DNS, NTP and EKS Pod Identity over IPv6
    )
)
# What Python's ``is_global`` misses (or version-dependently calls global) though it is
# not routable on the Internet.
_NON_GLOBAL_NETWORKS = tuple(
    (ipaddress.ip_network(net), kind)
    for net, kind in (
        ("192.0.0.0/24", "IETF protocol assignment"),
        ("192.88.99.0/24", "deprecated 6to4 relay"),
        ("fec0::/10", "site-local"),
        ("3fff::/20", "documentation"),
    )
)


def _metadata_allowlist(settings: Settings) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(entry, strict=False) for entry in settings.metadata_allowlist]
    except ValueError as exc:
        raise DownloadError(
            f"metadata_allowlist: {exc}; list IP addresses or networks such as 169.254.169.254"
        ) from None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
    if embedded is None and address in _NAT64:
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return embedded


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _metadata_address(address: IPAddress) -> IPAddress | None:
    """``address`` (or the IPv4 address it embeds) if it is a cloud metadata address."""
    for candidate in (address, _embedded_ipv4(address)):
        if candidate is not None and any(
            candidate.version == net.version and candidate in net for net in _METADATA_NETWORKS
        ):
            return candidate
    return None


def _non_public(address: IPAddress) -> tuple[str, str] | None:
    """(address as shown, why it is off limits) or None if the address is public."""
    # Addresses that embed an IPv4 address (mapped, 6to4, Teredo, NAT64) are judged by it too.
    embedded = _embedded_ipv4(address)
    if embedded is not None and (kind := _non_public_kind(embedded)) is not None:
        return f"{address} (IPv4 {embedded})", kind
    kind = _non_public_kind(address)
    return None if kind is None else (str(address), kind)


def _non_public_kind(address: IPAddress) -> str | None:
    for kind, flag in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return kind
    for network, kind in _NON_GLOBAL_NETWORKS:
        if address.version == network.version and address in network:
            return kind
    return None if address.is_global else "non-public"
