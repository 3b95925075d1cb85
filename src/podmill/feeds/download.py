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
  exponential backoff; other 4xx answers are final.

See ``docs/download.md`` for the rules and their limits (DNS rebinding).
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import logging
import mimetypes
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import BinaryIO, TypeVar
from urllib.parse import SplitResult, urljoin, urlsplit
from urllib.request import url2pathname

import httpx

from podmill.audio import SNIFF_BYTES, describe_non_audio, identify_non_audio, sniff_audio
from podmill.errors import DownloadError
from podmill.settings import Settings

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
# A longer Retry-After than this is not waited for: the download fails (retryable) and
# the pipeline's own retry schedule takes over.
MAX_RETRY_AFTER_SECONDS = 60.0
FETCH_MAX_BYTES = 50 * 1024**2
_CHUNK = 64 * 1024
_AUDIO_ACCEPT = "audio/*, video/*;q=0.8, */*;q=0.5"
_SETTING_HINT = "raise download.max_bytes (env PODMILL_DOWNLOAD__MAX_BYTES) to allow it"
_PRIVATE_HINT = (
    "set allow_private_networks = true (env PODMILL_ALLOW_PRIVATE_NETWORKS=true) "
    "if you trust this source"
)

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
    closed. ``sleep`` waits between retries.

    Raises :class:`DownloadError`; ``retryable`` is true when trying later may help.
    """
    cap = _Cap(settings.download.max_bytes, _SETTING_HINT)
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
        ) as response:
            content_type = response.headers.get("content-type")
            body = _Body(out, cap, str(response.url), content_type, expect_audio=expect_audio)
            _stream(response, body)
            body.finish()
            return body.result(dest, str(response.url))

    with _client(client, settings) as http:
        # Each attempt streams into a fresh temp file, which is removed if it fails.
        return _retrying(settings, sleep, lambda: _write_atomically(dest, partial(into_temp, http)))


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
    (gzip, deflate) and the cap applies to the decompressed size.
    """
    if settings.download.max_bytes < max_bytes:
        cap = _Cap(settings.download.max_bytes, _SETTING_HINT)
    else:
        cap = _Cap(max_bytes, "this limit protects against runaway feeds and transcripts")
    local = _local_path(url, allow_file_urls)
    if local is not None:
        return _read_local(local, cap)

    def attempt(http: httpx.Client) -> tuple[bytes, str | None, str]:
        with _open_response(
            http, url, settings, accept=accept or "*/*", identity=False, check="check the URL"
        ) as response:
            buffer = io.BytesIO()
            content_type = response.headers.get("content-type")
            _stream(response, _Body(buffer, cap, str(response.url), content_type))
            return buffer.getvalue(), content_type, str(response.url)

    with _client(client, settings) as http:
        return _retrying(settings, sleep, lambda: attempt(http))


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
) -> FeedFetch:
    """Fetch a feed like :func:`fetch_bytes`, sending ``If-None-Match`` /
    ``If-Modified-Since`` when validators from an earlier fetch are given."""
    cap = _Cap(min(FETCH_MAX_BYTES, settings.download.max_bytes), _SETTING_HINT)
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
        ) as response:
            new_etag = response.headers.get("etag") or etag
            new_modified = response.headers.get("last-modified") or last_modified
            if response.status_code == 304:
                return FeedFetch(None, new_etag, new_modified, str(response.url))
            buffer = io.BytesIO()
            content_type = response.headers.get("content-type")
            _stream(response, _Body(buffer, cap, str(response.url), content_type))
            return FeedFetch(buffer.getvalue(), new_etag, new_modified, str(response.url))

    with _client(client, settings) as http:
        return _retrying(settings, sleep, lambda: attempt(http))


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
            f"{self.url} did not return audio: got {describe_non_audio(self.head)} "
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

    def __init__(self, reason: str, *, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after


@contextmanager
def _client(client: httpx.Client | None, settings: Settings) -> Iterator[httpx.Client]:
    """The caller's client (left open), or one of our own for this call."""
    if client is not None:
        yield client
        return
    with httpx.Client(timeout=_timeout(settings), follow_redirects=False) as own:
        yield own


def _timeout(settings: Settings) -> httpx.Timeout:
    d = settings.download
    return httpx.Timeout(
        connect=d.connect_timeout, read=d.read_timeout, write=d.read_timeout, pool=d.connect_timeout
    )


def _retrying(settings: Settings, sleep: Sleep, attempt: Callable[[], T]) -> T:
    """Run ``attempt`` up to ``download.max_attempts`` times, backing off between tries."""
    attempts = max(1, settings.download.max_attempts)
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except _Retry as failure:
            too_long = failure.after is not None and failure.after > MAX_RETRY_AFTER_SECONDS
            if number == attempts or too_long:
                why = (
                    f"the server asked to wait {failure.after:.0f} s"
                    if too_long
                    else f"gave up after {number} attempts (download.max_attempts)"
                )
                raise DownloadError(
                    f"{failure.reason}; {why}; try again later", retryable=True
                ) from failure.__cause__
            delay = settings.download.backoff_seconds * 2 ** (number - 1)
            delay += random.uniform(0, delay / 10)  # jitter: retries from many workers spread
            if failure.after is not None:
                delay = max(delay, failure.after)
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
    conditional: Mapping[str, str] | None = None,
) -> Iterator[httpx.Response]:
    """GET ``url`` following redirects by hand, checking every hop; yield the final
    2xx response, still streaming (or a 304 when ``conditional`` validators were sent)."""
    headers = {"User-Agent": settings.download.user_agent, "Accept": accept}
    headers.update(conditional or {})
    if identity:  # the stored bytes, their size and hash are the server's file
        headers["Accept-Encoding"] = "identity"
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        _check_url(current, settings, origin=url)
        try:
            request = client.build_request(
                "GET", current, headers=headers, timeout=_timeout(settings)
            )
        except httpx.InvalidURL as exc:
            raise DownloadError(f"invalid URL {current!r}: {exc}") from exc
        try:
            response = client.send(request, stream=True, follow_redirects=False)
        except httpx.ConnectTimeout as exc:
            raise _Retry(
                f"timed out connecting to {current} "
                f"(download.connect_timeout = {settings.download.connect_timeout:g} s)"
            ) from exc
        except httpx.TimeoutException as exc:
            raise _Retry(
                f"no answer from {current} within "
                f"download.read_timeout = {settings.download.read_timeout:g} s"
            ) from exc
        except httpx.TransportError as exc:
            raise _Retry(f"cannot connect to {current}: {exc}") from exc
        try:
            if conditional and response.status_code == 304:
                yield response  # not modified since the validators we sent
                return
            if response.is_redirect:
                current = urljoin(current, response.headers["location"])
                continue
            _raise_for_status(response, current, check)
            yield response
            return
        finally:
            response.close()
    raise DownloadError(
        f"too many redirects (more than {MAX_REDIRECTS}) starting at {url}; last was {current}"
    )


def _stream(response: httpx.Response, body: _Body) -> None:
    """Copy the response body into ``body``; a short body is a retryable truncation."""
    declared = _content_length(response)
    if declared is not None and declared > body.cap.max_bytes:
        raise body.cap.refuse(f"{response.url} (Content-Length)", declared)
    try:
        for chunk in response.iter_bytes(_CHUNK):
            body.write(chunk)
    except httpx.TimeoutException as exc:
        raise _Retry(
            f"{response.url} stalled after {body.size} bytes (no data within download.read_timeout)"
        ) from exc
    except httpx.DecodingError as exc:
        raise DownloadError(
            f"{response.url} sent a body that does not match its Content-Encoding: {exc}"
        ) from exc
    except httpx.TransportError as exc:
        got = response.num_bytes_downloaded
        if declared is not None and got < declared:
            raise _Retry(
                f"download truncated: got {got} of {declared} bytes from {response.url}"
            ) from exc
        raise _Retry(f"connection to {response.url} failed mid-download: {exc}") from exc
    got = response.num_bytes_downloaded
    if declared is not None and got < declared:
        raise _Retry(f"download truncated: got {got} of {declared} bytes from {response.url}")


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
    status = f"HTTP {code} {response.reason_phrase or httpx.codes.get_reason_phrase(code)}"
    if code == 429 or code >= 500:
        raise _Retry(f"{status.strip()} from {url}", after=_retry_after(response))
    advice = _STATUS_ADVICE.get(code, check)
    raise DownloadError(f"{status.strip()} for {url}; {advice}")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# ----------------------------------------------------------------------- SSRF guard


def check_url(url: str, settings: Settings) -> None:
    """Raise :class:`DownloadError` unless podmill may send a request to ``url``: http(s)
    only, and a public host unless ``allow_private_networks`` (for URLs a user gives
    podmill to call, such as webhooks)."""
    _check_url(url, settings, origin=url)


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
    if settings.allow_private_networks:
        return
    for address, how in _addresses(host, parts.port or (443 if parts.scheme == "https" else 80)):
        verdict = _non_public(address)
        if verdict is not None:
            shown, kind = verdict
            via = "" if url == origin else f" (redirected from {origin})"
            raise DownloadError(
                f"refusing to download {url}{via}: {how} {shown}, a {kind} address; {_PRIVATE_HINT}"
            )


def _addresses(host: str, port: int) -> list[tuple[IPAddress, str]]:
    try:
        return [(ipaddress.ip_address(host), "its host is")]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            raise _Retry(f"temporary DNS failure resolving {host}: {exc.strerror}") from exc
        raise DownloadError(f"cannot resolve host {host}: {exc.strerror}; check the URL") from exc
    how = f"{host} resolves to"
    # A zone suffix ("fe80::1%eth0") is not part of the address.
    return [(ipaddress.ip_address(str(info[4][0]).split("%")[0]), how) for info in infos]


def _non_public(address: IPAddress) -> tuple[str, str] | None:
    """(address as shown, why it is off limits) or None if the address is public."""
    if isinstance(address, ipaddress.IPv6Address):
        # Addresses that embed an IPv4 address (mapped, 6to4, Teredo) are judged by it too.
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
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
    return None if address.is_global else "non-public"
