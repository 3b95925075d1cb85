"""Logging in with a key in a real browser against a real ``podmill serve``: the session
cookie, logout, CSRF, what each tenant may see (tenant isolation across every page and
media URL), the operations pages for admins only, error pages and headers.

``serve_server`` has tenants ``alice`` (the demo feed), ``bob`` (the hostile feed) and
``root`` (an admin with no subscriptions); see tests/viewer/conftest.py."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support.browser import (
    Site,
    Watch,
    axe_check,
    episode_links,
    library_missing,
    login,
    logout,
    page_module_missing,
    screenshot,
    urls_naming,
)

pytestmark = pytest.mark.browser

COOKIE = "podmill_session"


def needs(*modules: str) -> None:
    for name in modules:
        reason = page_module_missing(name)
        if reason:
            pytest.skip(reason)


def session_cookie(page: Any) -> dict[str, Any] | None:
    return next((c for c in page.context.cookies() if c["name"] == COOKIE), None)


# ------------------------------------------------------------------- login and logout


def test_login_with_a_key_then_logout(page: Any, serve_server: Site) -> None:
    page.goto(serve_server.url + "/")
    assert page.url.startswith(serve_server.url + "/login?next=/"), page.url
    assert session_cookie(page) is None

    login(page, serve_server.url, serve_server.key("alice"))
    assert page.url == serve_server.url + "/"
    assert "alice" in page.locator("header .who").inner_text()

    logout(page)
    assert page.url == serve_server.url + "/login"
    assert session_cookie(page) is None
    page.goto(serve_server.url + "/")  # the session is gone, not only the cookie hidden
    assert page.url.startswith(serve_server.url + "/login"), page.url


def test_login_returns_to_the_page_asked_for(page: Any, serve_server: Site) -> None:
    page.goto(serve_server.url + "/?q=sonnet")
    assert "next=/%3Fq%3Dsonnet" in page.url or "next=/?q=sonnet" in page.url, page.url
    page.fill("#key", serve_server.key("alice"))
    with page.expect_navigation():
        page.click("form[action='/login'] button[type=submit]")
    assert page.url == serve_server.url + "/?q=sonnet"


def test_a_wrong_key_shows_the_error_and_sets_no_session(page: Any, serve_server: Site) -> None:
    page.goto(serve_server.url + "/login")
    page.fill("#key", "pm_not-a-real-key")
    with page.expect_navigation() as nav:
        page.click("form[action='/login'] button[type=submit]")
    assert nav.value.status == 401
    alert = page.get_by_role("alert")
    assert "unknown or revoked" in alert.inner_text()
    assert session_cookie(page) is None
    assert "pm_not-a-real-key" not in page.content()  # the key is not echoed back
    page.goto(serve_server.url + "/")
    assert page.url.startswith(serve_server.url + "/login")


def test_the_session_cookie_is_httponly_strict_and_signed(page: Any, serve_server: Site) -> None:
    login(page, serve_server.url, serve_server.key("alice"))
    cookie = session_cookie(page)
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    assert cookie["secure"] is False  # served over plain http here; see the next test
    assert serve_server.key("alice") not in cookie["value"]
    assert page.evaluate("() => document.cookie") == ""  # scripts cannot read it

    # a cookie whose signature is off is no session
    forged = {
        **cookie,
        "value": cookie["value"][:-2] + ("AA" if cookie["value"][-2:] != "AA" else "BB"),
    }
    page.context.clear_cookies()
    page.context.add_cookies([forged])
    page.goto(serve_server.url + "/")
    assert page.url.startswith(serve_server.url + "/login"), page.url


def test_the_cookie_is_secure_behind_https(serve_server: Site) -> None:
    answer = httpx.post(
        serve_server.url + "/login",
        data={"key": serve_server.key("alice"), "next": "/"},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert answer.status_code == 303, answer.text
    set_cookie = answer.headers["set-cookie"]
    flags = {part.strip().lower() for part in set_cookie.split(";")}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags, set_cookie


# -------------------------------------------------------------------------------- CSRF


def test_logout_without_the_csrf_token_is_refused(page: Any, serve_server: Site) -> None:
    login(page, serve_server.url, serve_server.key("alice"))
    for form in ({}, {"csrf": "forged-token"}):
        answer = page.request.post(serve_server.url + "/logout", form=form, max_redirects=0)
        assert answer.status == 403, (form, answer.status)
        assert "Traceback" not in answer.text()
    page.goto(serve_server.url + "/")  # still logged in
    assert page.url == serve_server.url + "/"
    assert session_cookie(page) is not None


def test_a_token_is_good_only_with_its_own_session(
    browser: Any, serve_server: Site, watch: Watch
) -> None:
    """Bob's CSRF token does not log Alice out."""
    from support.browser import new_page

    tokens = {}
    for name in ("alice", "bob"):
        for tab in new_page(browser, watch):
            login(tab, serve_server.url, serve_server.key(name))
            tokens[name] = tab.locator("form[action='/logout'] input[name=csrf]").input_value()
            cookie = session_cookie(tab)
            assert tokens[name] and cookie
            if name == "alice":
                alice_cookie = cookie
    assert tokens["alice"] != tokens["bob"]
    answer = httpx.post(
        serve_server.url + "/logout",
        data={"csrf": tokens["bob"]},
        cookies={COOKIE: alice_cookie["value"]},
    )
    assert answer.status_code == 403
    watch.check()


# ------------------------------------------------------------------ tenant isolation

PAGES = ["/", "/?q=Hostile", "/view/search?q=weather", "/view/digest", "/view/jobs"]


def test_alice_sees_none_of_bobs_episodes_on_any_page(page: Any, serve_server: Site) -> None:
    bobs = serve_server.data.hostile
    login(page, serve_server.url, serve_server.key("alice"))
    shown = 0
    for path in PAGES:
        answer = page.goto(serve_server.url + path)
        if answer.status == 404 and path.startswith("/view/"):
            continue  # that page is not written yet
        assert answer.status == 200, (path, answer.status)
        shown += 1
        html = page.content()
        assert bobs.key not in html, path
        assert "Hostile" not in page.locator("main").inner_text(), path
        assert bobs.key not in episode_links(page), path
    assert shown >= 1


def test_alices_library_links_her_episodes_only(page: Any, serve_server: Site) -> None:
    reason = library_missing()
    if reason:
        pytest.skip(reason)
    login(page, serve_server.url, serve_server.key("alice"))
    assert episode_links(page) == sorted(serve_server.visible["alice"])


def test_bobs_episode_and_media_urls_are_404_for_alice(
    browser: Any, serve_server: Site, watch: Watch
) -> None:
    needs("episode")
    from support.browser import new_page

    bobs = serve_server.data.hostile
    for bob in new_page(browser, watch):
        login(bob, serve_server.url, serve_server.key("bob"))
        answer = bob.goto(f"{serve_server.url}/view/episode/{bobs.key}")
        assert answer.status == 200
        urls = urls_naming(bob, bobs.key)
        cookie = session_cookie(bob)
    assert f"/view/episode/{bobs.key}" in urls or any("/view/episode/" in u for u in urls), urls
    assert any(u != f"/view/episode/{bobs.key}" for u in urls), f"no media URL named: {urls}"
    with httpx.Client(base_url=serve_server.url, cookies={COOKIE: cookie["value"]}) as as_bob:
        for url in urls:
            assert as_bob.get(url, headers={"Range": "bytes=0-99"}).status_code in (200, 206), url

    for alice in new_page(browser, watch):
        login(alice, serve_server.url, serve_server.key("alice"))
        for url in [f"/view/episode/{bobs.key}", *urls]:
            answer = alice.request.get(serve_server.url + url, max_redirects=0)
            assert answer.status == 404, (url, answer.status)
            body = answer.text()
            assert "Hostile" not in body and "Traceback" not in body, url
    watch.check()


def test_a_member_cannot_reach_operations(page: Any, serve_server: Site) -> None:
    needs("ops")
    login(page, serve_server.url, serve_server.key("alice"))
    assert page.locator("nav a[href='/view/ops']").count() == 0
    answer = page.goto(serve_server.url + "/view/ops")
    assert answer.status == 403
    assert "admin" in page.locator("main").inner_text().lower()
    assert "Traceback" not in page.content()


def test_an_admin_reaches_operations(page: Any, serve_server: Site) -> None:
    needs("ops")
    login(page, serve_server.url, serve_server.key("root"))
    page.click("nav a[href='/view/ops']")
    page.wait_for_url(serve_server.url + "/view/ops")
    assert page.locator("h1").count() == 1


# --------------------------------------------------------------- errors and headers


def test_error_pages_are_html_without_a_traceback(page: Any, serve_server: Site) -> None:
    login(page, serve_server.url, serve_server.key("alice"))
    for path in ("/view/no-such-page", "/view/episode/0123456789abcdef"):
        answer = page.goto(serve_server.url + path)
        assert answer.status == 404, path
        assert answer.headers["content-type"].startswith("text/html"), path
        text = page.locator("main").inner_text()
        assert "404" in text and "Traceback" not in page.content(), path
        assert page.locator("main a[href='/']").count() >= 1  # a way back


def test_pages_carry_the_content_security_policy(page: Any, serve_server: Site) -> None:
    answer = page.goto(serve_server.url + "/login")
    pages = [answer]
    login(page, serve_server.url, serve_server.key("alice"))
    pages.append(page.goto(serve_server.url + "/"))
    pages.append(page.goto(serve_server.url + "/view/no-such-page"))
    for answer in pages:
        csp = answer.headers["content-security-policy"]
        directives = dict((d.split()[0], d.split()[1:]) for d in csp.split(";") if d.strip())
        assert directives["script-src"] == ["'self'"], (answer.url, csp)
        assert "'unsafe-inline'" not in directives.get("style-src", []), csp
        assert directives["frame-ancestors"] == ["'none'"], csp
        assert answer.headers["x-content-type-options"] == "nosniff"


# ------------------------------------------------- accessibility and screenshots


def test_login_page_accessibility_and_screenshots(page: Any, serve_server: Site) -> None:
    page.goto(serve_server.url + "/login")
    axe_check(page)
    screenshot(page, "login")
    page.fill("#key", "wrong")
    with page.expect_navigation():
        page.click("form[action='/login'] button[type=submit]")
    axe_check(page)
    screenshot(page, "login-error")


def test_library_accessibility_and_screenshots(page: Any, serve_server: Site) -> None:
    login(page, serve_server.url, serve_server.key("alice"))
    axe_check(page)
    screenshot(page, "library")
    login(page, serve_server.url, serve_server.key("root"))  # no subscriptions: empty state
    axe_check(page)
    screenshot(page, "library-empty")


def test_the_keyboard_reaches_the_login_form(page: Any, serve_server: Site) -> None:
    page.goto(serve_server.url + "/login")
    assert page.evaluate("() => document.activeElement.id") == "key"  # autofocus
    page.keyboard.type(serve_server.key("alice"))
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == serve_server.url + "/"
