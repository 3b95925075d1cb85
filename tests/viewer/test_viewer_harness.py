"""The harness itself: the data is what real runs made, the servers answer, and the
watch catches what it must (a dialog, a console error) — else every browser test's
"no dialog fired" would prove nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support.browser import SCRIPT, Site, ViewerData, ViewProcess, Watch

pytestmark = pytest.mark.browser


def test_viewer_data_is_what_podmill_run_made(viewer_data: ViewerData) -> None:
    assert len(viewer_data.episodes) == 4
    assert SCRIPT in viewer_data.hostile.title
    for episode in viewer_data.episodes:
        sets = [p for p in (viewer_data.data_dir / "episodes" / episode.key).iterdir()]
        assert any((p / "manifest.json").exists() for p in sets), episode


def test_servers_answer(view_server: ViewProcess, serve_server: Site) -> None:
    assert httpx.get(view_server.url + "/").status_code == 200
    anonymous = httpx.get(serve_server.url + "/")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


def test_the_watch_sees_a_dialog_and_a_console_error(browser: Any) -> None:
    from support.browser import new_page

    watch = Watch()
    for page in new_page(browser, watch):
        page.set_content("<p>x</p>")
        page.evaluate("() => { alert('boom'); console.error('broken') }")
    assert watch.dialogs == ["alert: boom"]
    assert [e for e in watch.errors if "broken" in e]
    with pytest.raises(AssertionError, match="dialog alert: boom"):
        watch.check()


def test_unescaped_feed_text_would_be_caught(browser: Any) -> None:
    """The hostile title put into a page raw: the watch sees its dialog and
    ``assert_inert`` the elements it made."""
    from support.browser import HOSTILE_ITEM_TITLE, assert_inert, new_page

    watch = Watch()
    for page in new_page(browser, watch):
        with page.expect_event("dialog"):
            page.set_content(f"<h1>{HOSTILE_ITEM_TITLE}</h1><a href='javascript:alert(3)'>x</a>")
        with pytest.raises(AssertionError) as caught:
            assert_inert(page)
        for part in ("inline script", "IMG onerror", "A href=javascript:", "img src=x"):
            assert part in str(caught.value), caught.value
    assert any("alert" in d for d in watch.dialogs), watch.dialogs
