"""Text from the internet stays text: a feed whose titles, show notes and transcript
carry ``<script>``, ``onerror=`` and ``javascript:`` URLs (support/browser.py:
``hostile_feed``) is shown as written on every page, and nothing of it runs — no
dialog, no console error (the ``page`` fixture fails the test on either), no element
that could run it. Also: ``podmill view`` changes nothing, and media is ``nosniff``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support.browser import (
    HOSTILE_ITEM_TITLE,
    IMG,
    SCRIPT,
    Site,
    ViewerData,
    ViewProcess,
    assert_inert,
    axe_check,
    library_missing,
    login,
    page_module_missing,
    screenshot,
    urls_naming,
)

pytestmark = pytest.mark.browser


def hostile_pages(data: ViewerData) -> list[tuple[str, str | None]]:
    """(path, the module that serves it) of every page the hostile episode shows on."""
    key = data.hostile.key
    return [
        ("/", None),
        ("/?q=Hostile", None),
        (f"/view/episode/{key}", "episode"),
        (f"/view/episode/{key}#t=3", "episode"),
        ("/view/search?q=weather", "search"),
        ("/view/search?q=script", "search"),
        ("/view/digest", "digest"),
        ("/view/digest?window=3650d", "digest"),
    ]


def visit_hostile_pages(page: Any, base: str, data: ViewerData) -> list[str]:
    """Open each page that exists; check nothing on it can run. Returns the paths seen."""
    seen = []
    for path, module in hostile_pages(data):
        if module and page_module_missing(module):
            continue
        answer = page.goto(base + path)
        assert answer.status == 200, (path, answer.status)
        page.wait_for_load_state("networkidle")
        assert_inert(page)
        seen.append(path)
    return seen


def test_the_hostile_feed_is_inert_in_podmill_view(
    page: Any, view_server: ViewProcess, viewer_data: ViewerData
) -> None:
    assert visit_hostile_pages(page, view_server.url, viewer_data)


def test_the_hostile_feed_is_inert_for_its_subscriber(
    page: Any, serve_server: Site, viewer_data: ViewerData
) -> None:
    login(page, serve_server.url, serve_server.key("bob"))
    assert visit_hostile_pages(page, serve_server.url, viewer_data)


def test_the_library_shows_the_markup_as_text(
    page: Any, view_server: ViewProcess, viewer_data: ViewerData
) -> None:
    reason = library_missing()
    if reason:
        pytest.skip(reason)
    page.goto(view_server.url + "/")
    text = page.locator("main").inner_text()
    assert HOSTILE_ITEM_TITLE in text
    link = page.locator(f'a[href^="/view/episode/{viewer_data.hostile.key}"]').first
    assert SCRIPT in link.inner_text()
    assert_inert(page)


def test_the_episode_page_shows_the_markup_as_text(
    page: Any, view_server: ViewProcess, viewer_data: ViewerData
) -> None:
    reason = page_module_missing("episode")
    if reason:
        pytest.skip(reason)
    page.goto(f"{view_server.url}/view/episode/{viewer_data.hostile.key}")
    page.wait_for_load_state("networkidle")
    text = page.locator("main").inner_text()
    assert HOSTILE_ITEM_TITLE in text  # the title, as written
    assert text.count(SCRIPT) >= 2 and IMG in text  # and the transcript's sentences
    assert page.title().startswith(SCRIPT)  # the <title> is text too
    assert_inert(page)
    screenshot(page, "episode-hostile")


def test_search_hits_show_the_markup_as_text(
    page: Any, view_server: ViewProcess, viewer_data: ViewerData
) -> None:
    reason = page_module_missing("search")
    if reason:
        pytest.skip(reason)
    page.goto(f"{view_server.url}/view/search?q=weather")
    page.wait_for_load_state("networkidle")
    hits = page.locator(f'a[href^="/view/episode/{viewer_data.hostile.key}"]')
    assert hits.count() >= 1
    assert SCRIPT in page.locator("main").inner_text()
    assert page.locator("main mark script, main script:not([src]):not([type])").count() == 0
    assert_inert(page)


# ----------------------------------------------------------------- headers and methods


def test_pages_of_podmill_view_carry_the_csp(view_server: ViewProcess) -> None:
    answer = httpx.get(view_server.url + "/")
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp, csp
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_media_is_nosniff(page: Any, view_server: ViewProcess, viewer_data: ViewerData) -> None:
    reason = page_module_missing("episode")
    if reason:
        pytest.skip(reason)
    for episode in viewer_data.episodes:
        page.goto(f"{view_server.url}/view/episode/{episode.key}")
        media = page.evaluate(
            "() => { const a = document.querySelector('audio');"
            " return a ? (a.currentSrc || a.querySelector('source')?.src || a.src) : null }"
        )
        assert media, f"no audio element on the page of {episode.title}"
        answer = httpx.get(media, headers={"Range": "bytes=0-1"})
        assert answer.status_code == 206, (media, answer.status_code)
        assert answer.headers["x-content-type-options"] == "nosniff", media
        assert answer.headers["content-type"].startswith("audio/"), answer.headers
        downloads = [u for u in urls_naming(page, episode.key) if u != media]
        for url in downloads:
            got = httpx.get(view_server.url + url)
            assert got.headers.get("x-content-type-options") == "nosniff", url


@pytest.mark.parametrize(
    "path",
    ["/", "/login", "/logout", "/jobs", "/view/ops/retry", "/view/jobs", "/subscriptions"],
)
def test_podmill_view_refuses_every_post(view_server: ViewProcess, path: str) -> None:
    answer = httpx.post(view_server.url + path, data={"csrf": "x", "key": "x"})
    assert answer.status_code == 405, (path, answer.text)
    assert answer.headers["allow"] == "GET, HEAD, OPTIONS"
    assert "read-only" in answer.json()["detail"]


def test_podmill_view_has_no_login_and_no_forms(page: Any, view_server: ViewProcess) -> None:
    answer = page.goto(view_server.url + "/login")
    assert page.url == view_server.url + "/", "the login form redirects home"
    assert answer.status == 200
    assert page.locator("form[method=post]").count() == 0
    assert "read-only" in page.locator("header").inner_text()


def test_view_library_accessibility_and_screenshots(page: Any, view_server: ViewProcess) -> None:
    page.goto(view_server.url + "/")
    axe_check(page)
    screenshot(page, "view-library")
