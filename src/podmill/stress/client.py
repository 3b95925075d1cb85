"""The harness's view of the API: only public routes, as any client would use them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from podmill.errors import PodmillError


class FatalApiError(PodmillError):
    """The API cannot be used at all (unreachable, or the key is refused): the whole
    run stops, rather than each job failing on its own."""


class StressClient:
    """A thin httpx wrapper that turns transport and auth failures into one-line errors.

    httpx clients are safe to share between threads; the workload threads share one
    so connections are pooled.
    """

    def __init__(self, api: str, key: str | None, *, timeout: float = 60.0) -> None:
        self.api = api.rstrip("/")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(
            base_url=self.api,
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        self.has_key = bool(key)

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            response = self._send(method, path, **kw)
        except (httpx.ConnectError, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise FatalApiError(
                f"cannot reach the API at {self.api} ({type(exc).__name__}: {exc}); "
                "is `podmill serve` running there? check --api"
            ) from None
        except httpx.HTTPError as exc:  # a timeout or a dropped connection: this request
            raise PodmillError(f"{method} {path} failed: {type(exc).__name__}: {exc}") from None
        if response.status_code == 401:
            how = (
                "the key was refused"
                if self.has_key
                else "no key was given: pass --api-key or set PODMILL_API_KEY"
            )
            raise FatalApiError(
                f"the API at {self.api} answered 401 unauthorized for {path}: {how} "
                "(make one with `podmill keys create TENANT`)"
            )
        return response

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        # A kept-alive connection the server closed as it was reused reads as a reset;
        # a GET is safe to send again. A POST is not (a retried upload would attach to
        # the job the first one made), so its failure is the job's.
        for _ in range(2 if method == "GET" else 0):
            try:
                return self.http.request(method, path, **kw)
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
                continue
        return self.http.request(method, path, **kw)

    def preflight(self) -> dict[str, Any]:
        """Check the API answers and accepts the key before any work; returns what
        ``GET /health`` and ``GET /me`` said (tenant, role, server version if shown)."""
        health = self._request("GET", "/health")
        try:
            health_body = health.json()
        except ValueError:
            raise PodmillError(
                f"{self.api}/health did not answer JSON (HTTP {health.status_code}): "
                "is --api the URL of `podmill serve`?"
            ) from None
        me = self._request("GET", "/me")
        if me.status_code != 200:
            raise PodmillError(f"GET {self.api}/me answered HTTP {me.status_code}: {me.text[:200]}")
        return {"health": health_body, "me": me.json()}

    def upload(self, path: Path) -> dict[str, Any]:
        """``POST /jobs`` with the file as a multipart upload; returns ``{"job", "created"}``."""
        with path.open("rb") as handle:
            response = self._request(
                "POST", "/jobs", files={"file": (path.name, handle, "application/octet-stream")}
            )
        if response.status_code != 202:
            raise PodmillError(
                f"POST /jobs with {path.name} answered HTTP {response.status_code}: "
                f"{response.text[:300]}"
            )
        return response.json()

    def job(self, job_id: int) -> dict[str, Any]:
        response = self._request("GET", f"/jobs/{job_id}")
        if response.status_code != 200:
            raise PodmillError(
                f"GET /jobs/{job_id} answered HTTP {response.status_code}: {response.text[:300]}"
            )
        return response.json()

    def workers(self) -> list[dict[str, Any]] | None:
        """``GET /admin/workers``, or ``None`` when this key is not an admin's (403)."""
        response = self._request("GET", "/admin/workers")
        if response.status_code == 403:
            return None
        if response.status_code != 200:
            raise PodmillError(
                f"GET /admin/workers answered HTTP {response.status_code}: {response.text[:300]}"
            )
        return response.json()


def scrape(url: str, timeout: float = 10.0) -> tuple[str | None, str]:
    """``(text, note)`` for a Prometheus endpoint: the exposition text and ``"ok"``, or
    ``None`` and why it is unavailable (``"metrics unavailable (404)"``, a connect
    error). Never raises: a missing exporter must not fail a stress run."""
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return None, f"metrics unavailable ({type(exc).__name__}: {exc})"
    if response.status_code != 200:
        return None, f"metrics unavailable ({response.status_code})"
    return response.text, "ok"
