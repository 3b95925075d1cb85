"""The library, search and digest pages in a real browser (the system Chromium,
tests/viewer/conftest.py): a search hit opens its episode at the hit's start, ``/``
focuses the search box, filters work, a tenant's browser sees only its own episodes,
no serious or critical accessibility violation, and screenshots at 1280 and 360 px
(bench/out/screenshots/, not committed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from support.browser import (
    Site,
    ViewProcess,
    Watch,
    axe_check,
    login,
    page_module_missing,
    screenshot,
    start_view,
)
from support.corpus import ProcessedCorpus

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def corpus_site(
    processed_corpus: ProcessedCorpus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ViewProcess]:
    """``podmill view`` over the labelled corpus: three feeds, stories across them."""
    view = start_view(processed_corpus.data_dir, tmp_path_factory.mktemp("view") / "v.log")
    try:
        yield view
    finally:
        view.stop()


def hit_links(page: Any) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        "ol.hits a.hit-title",
        "links => links.map(a => ({href: a.getAttribute('href'), text: a.textContent}))",
    )


def test_a_search_hit_opens_the_episode_at_its_start(
    page: Any, watch: Watch, corpus_site: ViewProcess
) -> None:
    missing = page_module_missing("episode")
    if missing:  # the hit's link still goes where it must; that page answers 404 so far
        watch.allow(r"Failed to load resource: .* 404")
    page.goto(corpus_site.url + "/view/search")
    assert page.evaluate("document.activeElement.id") == "q"  # the box is ready to type in
    page.fill("#q", "octopus")
    with page.expect_navigation():
        page.press("#q", "Enter")
    hits = hit_links(page)
    assert hits, page.content()
    first = hits[0]
    path, _, fragment = first["href"].partition("#")
    start = float(fragment.removeprefix("t="))
    assert path.startswith("/view/episode/")
    marks = page.eval_on_selector_all("ol.hits mark", "ms => ms.map(m => m.textContent)")
    assert any("octopus" in m.lower() for m in marks)

    with page.expect_navigation():
        page.click("ol.hits a.hit-title >> nth=0")
    assert page.url == f"{corpus_site.url}{path}#t={fragment.removeprefix('t=')}"
    if missing is None and page.query_selector("audio"):
        # the episode page's player honours #t= (its own tests check how)
        page.wait_for_function(
            "start => Math.abs(document.querySelector('audio').currentTime - start) < 1",
            arg=start,
        )


def test_slash_focuses_the_search_box(page: Any, corpus_site: ViewProcess) -> None:
    page.goto(corpus_site.url + "/")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("storm")  # typing "/" into the box types it
    page.keyboard.press("/")
    assert page.input_value("#q") == "storm/"

    page.goto(corpus_site.url + "/view/digest")  # no search box here: "/" opens search
    with page.expect_navigation():
        page.keyboard.press("/")
    assert page.url == corpus_site.url + "/view/search"
    assert page.evaluate("document.activeElement.id") == "q"


def test_library_filters_in_the_browser(page: Any, corpus_site: ViewProcess) -> None:
    page.goto(corpus_site.url + "/")
    page.select_option("#feed", label="World Desk")
    page.fill("#q", "grid")
    with page.expect_navigation():
        page.click("form.filters button[type=submit]")
    rows = page.eval_on_selector_all(
        "table.episodes tbody tr", "rows => rows.map(r => r.cells[1].textContent.trim())"
    )
    titles = page.eval_on_selector_all(
        "table.episodes tbody td:first-child a", "as => as.map(a => a.textContent)"
    )
    assert rows and set(rows) == {"World Desk"}
    assert all("grid" in t.lower() for t in titles)
    assert page.input_value("#q") == "grid"


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("library", "/"),
        ("search", "/view/search?q=solar+storm"),
        ("digest", "/view/digest"),
    ],
)
def test_pages_are_accessible_and_fit_a_phone(
    page: Any, corpus_site: ViewProcess, name: str, path: str
) -> None:
    page.goto(corpus_site.url + path)
    axe_check(page)
    for width in (1280, 360):
        page.set_viewport_size({"width": width, "height": 800})
        # nothing wider than the screen: the page scrolls down, never sideways
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} is {overflow}px wider than {width}px"
    page.set_viewport_size({"width": 360, "height": 740})
    axe_check(page)
    paths = screenshot(page, f"pages-{name}")
    assert all(p.stat().st_size > 0 for p in paths)


def test_a_tenants_browser_sees_only_its_own_episodes(browser: Any, serve_server: Site) -> None:
    from support.browser import new_page

    for name in ("alice", "bob"):
        watch = Watch()
        for page in new_page(browser, watch):
            login(page, serve_server.url, serve_server.key(name))
            own = set(serve_server.visible[name])
            listed = page.eval_on_selector_all(
                "table.episodes tbody a", "as => as.map(a => a.getAttribute('href'))"
            )
            assert {h.rsplit("/", 1)[1] for h in listed} == own
            # the hostile episode talks about the weather; alice's hits never show it
            page.goto(serve_server.url + "/view/search?q=weather")
            keys = {h["href"].split("#")[0].rsplit("/", 1)[1] for h in hit_links(page)}
            assert keys <= own
            if name == "bob":
                assert keys == own
        watch.check()
