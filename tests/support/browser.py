"""The viewer's browser harness (tests/viewer): data made by real ``podmill run``, real
``podmill view`` and ``podmill serve`` processes over it, and a real Chromium (the
system's ``chromium``, driven by Playwright) that fails a test on any dialog or console
error.

    data = build_viewer_data(tmp, feeds)          # podmill run: the demo feed, a hostile one
    view = start_view(data.data_dir, tmp / "view.log")
    site = start_site(data, tmp / "serve")         # podmill serve, tenants alice/bob/root
    ... page.goto(view.url + "/") ...; watch.check()
    screenshot(page, "library"); axe_check(page)

tests/viewer/conftest.py turns these into session-scoped fixtures and says how to use
them.
"""

from __future__ import annotations

import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from support.api import ServerProcess, free_port, podmill_env, start_server
from support.cli import run_cli
from support.feeds import item, rss
from support.httpserver import TestHTTPServer
from support.paths import DEMO, ROOT
from support.workers import wait_for

CHROMIUM = shutil.which("chromium")
NO_CHROMIUM = (
    "the system browser `chromium` is not installed (scripts/test installs Debian "
    "chromium + chromium-driver; apt-get install chromium)"
)
SCREENSHOTS = ROOT / "bench" / "out" / "screenshots"
WIDTHS = {1280: 800, 360: 740}  # viewport width -> height

# --------------------------------------------------------------------------- hostile text
# What a feed from the internet may carry. Every page must show it as text: no dialog,
# no console error (an inline script the CSP blocks is a console error too).
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
JS_LINK = "javascript:alert(3)"
HOSTILE_TITLE = f"{SCRIPT} Hostile show {IMG}"
HOSTILE_ITEM_TITLE = f"{SCRIPT} Hostile episode {IMG}"
# Show notes as a feed writes them: HTML whose text is markup (escaped in the feed, so it
# reaches the database as written).
HOSTILE_NOTES = f"{SCRIPT} {IMG} [click]({JS_LINK}) {JS_LINK}"
HOSTILE_VTT = "WEBVTT\n\n" + "".join(
    f"00:00:{2 * n:02d}.000 --> 00:00:{2 * n + 2:02d}.000\n"
    f"Sentence {n}: {SCRIPT} and {IMG} and [click]({JS_LINK}) about the weather.\n\n"
    for n in range(5)
)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _as_text(text: str) -> str:
    """``text`` as feed text that the parser keeps as written: escaped twice, since a
    feed's title may be HTML (feedparser unescapes it once and strips real tags)."""
    return _xml(_xml(text))


def _notes(text: str) -> str:
    """Show notes in HTML (as feeds send them) whose text is ``text``, markup included."""
    return f"<![CDATA[<p><b>Show notes</b></p> <p>{_xml(text)}</p>]]>"


def hostile_feed(audio_url: str, transcript_url: str) -> bytes:
    """A feed whose titles, descriptions, show notes, links, artwork and publisher
    transcript carry markup and ``javascript:`` URLs."""
    extra = (
        f"<description>{_notes(HOSTILE_NOTES)}</description>"
        f"<link>{JS_LINK}</link>"
        f'<itunes:image href="{JS_LINK}"/>'
        f'<podcast:transcript url="{transcript_url}" type="text/vtt"/>'
    )
    body = rss([item("hostile-1", _as_text(HOSTILE_ITEM_TITLE), audio_url, "audio/flac", extra)])
    channel = (
        f"<description>{_notes(HOSTILE_NOTES)}</description>"
        f'<itunes:image href="{JS_LINK}"/><image><url>{JS_LINK}</url>'
        f"<title>x</title><link>{JS_LINK}</link></image>"
    )
    text = body.decode().replace(
        "<title>Test show</title>", f"<title>{_as_text(HOSTILE_TITLE)}</title>", 1
    )
    text = text.replace("<description>test</description>", channel, 1)
    text = text.replace(
        'xmlns:podcast="https://podcastindex.org/namespace/1.0"',
        'xmlns:podcast="https://podcastindex.org/namespace/1.0" '
        'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"',
    )
    return text.encode()


# ------------------------------------------------------------------------- the test data


@dataclass(frozen=True)
class Episode:
    key: str
    title: str
    feed_url: str | None


@dataclass
class ViewerData:
    """A data dir that real ``podmill run``s wrote: the demo feed's three episodes and a
    hostile feed's one, all processed; the feeds stay served by ``feeds``."""

    data_dir: Path
    demo_feed: str
    hostile_feed: str
    episodes: list[Episode]

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'podmill.db'}"

    def of_feed(self, feed_url: str) -> list[Episode]:
        return [e for e in self.episodes if e.feed_url == feed_url]

    @property
    def hostile(self) -> Episode:
        [episode] = self.of_feed(self.hostile_feed)
        return episode

    def titled(self, prefix: str) -> Episode:
        [episode] = [e for e in self.episodes if e.title.startswith(prefix)]
        return episode


def serve_feeds(server: TestHTTPServer) -> tuple[str, str]:
    """Put the demo feed (with its audio beside it) and the hostile feed on ``server``;
    returns their URLs."""
    for name in ("three-topics.ogg", "sonnet001.mp3", "jfk.flac"):
        server.add_file(f"/demo/{name}", DEMO / name)
    demo = server.add_file("/demo/feed.xml", DEMO / "feed.xml", "application/rss+xml")
    audio = server.add_file("/hostile/episode.flac", DEMO / "jfk.flac")
    vtt = server.add_bytes("/hostile/transcript.vtt", HOSTILE_VTT.encode(), "text/vtt")
    hostile = server.add_bytes("/hostile/feed.xml", hostile_feed(audio, vtt), "application/rss+xml")
    return demo, hostile


def episodes_in(data_dir: Path) -> list[Episode]:
    """The episodes of a data dir's database, read as an operator would."""
    conn = sqlite3.connect(data_dir / "podmill.db", timeout=10)
    try:
        rows = conn.execute(
            "SELECT e.episode_key, e.title, f.url FROM episodes e "
            "LEFT JOIN feeds f ON f.id = e.feed_id ORDER BY e.published_at DESC"
        ).fetchall()
    finally:
        conn.close()
    return [Episode(key, title, url) for key, title, url in rows]


def build_viewer_data(data_dir: Path, server: TestHTTPServer) -> ViewerData:
    """Run the real ``podmill run`` on the demo feed and on the hostile feed (both
    served by ``server``) into ``data_dir``; every episode must end ``done``."""
    demo, hostile = serve_feeds(server)
    for feed in (demo, hostile):
        result = run_cli("run", feed, "--data-dir", data_dir, "--allow-private-networks", "--json")
        assert result.code == 0, f"podmill run {feed} failed:\n{result.stderr}"
        rows = result.json_lines()
        assert rows and {r["status"] for r in rows} == {"done"}, rows
    data = ViewerData(data_dir, demo, hostile, episodes_in(data_dir))
    assert len(data.of_feed(demo)) == 3 and len(data.of_feed(hostile)) == 1, data.episodes
    # the markup reached the database as text: else the hostile tests would prove nothing
    assert data.hostile.title == HOSTILE_ITEM_TITLE, data.hostile
    return data


# ------------------------------------------------------------------------------ servers


@dataclass
class ViewProcess:
    """``podmill view`` in a subprocess; ``url`` is its base URL (no trailing slash)."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_view(data_dir: Path, log_path: Path) -> ViewProcess:
    """Start ``podmill view --data-dir DATA_DIR --port FREE``; wait until ``/`` answers."""
    port = free_port()
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "podmill",
                "view",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=podmill_env(),
        )
    view = ViewProcess(proc, f"http://127.0.0.1:{port}", log_path)

    def answers() -> bool:
        assert proc.poll() is None, f"podmill view exited:\n{view.log()}"
        try:
            return httpx.get(view.url + "/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(answers, 60, "podmill view to answer /", detail=view.log)
    return view


@dataclass
class Tenant:
    name: str
    key: str
    admin: bool


@dataclass
class Site:
    """``podmill serve`` over a copy of the viewer data, with three tenants: ``alice``
    (member) subscribed to the demo feed, ``bob`` (member) subscribed to the hostile
    feed, ``root`` (admin) subscribed to nothing. Neither member sees the other's
    episodes (the entitlement rule: a tenant sees its subscriptions' episodes)."""

    server: ServerProcess
    data: ViewerData
    tenants: dict[str, Tenant]
    visible: dict[str, list[str]]  # tenant name -> episode keys /episodes lists

    @property
    def url(self) -> str:
        return self.server.url

    def key(self, tenant: str) -> str:
        return self.tenants[tenant].key

    def api(self, tenant: str) -> httpx.Client:
        return self.server.client(self.key(tenant))

    def stop(self) -> None:
        self.server.stop()


def create_tenant(db_url: str, name: str, *, admin: bool = False) -> Tenant:
    """A tenant and a key, made with the real commands as an operator would."""
    created = run_cli("tenants", "create", name, *(["--admin"] if admin else []), "--db", db_url)
    assert created.code == 0, created.stderr
    made = run_cli("keys", "create", name, "--db", db_url, "--json")
    assert made.code == 0, made.stderr
    [row] = made.json_lines()
    return Tenant(name, row["key"], admin)


def start_site(data: ViewerData, root: Path) -> Site:
    """``podmill serve`` over a copy of ``data`` (so ``podmill view``'s stays untouched),
    tenants made by ``podmill tenants create`` / ``podmill keys create``, subscriptions
    made through the API."""
    data_dir = root / "data"
    shutil.copytree(data.data_dir, data_dir, ignore=shutil.ignore_patterns("run.lock"))
    db_url = f"sqlite:///{data_dir / 'podmill.db'}"
    tenants = {
        "alice": create_tenant(db_url, "alice"),
        "bob": create_tenant(db_url, "bob"),
        "root": create_tenant(db_url, "root", admin=True),
    }
    server = start_server(db_url, data_dir, root / "serve.log", args=("--no-background",))
    site = Site(server, data, tenants, {})
    try:
        for name, feed in (("alice", data.demo_feed), ("bob", data.hostile_feed)):
            with site.api(name) as api:
                made = api.post("/subscriptions", json={"url": feed})
                assert made.status_code == 201, made.text
        for name in tenants:
            with site.api(name) as api:
                listed = api.get("/episodes")
                assert listed.status_code == 200, listed.text
                site.visible[name] = [e["episode_key"] for e in listed.json()]
        assert sorted(site.visible["alice"]) == sorted(e.key for e in data.of_feed(data.demo_feed))
        assert site.visible["bob"] == [data.hostile.key], site.visible
        assert site.visible["root"] == [], site.visible
    except BaseException:
        server.stop()
        raise
    return site


# ------------------------------------------------------------------------------ browser


@dataclass
class Watch:
    """What a page did that a user would call broken: dialogs (``alert()`` from feed
    text), uncaught exceptions, console errors. Responses of failed *navigations* are
    recorded too, so the browser's "Failed to load resource" line for a page that is
    meant to be a 404 is not counted; a failed script, style or media load is."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed_pages: set[str] = field(default_factory=set)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        def on_console(message: Any) -> None:
            if message.type != "error":
                return
            where = (message.location or {}).get("url", "")
            if message.text.startswith("Failed to load resource") and where in self.failed_pages:
                return
            self.errors.append(f"console: {message.text} ({where})")

        def on_response(response: Any) -> None:
            request = response.request
            if response.status >= 400 and request.is_navigation_request():
                self.failed_pages.add(response.url)

        page.on("dialog", on_dialog)
        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("response", on_response)

    def allow(self, pattern: str) -> None:
        """Do not count console errors matching ``pattern`` (a test that expects one)."""
        self.allowed.append(re.compile(pattern))

    def problems(self) -> list[str]:
        errors = [e for e in self.errors if not any(p.search(e) for p in self.allowed)]
        return [f"dialog {d}" for d in self.dialogs] + errors

    def check(self) -> None:
        """Fail if a dialog opened or a console error was logged so far."""
        problems = self.problems()
        assert not problems, "the page misbehaved:\n" + "\n".join(problems)


def launch(playwright: Any) -> Any:
    """The system Chromium, headless (never a downloaded browser build)."""
    assert CHROMIUM, NO_CHROMIUM
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        headless=True,
    )


def new_page(browser: Any, watch: Watch, width: int = 1280) -> Iterator[Any]:
    """A fresh context (no cookies) and page at ``width``, watched by ``watch``."""
    context = browser.new_context(viewport={"width": width, "height": WIDTHS.get(width, 800)})
    context.set_default_timeout(15_000)
    page = context.new_page()
    watch.attach(page)
    try:
        yield page
    finally:
        context.close()


def login(page: Any, site_url: str, key: str, next_path: str = "/") -> None:
    """Log in through the form, as a person would; lands on ``next_path``."""
    page.goto(f"{site_url}/login?next={next_path}")
    page.fill("#key", key)
    with page.expect_navigation():
        page.click("form[action='/login'] button[type=submit]")


def logout(page: Any) -> None:
    with page.expect_navigation():
        page.click("form[action='/logout'] button[type=submit]")


def screenshot(page: Any, name: str) -> list[Path]:
    """Full-page PNGs of ``page`` at 1280 and 360 px under bench/out/screenshots/
    (``NAME-1280.png``, ``NAME-360.png``); the viewport is put back afterwards."""
    assert re.fullmatch(r"[a-z0-9_-]+", name), name
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    paths = []
    try:
        for width, height in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            path = SCREENSHOTS / f"{name}-{width}.png"
            page.screenshot(path=str(path), full_page=True)
            paths.append(path)
    finally:
        if before:
            page.set_viewport_size(before)
    return paths


def axe_check(page: Any, *, impacts: tuple[str, ...] = ("serious", "critical")) -> None:
    """Run axe-core on ``page``; fail on any violation of impact in ``impacts``."""
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    bad = [v for v in violations if v.get("impact") in impacts]
    lines = [
        f"{v['impact']}: {v['id']}: {v['help']} — "
        + "; ".join(n.get("target", [""])[0] if n.get("target") else "" for n in v["nodes"][:5])
        for v in bad
    ]
    assert not bad, f"axe found {len(bad)} serious/critical violations on {page.url}:\n" + (
        "\n".join(lines)
    )


def page_module_missing(name: str) -> str | None:
    """Why a page is not there yet (its module ``podmill.api.web.NAME`` is not written),
    else ``None``: cross-page tests of a page skip with that reason until it lands."""
    import importlib.util

    if importlib.util.find_spec(f"podmill.api.web.{name}") is None:
        return f"the {name} page (src/podmill/api/web/{name}.py) is not written yet"
    return None


def library_missing() -> str | None:
    """Why the library page cannot be tested yet (it is still the foundation's
    placeholder), else ``None``."""
    template = ROOT / "src" / "podmill" / "api" / "web" / "templates" / "library.html"
    if "Placeholder: the library page is being built" in template.read_text():
        return "the library page (pages.py: library, templates/library.html) is a placeholder"
    return None


def episode_links(page: Any) -> list[str]:
    """The episode keys the page links to (``a[href^="/view/episode/"]``)."""
    hrefs = page.eval_on_selector_all(
        'a[href^="/view/episode/"]', "els => els.map(e => e.getAttribute('href'))"
    )
    return sorted({re.split(r"[/?#]", h.removeprefix("/view/episode/"))[0] for h in hrefs})


def urls_naming(page: Any, key: str) -> list[str]:
    """Every same-origin URL on the page (links, media, sources, images, forms) whose
    path names the episode ``key``: what another tenant must not be able to open."""
    found = page.evaluate(
        """() => {
            const out = [];
            for (const el of document.querySelectorAll('[href], [src], [action], [data-src]')) {
                for (const name of ['href', 'src', 'action', 'data-src']) {
                    const value = el.getAttribute(name);
                    if (!value) continue;
                    const url = new URL(value, location.href);
                    if (url.origin === location.origin) out.push(url.pathname + url.search);
                }
            }
            const audio = document.querySelector('audio');
            if (audio && audio.currentSrc) out.push(new URL(audio.currentSrc).pathname);
            return out;
        }"""
    )
    return sorted({u for u in found if key in u})


def assert_inert(page: Any) -> None:
    """Nothing on the page can run but the viewer's own files: every script is a
    ``/static/`` file or a JSON block that parses, no element has an inline event handler
    or a ``javascript:`` URL, no frame, no ``<img src=x>`` from feed text."""
    found = page.evaluate(
        """() => {
            const bad = [];
            const URL_ATTRS = ['href', 'src', 'action', 'formaction', 'data', 'poster'];
            for (const s of document.querySelectorAll('script')) {
                const src = s.getAttribute('src');
                if (src !== null) {
                    if (!new URL(src, location.href).pathname.startsWith('/static/')
                        || new URL(src, location.href).origin !== location.origin)
                        bad.push('script src ' + src);
                } else if (s.type !== 'application/json') {
                    bad.push('inline script ' + s.textContent.slice(0, 80));
                } else {
                    try { JSON.parse(s.textContent) } catch (e) { bad.push('bad JSON block') }
                }
            }
            for (const el of document.querySelectorAll('*')) {
                for (const attr of el.attributes) {
                    const value = attr.value.trim().toLowerCase();
                    if (attr.name.startsWith('on')) bad.push(el.tagName + ' ' + attr.name);
                    if (URL_ATTRS.includes(attr.name)
                        && value.replace(/\\s/g, '').startsWith('javascript:'))
                        bad.push(el.tagName + ' ' + attr.name + '=' + attr.value);
                }
            }
            for (const el of document.querySelectorAll('iframe, object, embed, base'))
                bad.push(el.tagName);
            for (const img of document.querySelectorAll('img[src="x"]')) bad.push('img src=x');
            return bad;
        }"""
    )
    assert not found, f"executable markup on {page.url}: {found}"
