"""The library, search and digest pages, over data that real ``podmill run``\\ s made.

A real ``podmill view`` process serves the labelled corpus (tests/support/corpus.py:
three feeds, 21 processed episodes), an empty data dir, and a feed whose titles and
transcript are hostile HTML; a real ``podmill serve`` over a copy of the corpus's
database shows two tenants, each subscribed to one feed, that neither sees the
other's episodes, hits or digests. The HTML is read with the standard library's
parser (tests/viewer/test_viewer_pages.py's :class:`Page`), not matched as text.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from support.api import ServerProcess, start_server
from support.browser import (
    HOSTILE_ITEM_TITLE,
    HOSTILE_TITLE,
    IMG,
    SCRIPT,
    ViewerData,
    ViewProcess,
    start_view,
)
from support.cli import run_cli
from support.corpus import ProcessedCorpus
from support.workers import wait_for

# ----------------------------------------------------------------------- reading pages

pytestmark = pytest.mark.slow  # the labelled corpus is processed once per session (about 2 min)

VOID = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def all(self, tag: str, **attrs: str) -> list[Element]:
        """Descendants with ``tag`` whose attributes contain ``attrs`` (``class_`` is a
        class among the element's classes)."""
        found = []
        for child in self.children:
            if isinstance(child, str):
                continue
            if child.tag == tag and all(
                value in child.attrs.get("class", "").split()
                if name == "class_"
                else child.attrs.get(name) == value
                for name, value in attrs.items()
            ):
                found.append(child)
            found.extend(child.all(tag, **attrs))
        return found

    def one(self, tag: str, **attrs: str) -> Element:
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag} {attrs}>"
        return found[0]


class Page(HTMLParser):
    """A page's element tree (tags, attributes, text with entities decoded)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {})
        self._stack = [self.root]
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self._stack[-1].children.append(element)
        if tag not in VOID:
            self._stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._stack) - 1, 0, -1):
            if self._stack[depth].tag == tag:
                del self._stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self._stack[-1].children.append(data)

    @property
    def main(self) -> Element:
        return self.root.one("main")


def links(element: Element, prefix: str = "/") -> list[str]:
    return [a.attrs["href"] for a in element.all("a") if a.attrs.get("href", "").startswith(prefix)]


# ------------------------------------------------------------------------ podmill view


@dataclass
class View:
    """``podmill view`` (the harness's :class:`~support.browser.ViewProcess`) read as
    pages."""

    process: ViewProcess

    @property
    def url(self) -> str:
        return self.process.url

    def get(self, path: str, **params: str | int) -> httpx.Response:
        return httpx.get(self.url + path, params=params, timeout=60, follow_redirects=False)

    def page(self, path: str, status: int = 200, **params: str | int) -> Page:
        response = self.get(path, **params)
        assert response.status_code == status, (response.status_code, response.text[-2000:])
        assert response.headers["content-type"].startswith("text/html")
        return Page(response.text)


@pytest.fixture(scope="session")
def start_pages_view(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Starts ``podmill view --data-dir D`` (support/browser.py); all stop at the end."""
    started: list[ViewProcess] = []

    def start(data_dir: Path) -> View:
        process = start_view(data_dir, tmp_path_factory.mktemp("view") / "view.log")
        started.append(process)
        return View(process)

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def corpus_view(processed_corpus: ProcessedCorpus, start_pages_view) -> View:  # type: ignore[no-untyped-def]
    return start_pages_view(processed_corpus.data_dir)


def titles_by_feed(corpus: ProcessedCorpus) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for episode in corpus.corpus.episodes:
        title = corpus.corpus.feed_of(episode.guid).title
        out.setdefault(title, set()).add(episode.title)
    return out


def episode_rows(page: Page) -> list[dict[str, str]]:
    table = page.main.one("table", class_="episodes")
    rows = []
    for tr in table.one("tbody").all("tr"):
        cells = tr.all("td")
        link = cells[0].one("a")
        rows.append(
            {
                "title": link.text,
                "href": link.attrs["href"],
                "feed": cells[1].text.strip(),
                "status": cells[2].text.strip(),
                "duration": cells[3].text.strip(),
                "published": cells[4].text.strip(),
            }
        )
    return rows


# ----------------------------------------------------------------------------- library


def test_library_lists_the_feeds_and_every_episode_newest_first(
    corpus_view: View, processed_corpus: ProcessedCorpus
) -> None:
    page = corpus_view.page("/", limit=100)
    by_feed = titles_by_feed(processed_corpus)
    cards = page.main.all("li", class_="feed-card")
    assert {c.one("a", class_="feed-title").text for c in cards} == set(by_feed)
    for card in cards:
        title = card.one("a", class_="feed-title").text
        assert f"{len(by_feed[title])} episodes" in card.text
        assert "fetched 20" in card.text  # podmill run fetched it; no poller here
        art = card.one("span", class_="art")
        assert art.attrs["role"] == "img" and title in art.attrs["aria-label"]

    rows = episode_rows(page)
    keys = processed_corpus.episode_keys
    assert sorted(r["href"] for r in rows) == sorted(f"/view/episode/{k}" for k in keys.values())
    assert all(r["status"] == "done" for r in rows)
    assert all(r["duration"] for r in rows)  # e.g. 2:54
    dated = [r["published"] for r in rows]
    assert dated == sorted(dated, reverse=True)
    for row in rows:  # each row names its own feed
        assert row["title"] in by_feed[row["feed"]]


def test_library_pages_through_episodes(
    corpus_view: View, processed_corpus: ProcessedCorpus
) -> None:
    everything = [r["href"] for r in episode_rows(corpus_view.page("/", limit=100))]
    seen: list[str] = []
    path, params = "/", {"limit": 8}
    pages = 0
    while True:
        page = corpus_view.page(path, **params)
        seen += [r["href"] for r in episode_rows(page)]
        pages += 1
        pager = page.main.all("nav", class_="pager")
        following = [a for p in pager for a in p.all("a") if a.attrs.get("rel") == "next"]
        if pages > 1:  # every page after the first links back
            assert [a for p in pager for a in p.all("a") if a.attrs.get("rel") == "prev"]
        if not following:
            break
        parts = urlsplit(following[0].attrs["href"])
        path, params = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert pages == 3  # 21 episodes, 8 a page
    assert seen == everything


def test_library_filters_by_feed_and_by_title(
    corpus_view: View, processed_corpus: ProcessedCorpus
) -> None:
    by_feed = titles_by_feed(processed_corpus)
    page = corpus_view.page("/")
    options = {o.text: o.attrs["value"] for o in page.main.one("select").all("option")}
    for title, expected in by_feed.items():
        rows = episode_rows(corpus_view.page("/", feed=options[title], limit=100))
        assert {r["title"] for r in rows} == expected
        selected = corpus_view.page("/", feed=options[title]).main.one("li", class_="selected")
        assert selected.one("a", class_="feed-title").text == title

    every_title = {t for titles in by_feed.values() for t in titles}
    word = "storm"
    rows = episode_rows(corpus_view.page("/", q=word.upper(), feed="", limit=100))
    assert {r["title"] for r in rows} == {t for t in every_title if word in t.lower()}
    assert rows, "the corpus has episodes about storms"

    none = corpus_view.page("/", q="no episode is called this 100%_")
    assert not none.main.all("table") and "No episodes match" in none.main.text
    assert none.main.one("input", id="q").attrs["value"] == "no episode is called this 100%_"


def test_an_empty_data_dir_says_what_to_do(
    tmp_path_factory: pytest.TempPathFactory, start_pages_view
) -> None:  # type: ignore[no-untyped-def]
    data_dir = tmp_path_factory.mktemp("empty") / "data"
    result = run_cli("db", "upgrade", "--data-dir", data_dir)
    assert result.code == 0, result.stderr
    view = start_pages_view(data_dir)
    page = view.page("/")
    empty = page.main.one("section", class_="empty")
    assert "No episodes yet" in empty.text and "podmill run FEED" in empty.text
    # search and digest say there is nothing rather than failing
    assert "Nothing found" in view.page("/view/search", q="anything").main.text
    digest = view.page("/view/digest")
    assert "No new processed episodes" in digest.main.text


# ------------------------------------------------------------------------------ search


def hits_of(page: Page) -> list[Element]:
    return page.main.all("li", class_="hit")


def test_search_hits_mark_the_matches_and_open_the_episode_at_their_start(
    corpus_view: View, processed_corpus: ProcessedCorpus
) -> None:
    api = httpx.get(corpus_view.url + "/search", params={"q": "solar storm", "limit": 20}).json()
    page = corpus_view.page("/view/search", q="solar storm")
    hits = hits_of(page)
    assert len(hits) == len(api) > 0
    for hit, expected in zip(hits, api, strict=True):  # GET /search's hits, in its order
        link = hit.one("a", class_="hit-title")
        path, _, fragment = link.attrs["href"].partition("#")
        assert path == f"/view/episode/{expected['episode_key']}"
        assert fragment.startswith("t=")
        assert float(fragment[2:]) == pytest.approx(expected["start"], abs=0.01)
        assert expected["episode_title"] in hit.text
        snippet = hit.one("p", class_="snippet")
        assert "«" not in snippet.text and "»" not in snippet.text
        assert snippet.text == expected["snippet"].replace("«", "").replace("»", "")
        marked = [m.text.lower() for m in snippet.all("mark")]
        assert marked == [part.split("»")[0].lower() for part in expected["snippet"].split("«")[1:]]
    all_marks = {m.text.lower() for hit in hits for m in hit.all("mark")}
    assert {"solar", "storm"} <= all_marks


def test_search_filters_by_feed_and_date(
    corpus_view: View, processed_corpus: ProcessedCorpus
) -> None:
    page = corpus_view.page("/view/search")
    options = {o.text: o.attrs["value"] for o in page.main.one("select").all("option")}
    feed_title = "Lab Notes"
    keys = {
        processed_corpus.episode_keys[e.guid]
        for e in processed_corpus.corpus.episodes
        if processed_corpus.corpus.feed_of(e.guid).title == feed_title
    }
    hits = hits_of(corpus_view.page("/view/search", q="storm", feed=options[feed_title]))
    assert hits
    for hit in hits:
        href = hit.one("a", class_="hit-title").attrs["href"]
        assert href.split("#")[0].rsplit("/", 1)[1] in keys
        assert feed_title in hit.text

    recent = {
        processed_corpus.episode_keys[e.guid]
        for e in processed_corpus.corpus.episodes
        if e.days_ago <= 3
    }
    hits = hits_of(corpus_view.page("/view/search", q="storm", since="3d", until=""))
    assert hits
    assert {h.one("a").attrs["href"].split("#")[0].rsplit("/", 1)[1] for h in hits} <= recent

    bad = corpus_view.page("/view/search", status=422, q="storm", since="last tuesday-ish")
    assert "since" in bad.main.one("p", class_="alert").text


def test_search_box_is_focused_by_slash(corpus_view: View) -> None:
    page = corpus_view.page("/view/search")
    box = page.main.one("input", id="q")
    assert "data-slash-focus" in box.attrs
    scripts = [s.attrs.get("src") for s in page.root.all("script")]
    assert "/static/search.js" in scripts
    js = corpus_view.get("/static/search.js")
    assert js.status_code == 200 and "data-slash-focus" in js.text


# ------------------------------------------------------------------------------ digest


def test_digest_shows_stories_and_a_listen_list_linking_into_episodes(
    corpus_view: View, processed_corpus: ProcessedCorpus
) -> None:
    api = httpx.get(
        corpus_view.url + "/digest", params={"since": "7d", "budget": "30m"}, timeout=60
    ).json()
    page = corpus_view.page("/view/digest")  # 7 days and a 30 min listen list by default
    assert page.main.one("input", id="since").attrs["value"] == "7d"
    main = page.main
    stories = main.all("article", class_="story")
    assert [s.one("h3").text for s in stories] == [s["title"] for s in api["stories"]]
    assert stories, "the corpus tells stories across shows"
    for article, story in zip(stories, api["stories"], strict=True):
        expected = [f"/view/episode/{t['episode_key']}#t=" for t in story["topics"]]
        got = [h for h in links(article) if "#t=" in h]
        assert [h.split("=")[0] + "=" for h in got] == expected
        for href, topic in zip(got, story["topics"], strict=True):
            assert float(href.split("#t=")[1]) == pytest.approx(topic["start"], abs=0.01)
    listen = main.one("ol", class_="listen")
    items = api["listen"]["items"]
    assert [a.text for a in listen.all("a")] == [i["title"] for i in items]
    assert [a.attrs["href"].split("#t=")[0] for a in listen.all("a")] == [
        f"/view/episode/{i['episode_key']}" for i in items
    ]
    episodes = main.all("article", class_="digest-episode")
    assert [e.one("h3").text for e in episodes] == [e["title"] for e in api["episodes"]]
    recent = {e.title for e in processed_corpus.corpus.episodes if e.days_ago <= 7}
    assert {e.one("h3").text for e in episodes} == recent


def test_digest_window_and_feed_filters(
    corpus_view: View, processed_corpus: ProcessedCorpus
) -> None:
    page = corpus_view.page("/view/digest", since="30d", feed="2", budget="")
    titles = {e.one("h3").text for e in page.main.all("article", class_="digest-episode")}
    lab = {
        e.title
        for e in processed_corpus.corpus.episodes
        if processed_corpus.corpus.feed_of(e.guid).title == "Lab Notes" and e.days_ago <= 30
    }
    assert titles == lab
    assert not page.main.all("ol", class_="listen")  # no budget, no listen list
    bad = corpus_view.page("/view/digest", status=422, since="7d", until="30d")
    assert "window is empty" in bad.main.one("p", class_="alert").text
    assert corpus_view.page("/view/digest/1", status=404).root.one("h1").text == "No such digest"


# ------------------------------------------------------------------------ hostile text


@pytest.fixture(scope="session")
def hostile_view(view_server: ViewProcess) -> View:
    """The harness's ``podmill view`` (tests/viewer/conftest.py): the demo feed and a
    feed whose titles, notes and transcript are markup (support/browser.py)."""
    return View(view_server)


def assert_no_markup_from(html: str, page: Page) -> None:
    """No element but the page's own: one script (ours, from /static/), no img, no
    event handler attribute, no javascript: link."""
    assert [s.attrs.get("src") for s in page.root.all("script")] == ["/static/search.js"]
    assert not page.root.all("img")
    stack = [page.root]
    while stack:
        element = stack.pop()
        for name, value in element.attrs.items():
            assert not name.startswith("on"), (element.tag, name)
            assert not value.strip().lower().startswith("javascript:"), (element.tag, value)
        stack += [c for c in element.children if isinstance(c, Element)]
    assert "<script>alert" not in html and "<img src=x" not in html


def test_hostile_titles_and_transcripts_stay_text(
    hostile_view: View, viewer_data: ViewerData
) -> None:
    response = hostile_view.get("/")
    page = Page(response.text)
    assert_no_markup_from(response.text, page)
    feeds = [a.text for a in page.main.all("a", class_="feed-title")]
    assert HOSTILE_TITLE in feeds
    assert HOSTILE_ITEM_TITLE in [r["title"] for r in episode_rows(page)]
    assert "script-src 'self'" in response.headers["content-security-policy"]

    response = hostile_view.get("/view/search", q="weather")
    page = Page(response.text)
    assert_no_markup_from(response.text, page)
    hits = hits_of(page)
    assert hits
    snippets = [h.one("p", class_="snippet").text for h in hits]
    assert any(SCRIPT in s and IMG in s for s in snippets)  # shown as the text it is
    assert any(HOSTILE_ITEM_TITLE in h.text for h in hits)
    hostile_hit = next(h for h in hits if HOSTILE_ITEM_TITLE in h.text)
    assert (
        hostile_hit.one("a").attrs["href"].startswith(f"/view/episode/{viewer_data.hostile.key}#t=")
    )

    response = hostile_view.get("/view/digest", since="3650d")
    page = Page(response.text)
    assert_no_markup_from(response.text, page)
    titles = [e.one("h3").text for e in page.main.all("article", class_="digest-episode")]
    assert HOSTILE_ITEM_TITLE in titles


# ------------------------------------------------------------- tenants (podmill serve)


@dataclass
class Tenants:
    server: ServerProcess
    keys: dict[str, str]  # tenant → API key
    feeds: dict[str, str]  # tenant → the title of the one feed it subscribes to

    def browser(self, tenant: str) -> httpx.Client:
        """A browser logged in as ``tenant`` (the login form; a session cookie)."""
        client = httpx.Client(base_url=self.server.url, timeout=60)
        response = client.post("/login", data={"key": self.keys[tenant], "next": "/"})
        assert response.status_code == 303, response.text
        assert client.cookies, "login set no session cookie"
        return client


@pytest.fixture(scope="module")
def tenants(
    processed_corpus: ProcessedCorpus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tenants]:
    """``podmill serve`` over a copy of the corpus's database: tenant ``a`` subscribes to
    Byte Sized, ``b`` to Lab Notes."""
    from sqlalchemy import select

    from podmill.platform import Platform
    from podmill.platform.tables import FEEDS, SUBSCRIPTIONS
    from podmill.settings import Settings
    from podmill.storage.models import utcnow

    root = tmp_path_factory.mktemp("serve")
    data_dir = root / "data"
    # the artifacts (the digest reads the topic trees) and a consistent copy of the db
    shutil.copytree(processed_corpus.data_dir / "episodes", data_dir / "episodes")
    db_path = data_dir / "podmill.db"
    source = sqlite3.connect(processed_corpus.data_dir / "podmill.db")
    copy = sqlite3.connect(db_path)
    try:
        source.backup(copy)  # a consistent copy, whatever the WAL holds
    finally:
        copy.close()
        source.close()
    url = f"sqlite:///{db_path}"
    platform = Platform(Settings(data_dir=data_dir, db=url))
    feeds = {"a": "Byte Sized", "b": "Lab Notes"}
    keys = {}
    try:
        for name, feed_title in feeds.items():
            tenant = platform.create_tenant(name)
            keys[name] = platform.create_key(name)[1]
            # the corpus's feeds were fetched by `podmill run`, not this server's catalog
            # (their URLs were a test server's that is gone): the subscription row is
            # written as POST /subscriptions writes it, without the fetch and backfill
            with platform.engine.begin() as conn:
                feed_id = conn.execute(
                    select(FEEDS.c.id).where(FEEDS.c.title == feed_title)
                ).scalar_one()
                conn.execute(
                    SUBSCRIPTIONS.insert().values(
                        tenant_id=tenant.id, feed_id=feed_id, created_at=utcnow()
                    )
                )
    finally:
        platform.close()
    server = start_server(url, data_dir, root / "serve.log")
    try:
        yield Tenants(server, keys, feeds)
    finally:
        server.stop()


def test_a_tenant_sees_only_its_own_episodes_hits_and_digests(
    tenants: Tenants, processed_corpus: ProcessedCorpus
) -> None:
    by_feed = titles_by_feed(processed_corpus)
    key_of_title = {
        e.title: processed_corpus.episode_keys[e.guid] for e in processed_corpus.corpus.episodes
    }
    for name, feed_title in tenants.feeds.items():
        browser = tenants.browser(name)
        page = Page(browser.get("/", params={"limit": 100}).text)
        cards = page.main.all("li", class_="feed-card")
        assert [c.one("a", class_="feed-title").text for c in cards] == [feed_title]
        assert {r["title"] for r in episode_rows(page)} == by_feed[feed_title]

        own = {key_of_title[t] for t in by_feed[feed_title]}
        # a word every feed talks about: the others' hits exist, and are not shown
        hits = hits_of(Page(browser.get("/view/search", params={"q": "storm"}).text))
        assert hits
        shown = {h.one("a").attrs["href"].split("#")[0].rsplit("/", 1)[1] for h in hits}
        assert shown <= own
        api = httpx.get(
            tenants.server.url + "/search",
            params={"q": "storm", "limit": 20},
            headers={"Authorization": f"Bearer {tenants.keys[name]}"},
        ).json()
        assert [h["episode_key"] for h in api] == [
            h.one("a").attrs["href"].split("#")[0].rsplit("/", 1)[1] for h in hits
        ]

        digest = Page(browser.get("/view/digest", params={"since": "30d"}).text)
        titles = {e.one("h3").text for e in digest.main.all("article", class_="digest-episode")}
        assert titles and titles <= by_feed[feed_title]
        # the server's weekly pass stores each tenant's digest; the page lists it
        headers = {"Authorization": f"Bearer {tenants.keys[name]}"}

        def stored(headers: dict[str, str] = headers) -> bool:
            return bool(httpx.get(tenants.server.url + "/digests", headers=headers).json())

        wait_for(stored, 60, f"the weekly digest of {name}", detail=tenants.server.log)
        listed = httpx.get(tenants.server.url + "/digests", headers=headers).json()
        digest = Page(browser.get("/view/digest").text)
        assert links(digest.main.one("ul", class_="stored-digests"), "/view/digest/") == [
            f"/view/digest/{d['id']}" for d in listed
        ]
        one = Page(browser.get(f"/view/digest/{listed[0]['id']}").text)
        assert one.main.one("h1").text.startswith("Weekly digest")

    # another tenant's stored digest is a 404 page
    a_digests = httpx.get(
        tenants.server.url + "/digests", headers={"Authorization": f"Bearer {tenants.keys['a']}"}
    ).json()
    refused = tenants.browser("b").get(f"/view/digest/{a_digests[0]['id']}")
    assert refused.status_code == 404 and "No such digest" in refused.text


def test_pages_need_a_login_on_serve(tenants: Tenants) -> None:
    for path in ("/", "/view/search?q=storm", "/view/digest"):
        response = httpx.get(tenants.server.url + path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")


def test_the_pages_write_nothing_into_the_data_dir(
    corpus_view: View, processed_corpus: ProcessedCorpus
) -> None:
    """``podmill view`` reads: searching, making a digest and paging change no file
    (SQLite's shared-memory index and WAL, which readers map, aside)."""

    def files() -> dict[str, tuple[int, int]]:
        return {
            str(p.relative_to(processed_corpus.data_dir)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in processed_corpus.data_dir.rglob("*")
            if p.is_file() and not p.name.endswith(("-shm", "-wal"))
        }

    before = files()
    corpus_view.page("/view/search", q="octopus sleep", since="30d")
    corpus_view.page("/view/digest", since="14d", budget="45m")
    corpus_view.page("/", limit=5, offset=5)
    assert files() == before
