"""Fixtures of the viewer's tests: real data, real servers, a real browser.

Session-scoped, because real runs are slow (the demo feed takes a minute or two):

- ``feed_server``: the local HTTP server serving the demo feed and the hostile feed;
- ``viewer_data``: a data dir that ``podmill run`` wrote from both (:class:`ViewerData`);
- ``view_server``: ``podmill view`` over it (read-only, no login);
- ``serve_server``: ``podmill serve`` over a copy, tenants ``alice`` (demo feed),
  ``bob`` (hostile feed), ``root`` (admin) (:class:`Site`);
- ``browser``: the system Chromium (skips the test when it is not installed).

Per test: ``watch`` (dialogs and console errors so far) and ``page`` (a fresh context at
1280 px; the test fails if a dialog opened or a console error was logged), ``page360``
(the same at 360 px).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from support.browser import (
    CHROMIUM,
    NO_CHROMIUM,
    Site,
    ViewerData,
    ViewProcess,
    Watch,
    build_viewer_data,
    launch,
    new_page,
    start_site,
    start_view,
)
from support.httpserver import TestHTTPServer


@pytest.fixture(scope="session")
def feed_server() -> Iterator[TestHTTPServer]:
    with TestHTTPServer() as server:
        yield server


@pytest.fixture(scope="session")
def viewer_data(
    tmp_path_factory: pytest.TempPathFactory, feed_server: TestHTTPServer
) -> ViewerData:
    return build_viewer_data(tmp_path_factory.mktemp("viewer") / "data", feed_server)


@pytest.fixture(scope="session")
def view_server(
    viewer_data: ViewerData, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ViewProcess]:
    view = start_view(viewer_data.data_dir, tmp_path_factory.mktemp("view") / "view.log")
    try:
        yield view
    finally:
        view.stop()


@pytest.fixture(scope="session")
def serve_server(
    viewer_data: ViewerData, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    site = start_site(viewer_data, tmp_path_factory.mktemp("serve"))
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM:
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def page(browser: Any, watch: Watch) -> Iterator[Any]:
    yield from new_page(browser, watch, 1280)
    watch.check()


@pytest.fixture
def page360(browser: Any, watch: Watch) -> Iterator[Any]:
    yield from new_page(browser, watch, 360)
    watch.check()
