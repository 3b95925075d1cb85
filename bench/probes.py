"""The hostile-tenant probe run: a real ``podmill serve`` attacked the way the hardening
review did (docs/security.md), with a table of tries, passes and 5xx answers per area,
and the server's memory peak under the body attacks.

It starts a local HTTP server with a victim's feed, an attacker's look-alike feeds, a
slow feed and a huge one; a SQLite database with three tenants (``alice`` the victim,
``mallory`` the attacker, ``ops`` the admin); and ``podmill serve`` as a real process
with no worker (nothing here needs a job to finish). Each probe is one request or a short
sequence of them, judged on what the victim or a stranger would see.

    python bench/probes.py [--keep]      # --keep: leave the temp dir for a look

The baseline in the same run is the server at rest: its RSS before the body attacks,
and ``GET /health`` latency with no fetch in flight beside the latency while one tenant
holds slow subscriptions open.
"""

from __future__ import annotations

import argparse
import io
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import wave
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the real HTTP server and serve helpers the tests use

from podmill.platform import Platform  # noqa: E402
from podmill.settings import Settings  # noqa: E402
from podmill.storage import db  # noqa: E402

from support.api import start_server  # noqa: E402
from support.feeds import item, rss  # noqa: E402
from support.httpserver import RequestHandler, TestHTTPServer  # noqa: E402
from support.paths import DEMO  # noqa: E402

SECRET = "INTERNAL-SECRET-7f3a"  # planted in fetched bodies; must never come back in an answer


@dataclass
class Tally:
    tries: int = 0
    passes: int = 0
    server_errors: int = 0
    failures: list[str] = field(default_factory=list)


class Probes:
    def __init__(self) -> None:
        self.areas: dict[str, Tally] = defaultdict(Tally)

    def check(self, area: str, name: str, ok: bool, *responses: httpx.Response | None) -> bool:
        tally = self.areas[area]
        tally.tries += 1
        fives = [r for r in responses if r is not None and r.status_code >= 500]
        tally.server_errors += len(fives)
        if ok and not fives:
            tally.passes += 1
        else:
            codes = ",".join(str(r.status_code) for r in responses if r is not None)
            tally.failures.append(f"{name} [{codes}]")
        return ok

    def table(self) -> str:
        lines = ["| area | tries | passes | 5xx |", "|---|---:|---:|---:|"]
        total = Tally()
        for area, t in self.areas.items():
            lines.append(f"| {area} | {t.tries} | {t.passes} | {t.server_errors} |")
            total.tries += t.tries
            total.passes += t.passes
            total.server_errors += t.server_errors
        lines.append(f"| **all** | {total.tries} | {total.passes} | {total.server_errors} |")
        return "\n".join(lines)


# ------------------------------------------------------------------------------ fixtures


def feed_doc(title: str, items: list[str], *, guid: str | None = None, self_url: str = "") -> bytes:
    extra = f"<podcast:guid>{guid}</podcast:guid>" if guid else ""
    if self_url:
        extra += (
            f'<atom:link xmlns:atom="http://www.w3.org/2005/Atom" rel="self" href="{self_url}"/>'
        )
    return rss(items, title=title).replace(b"<link>", extra.encode() + b"<link>", 1)


def wav_bytes(seconds: float = 1.0, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(int(seconds * rate) * 2))
    return out.getvalue()


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def raw_request(url: str, head: str, body: bytes = b"", *, read_timeout: float = 10) -> int:
    """Send ``head`` (request line + headers) and ``body`` on a raw socket; the status
    code of the answer (0 when the server closed without one)."""
    host, port = url.split("//")[1].rsplit(":", 1)
    with socket.create_connection((host.strip("[]"), int(port)), timeout=read_timeout) as sock:
        try:
            sock.sendall(head.encode() + b"\r\n")
            for start in range(0, len(body), 1 << 20):
                sock.sendall(body[start : start + (1 << 20)])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the whole body arrived
        try:
            first = sock.recv(64)
        except (TimeoutError, ConnectionError):
            return 0
    parts = first.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def stream_chunked(url: str, key: str, total: int, chunk: int = 1 << 20) -> int:
    """POST an upload as an endless chunked multipart stream; the status the server
    answered with, once it answered (it should not wait for the end)."""
    host, port = url.split("//")[1].rsplit(":", 1)
    boundary = "probeboundary"
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            (
                "POST /jobs HTTP/1.1\r\n"
                f"Host: {host}\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        part = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode() + wav_bytes(0.1)
        payload = [part] + [bytes(chunk)] * (total // chunk)
        sock.settimeout(0.5)
        for piece in payload:
            try:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                answer = sock.recv(64)
                if answer:
                    return int(answer.split(b" ", 2)[1])
            except TimeoutError:
                continue
        sock.settimeout(10)
        try:
            answer = sock.recv(64)
        except (TimeoutError, ConnectionError):
            return 0
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


# --------------------------------------------------------------------------------- probes


def probe_auth(p: Probes, api: httpx.Client, alice: httpx.Client, base: str) -> None:
    for method, path in [
        ("GET", "/jobs"),
        ("POST", "/jobs"),
        ("GET", "/episodes"),
        ("GET", "/subscriptions"),
        ("GET", "/search?q=x"),
        ("GET", "/digests"),
        ("GET", "/admin/queues"),
        ("GET", "/feeds"),
    ]:
        r = api.request(method, path)
        p.check("auth and roles", f"{method} {path} without a key", r.status_code == 401, r)
        r = api.request(method, path, headers={"Authorization": "Bearer pm_nonsense"})
        p.check("auth and roles", f"{method} {path} wrong key", r.status_code == 401, r)
    for path in ("/feeds", "/admin/queues", "/admin/dead", "/admin/workers"):
        r = alice.get(path)
        p.check("auth and roles", f"member {path}", r.status_code == 403, r)


def probe_takeover(
    p: Probes, http: TestHTTPServer, alice: httpx.Client, mallory: httpx.Client, ops: httpx.Client
) -> dict[str, Any]:
    audio = http.add_file("/victim/ep1.mp3", DEMO / "sonnet001.mp3")
    victim_url = http.add_bytes(
        "/victim.xml",
        feed_doc("Alice's show", [item("v-1", "Alice episode", audio)], guid="victim-guid"),
        "application/rss+xml",
    )
    r = alice.post("/subscriptions", json={"url": victim_url})
    p.check("catalog takeover", "victim subscribes", r.status_code in (200, 201), r)
    evil_audio = http.add_file("/evil/ep.mp3", DEMO / "sonnet001.mp3")
    evil_items = [item("v-1", "PWNED", evil_audio), item("evil-2", "Injected", evil_audio)]
    claims = {
        "podcast:guid": feed_doc("Evil", evil_items, guid="victim-guid"),
        "atom self": feed_doc("Evil", evil_items, self_url=victim_url),
        "both": feed_doc("Evil", evil_items, guid="victim-guid", self_url=victim_url),
    }
    for claim, doc in claims.items():
        evil_url = http.add_bytes(
            f"/evil-{claim.replace(' ', '-')}.xml", doc, "application/rss+xml"
        )
        r = mallory.post("/subscriptions", json={"url": evil_url})
        subs = alice.get("/subscriptions")
        eps = alice.get("/episodes")
        urls = [s["url"] for s in subs.json()] if subs.status_code == 200 else []
        titles = [e["title"] for e in eps.json()] if eps.status_code == 200 else []
        p.check(
            "catalog takeover",
            f"{claim} claim keeps the victim's feed URL",
            urls == [victim_url],
            r,
            subs,
        )
        p.check(
            "catalog takeover",
            f"{claim} claim leaves the victim's titles",
            "PWNED" not in titles and "Injected" not in titles,
            eps,
        )
    feeds = ops.get("/feeds")
    p.check(
        "catalog takeover",
        "each fetch URL is its own catalog feed",
        feeds.status_code == 200 and len({f["url"] for f in feeds.json()}) == len(feeds.json()),
        feeds,
    )
    # the victim's enclosure URL, known to the attacker, yields nothing of hers
    eps = alice.get("/episodes").json()
    victim_key = eps[0]["episode_key"] if eps else ""
    r = mallory.post("/jobs", json={"url": audio})
    ep = mallory.get(f"/episodes/{victim_key}")
    tr = mallory.get(f"/episodes/{victim_key}/transcript?format=txt")
    p.check(
        "catalog takeover",
        "a known enclosure URL does not reveal the victim's episode",
        ep.status_code == 404 and tr.status_code == 404,
        r,
        ep,
        tr,
    )
    return {"victim_url": victim_url, "audio": audio}


def probe_uploads_and_cancel(
    p: Probes, alice: httpx.Client, mallory: httpx.Client, victim: dict[str, Any]
) -> None:
    data = wav_bytes(1.5)
    first = alice.post("/jobs", files={"file": ("alice-secret-interview.wav", data, "audio/wav")})
    second = mallory.post("/jobs", files={"file": ("guess.wav", data, "audio/wav")})
    own = mallory.post("/jobs", files={"file": ("fresh.wav", wav_bytes(1.7), "audio/wav")})
    shape = {k for k in second.json()} if second.status_code == 202 else set()
    p.check(
        "upload identity",
        "identical bytes answer like a first upload",
        second.status_code == own.status_code == 202
        and second.json().get("created") == own.json().get("created")
        and shape == {k for k in own.json()},
        first,
        second,
        own,
    )
    if first.status_code == 202:
        job = alice.get(f"/jobs/{first.json()['job']['id']}").json()
        text = str(job)
        p.check(
            "upload identity",
            "the second upload does not rename the first",
            "guess.wav" not in text and "guess" not in str(job.get("title", "")),
        )
        p.check(
            "upload identity",
            "the second upload does not see the first's name",
            "alice-secret-interview" not in second.text,
            second,
        )
        # cancel: mallory withdraws her request; alice's job stays wanted
        mallory_job = second.json()["job"]["id"] if second.status_code == 202 else None
        if mallory_job is not None:
            c = mallory.post(f"/jobs/{mallory_job}/cancel")
            after = alice.get(f"/jobs/{first.json()['job']['id']}")
            p.check(
                "cancel",
                "a co-requester's cancel leaves the job running for the other",
                after.status_code == 200 and after.json()["status"] != "cancelled",
                c,
                after,
            )


def probe_bodies(
    p: Probes, base: str, key: str, pid: int, cap: int, memory: dict[str, int]
) -> None:
    host = base.split("//")[1]
    memory["rss_before_kib"] = vm_rss_kib(pid)
    memory["hwm_before_kib"] = vm_hwm_kib(pid)
    huge = 2 * 1024**3
    for path, ctype in [
        ("/jobs", "application/json"),
        ("/jobs", "multipart/form-data; boundary=x"),
        ("/subscriptions", "application/json"),
        ("/feeds", "application/json"),
    ]:
        t0 = time.monotonic()
        status = raw_request(
            base,
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {huge}\r\n",
            b"{",
        )
        p.check(
            "bodies",
            f"unauthenticated 2 GiB declared to {path}: 401 unread",
            status == 401 and time.monotonic() - t0 < 5,
        )
        t0 = time.monotonic()
        status = raw_request(
            base,
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {huge}\r\n",
            b"{",
        )
        p.check(
            "bodies",
            f"2 GiB declared to {path}: 413 unread",
            status == 413 and time.monotonic() - t0 < 5,
        )
    status = stream_chunked(base, key, total=max(4 * cap, 256 << 20))
    p.check("bodies", "endless chunked upload: 413 while streaming", status == 413)
    # a JSON body far bigger than any JSON route needs, streamed
    status = raw_request(
        base,
        f"POST /jobs HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {64 << 20}\r\n",
        b'{"url": "' + b"a" * (64 << 20),
        read_timeout=30,
    )
    p.check("bodies", "64 MiB JSON body: 413", status == 413)
    memory["hwm_after_kib"] = vm_hwm_kib(pid)


def probe_bad_input(p: Probes, alice: httpx.Client, ops: httpx.Client) -> None:
    cases: list[tuple[str, Callable[[], httpx.Response]]] = [
        (
            "garbage JSON",
            lambda: alice.post(
                "/jobs", content=b"{nope", headers={"Content-Type": "application/json"}
            ),
        ),
        ("JSON list", lambda: alice.post("/jobs", json=[1, 2])),
        (
            "text/plain",
            lambda: alice.post("/jobs", content=b"x", headers={"Content-Type": "text/plain"}),
        ),
        (
            "xml",
            lambda: alice.post(
                "/jobs", content=b"<a/>", headers={"Content-Type": "application/xml"}
            ),
        ),
        ("form-urlencoded", lambda: alice.post("/jobs", data={"url": "x"})),
        (
            "multipart without boundary",
            lambda: alice.post(
                "/jobs", content=b"--x", headers={"Content-Type": "multipart/form-data"}
            ),
        ),
        ("multipart no file", lambda: alice.post("/jobs", files={"other": ("a", b"1")})),
        (
            "non-audio upload",
            lambda: alice.post(
                "/jobs", files={"file": ("a.wav", b"<html>" + SECRET.encode(), "audio/wav")}
            ),
        ),
        ("url http://", lambda: alice.post("/jobs", json={"url": "http://"})),
        ("url bracket", lambda: alice.post("/jobs", json={"url": "http://[::1"})),
        ("url space", lambda: alice.post("/jobs", json={"url": "https://exa mple.com/a.mp3"})),
        ("url port", lambda: alice.post("/jobs", json={"url": "http://example.com:99999/a.mp3"})),
        (
            "url idna",
            lambda: alice.post("/jobs", json={"url": "http://xn--zz.\u2603.invalid/a.mp3"}),
        ),
        ("url long", lambda: alice.post("/jobs", json={"url": "http://a.invalid/" + "a" * 5000})),
        ("url ftp", lambda: alice.post("/jobs", json={"url": "ftp://example.com/a.mp3"})),
        ("url int", lambda: alice.post("/jobs", json={"url": 5})),
        (
            "unknown field",
            lambda: alice.post("/jobs", json={"url": "http://a.invalid/a.mp3", "x": 1}),
        ),
        (
            "both fields",
            lambda: alice.post("/jobs", json={"url": "http://a.invalid/a.mp3", "episode_key": "k"}),
        ),
        (
            "reply_to file",
            lambda: alice.post(
                "/jobs", json={"episode_key": "k", "reply_to": "file:///etc/passwd"}
            ),
        ),
        ("job id text", lambda: alice.get("/jobs/abc")),
        ("job id huge", lambda: alice.get("/jobs/99999999999999999999999")),
        ("job id negative", lambda: alice.get("/jobs/-1")),
        ("limit negative", lambda: alice.get("/jobs?limit=-5")),
        ("limit huge", lambda: alice.get("/episodes?limit=100000000")),
        ("since garbage", lambda: alice.get("/episodes?since=yesterday-ish")),
        ("search empty", lambda: alice.get("/search?q=")),
        ("search syntax", lambda: alice.get('/search?q="NEAR(a b) OR * AND (')),
        ("search since", lambda: alice.get("/search?q=x&since=%00")),
        (
            "episode key traversal",
            lambda: alice.get("/episodes/..%2F..%2Fetc/transcript?format=txt"),
        ),
        ("transcript format", lambda: alice.get("/episodes/abc/transcript?format=exe")),
        ("digest since", lambda: alice.get("/digest?since=-3d")),
        ("digest id", lambda: alice.get("/digests/xyz")),
        (
            "subscription url",
            lambda: alice.post("/subscriptions", json={"url": "javascript:alert(1)"}),
        ),
        ("subscription empty", lambda: alice.post("/subscriptions", json={})),
        (
            "feed interval",
            lambda: ops.post(
                "/feeds", json={"url": "http://a.invalid/f.xml", "interval_seconds": -1}
            ),
        ),
        ("queue stage", lambda: ops.post("/admin/queues/nope/pause")),
        ("dead retry id", lambda: ops.post("/admin/dead/abc/retry")),
    ]
    for name, call in cases:
        try:
            r = call()
        except httpx.TransportError:
            r = call()  # once more: the connection a refused request closed was reused
        except httpx.HTTPError as exc:
            p.check("bad input", f"{name}: {exc}", False)
            continue
        # a search is free text: any query is a 200, never its syntax reaching the index
        ok = r.status_code == 200 if name == "search syntax" else 400 <= r.status_code < 500
        try:
            body = r.json()
            shaped = r.status_code == 200 or (isinstance(body, dict) and "detail" in body)
            ok = ok and shaped and SECRET not in r.text
        except ValueError:
            ok = False
        p.check("bad input", name, ok, r)


def probe_outbound(
    p: Probes, http: TestHTTPServer, alice: httpx.Client, mallory: httpx.Client
) -> dict[str, float]:
    # bytes of a fetched page never come back in an answer
    page = http.add_bytes(
        "/secret.html", f"<html><body>{SECRET}</body></html>".encode(), "text/html"
    )
    r = mallory.post("/subscriptions", json={"url": page})
    p.check(
        "no internal data",
        "an HTML page as a feed: no bytes quoted",
        400 <= r.status_code < 500 and SECRET not in r.text,
        r,
    )
    r = mallory.post("/jobs", json={"url": page})
    p.check(
        "no internal data",
        "an HTML page as audio: no bytes quoted",
        400 <= r.status_code < 500 and SECRET not in r.text,
        r,
    )
    # a slow feed held open by one tenant while others read
    stop = threading.Event()

    def trickle(req: RequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "application/rss+xml")
        req.end_headers()
        while not stop.is_set() and not req.stopping.is_set():
            try:
                req.wfile.write(b" ")
                req.wfile.flush()
            except OSError:
                return
            stop.wait(0.5)

    slow = http.add_route("/slow.xml", trickle)
    health = []
    for _ in range(10):
        t0 = time.monotonic()
        alice.get("/health")
        health.append(time.monotonic() - t0)
    quiet = statistics.median(health)
    answers: list[httpx.Response | Exception] = []

    def hold(n: int) -> None:
        try:
            with httpx.Client(
                base_url=str(mallory.base_url), headers=dict(mallory.headers), timeout=120
            ) as c:
                answers.append(c.post("/subscriptions", json={"url": f"{slow}?n={n}"}))
        except Exception as exc:  # a probe records everything
            answers.append(exc)

    holders = [threading.Thread(target=hold, args=(n,)) for n in range(48)]
    for t in holders:
        t.start()
    time.sleep(1.0)
    loaded = []
    statuses = []
    for path in ["/health", "/jobs"] * 10:
        t0 = time.monotonic()
        try:
            statuses.append(alice.get(path, timeout=10).status_code)
        except httpx.HTTPError:
            statuses.append(599)  # no answer within 10 s: frozen behind the fetches
        loaded.append(time.monotonic() - t0)
    p.check(
        "slow servers",
        "48 slow subscribes: /health and /jobs answer within 2 s",
        max(loaded) < 2.0 and all(s < 500 for s in statuses),
    )
    t0 = time.monotonic()
    for t in holders:
        t.join(timeout=max(0.0, 90 - (time.monotonic() - t0)))
    held = time.monotonic() - t0
    stop.set()
    p.check(
        "slow servers",
        "slow subscribes end by their deadline (< 60 s)",
        all(not t.is_alive() for t in holders) and held < 60,
    )
    codes = [a.status_code for a in answers if isinstance(a, httpx.Response)]
    p.check(
        "slow servers",
        "slow subscribes answer 4xx (422/429), not 5xx",
        bool(codes) and all(400 <= c < 500 for c in codes),
    )
    return {"health_quiet_s": quiet, "health_loaded_max_s": max(loaded), "slow_held_s": held}


def probe_ssrf(p: Probes) -> None:
    """The guard every fetch goes through, called in-process: on unfixed code a server
    probe would send traffic to these addresses, and nothing here may leave loopback."""
    from podmill.errors import PodmillError
    from podmill.feeds.download import check_url

    def refused(url: str, settings: Settings) -> bool:
        try:
            check_url(url, settings)
        except PodmillError:
            return True
        return False

    private_on = Settings(allow_private_networks=True)
    private_off = Settings(allow_private_networks=False)
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/",
        "http://100.100.100.200/latest/meta-data/",
        "http://169.254.170.2/v2/credentials",
        "http://[::ffff:169.254.169.254]/",
        "http://0xa9fea9fe/",
    ):
        p.check("ssrf", f"{url} refused with private networks on", refused(url, private_on))
    for url in ("http://[fec0::1]/", "http://192.0.0.8/", "http://10.0.0.1/", "http://[::1]/"):
        p.check("ssrf", f"{url} refused with private networks off", refused(url, private_off))


def probe_exposure(p: Probes, api: httpx.Client) -> None:
    # a stranger: no key, arriving through a proxy (a forwarding header counts as remote)
    stranger = {"X-Forwarded-For": "203.0.113.9"}
    r = api.get("/metrics", headers=stranger)
    p.check(
        "exposure",
        "/metrics refuses a stranger, or names no tenant, feed or path",
        r.status_code in (401, 403)
        or not any(word in r.text for word in ("alice", "mallory", "victim", "/tmp")),
        r,
    )
    r = api.get("/metrics")
    p.check(
        "exposure",
        "/metrics from loopback names no tenant, feed or path",
        not any(word in r.text for word in ("alice", "mallory", "victim", "/tmp")),
        r,
    )
    r = api.get("/health", headers=stranger)
    p.check(
        "exposure",
        "/health for a stranger: no paths, versions or checks",
        "/tmp" not in r.text and "git" not in r.text.lower() and "checks" not in r.text,
        r,
    )
    r = api.get("/docs")
    headers = {k.lower() for k in r.headers}
    p.check(
        "exposure",
        "HTML answers carry hardening headers",
        {"content-security-policy", "x-content-type-options"} <= headers,
        r,
    )


# ---------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="podmill-probes-"))
    url = f"sqlite:///{tmp / 'podmill.db'}"
    db.upgrade(url)
    platform = Platform(Settings(db=url, data_dir=tmp / "data"))
    keys = {}
    for name, admin in (("alice", False), ("mallory", False), ("ops", True)):
        platform.create_tenant(name, admin=admin)
        keys[name] = platform.create_key(name)[1]
    platform.close()
    cap = 8 << 20
    env = {"PODMILL_SERVER__MAX_UPLOAD_BYTES": str(cap), "PODMILL_SERVER__BACKFILL": "1"}
    server = start_server(url, tmp / "data", tmp / "serve.log", env=env)
    p = Probes()
    memory: dict[str, int] = {}
    timings: dict[str, float] = {}
    t_start = time.monotonic()
    try:
        with TestHTTPServer() as http:
            api = httpx.Client(base_url=server.url, timeout=60)
            alice, mallory, ops = (server.client(keys[n]) for n in ("alice", "mallory", "ops"))
            probe_auth(p, api, alice, server.url)
            victim = probe_takeover(p, http, alice, mallory, ops)
            probe_uploads_and_cancel(p, alice, mallory, victim)
            probe_bad_input(p, alice, ops)
            probe_bodies(p, server.url, keys["mallory"], server.proc.pid, cap, memory)
            timings = probe_outbound(p, http, alice, mallory)
            probe_ssrf(p)
            probe_exposure(p, api)
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(p.table())
    print()
    print(
        f"server memory: RSS at rest {memory.get('rss_before_kib', 0) / 1024:.0f} MiB; peak before "
        f"the body attacks {memory.get('hwm_before_kib', 0) / 1024:.0f} MiB, after "
        f"{memory.get('hwm_after_kib', 0) / 1024:.0f} MiB (ratio "
        f"{memory.get('hwm_after_kib', 1) / max(memory.get('hwm_before_kib', 1), 1):.2f})"
    )
    if timings:
        print(
            f"/health: {timings['health_quiet_s'] * 1000:.1f} ms at rest (median), "
            f"{timings['health_loaded_max_s'] * 1000:.1f} ms worst while 48 slow subscribes "
            f"were held (ratio {timings['health_loaded_max_s'] / timings['health_quiet_s']:.1f}); "
            f"they ended within {timings['slow_held_s']:.1f} s"
        )
    print(f"probe run: {time.monotonic() - t_start:.0f} s")
    for area, t in p.areas.items():
        for failure in t.failures:
            print(f"FAILED  {area}: {failure}")


if __name__ == "__main__":
    main()
