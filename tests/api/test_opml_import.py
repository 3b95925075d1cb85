"""OPML import and export: ``POST /subscriptions/opml``, ``GET /subscriptions.opml``
and ``podmill subscribe --opml``, with real podcast apps' exports (tests/fixtures/opml/)
whose feed URLs are pointed at feeds on the test HTTP server."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from podmill.api.app import create_app
from podmill.platform import Platform

from support.api import Caller, assert_error, make_caller, make_settings
from support.cli import run_cli
from support.feeds import item, rss
from support.httpserver import TestHTTPServer

OPML = Path(__file__).resolve().parents[1] / "fixtures" / "opml"
OPML_TYPE = {"Content-Type": "text/x-opml"}


def serve_feed(server: TestHTTPServer, name: str) -> str:
    """A two-episode feed titled ``name`` at ``/NAME.xml``; its URL."""
    audio = server.url_for(f"/{name}.mp3")
    items = [
        item(f"{name}-{n}", f"{name} {n}", audio, date=f"Mon, 0{n + 1} Nov 2026") for n in (0, 1)
    ]
    return server.add_bytes(f"/{name}.xml", rss(items, title=f"{name} show"), "application/rss+xml")


def outline(title: str, url: str) -> str:
    return f'<outline type="rss" text="{title}" xmlUrl="{url}"/>'


def opml(*outlines: str, title: str = "Mine") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><opml version="2.0">'
        f"<head><title>{title}</title></head><body>{''.join(outlines)}</body></opml>"
    ).encode()


def pointed_at(name: str, url: str) -> bytes:
    """A real app's export with its one real feed URL replaced by ``url``."""
    data = (OPML / name).read_bytes()
    real = b"https://feeds.metaebene.me/lautsprecher/m4a"
    assert data.count(real) == 1
    return data.replace(real, url.encode())


def urls(answer: list[dict[str, Any]]) -> list[str]:
    return [entry["url"] for entry in answer]


def test_a_pocket_casts_export_imports_its_feed_and_rejects_its_empty_outlines(
    alice: Caller, http_server: TestHTTPServer
) -> None:
    feed = serve_feed(http_server, "lautsprecher")
    data = pointed_at("podcast-archiver__opml_pocketcasts_valid.xml", feed)
    response = alice.post("/subscriptions/opml", content=data, headers=OPML_TYPE)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["title"] == "Pocket Casts Feeds"
    [imported] = answer["imported"]
    assert imported["outline"] == 2 and imported["url"] == feed
    assert imported["title"] == "Lautsprecher"
    assert [s["id"] for s in alice.get("/subscriptions").json()] == [imported["subscription_id"]]
    assert answer["already_subscribed"] == []
    assert [(r["outline"], r["title"], r["url"]) for r in answer["rejected"]] == [
        (3, "Other", None),
        (4, "Another", None),
    ]
    assert all("missing xmlUrl" in r["reason"] for r in answer["rejected"])
    # the subscription backfilled like POST /subscriptions does (backfill = 1)
    assert len(alice.get("/jobs").json()) == 1

    again = alice.post("/subscriptions/opml", content=data, headers=OPML_TYPE).json()
    assert again["imported"] == [] and urls(again["already_subscribed"]) == [feed]
    assert again["already_subscribed"][0]["subscription_id"] == imported["subscription_id"]
    assert len(alice.get("/jobs").json()) == 1


def test_bad_outlines_are_rejected_each_with_its_reason_and_the_good_ones_import(
    alice: Caller, admin: Caller, http_server: TestHTTPServer
) -> None:
    one, two = serve_feed(http_server, "one"), serve_feed(http_server, "two")
    page = http_server.add_bytes("/page", b"<html><body>a blog</body></html>", "text/html")
    gone = http_server.url_for("/gone.xml")
    data = opml(
        outline("One", one),
        '<outline type="rss" text="No URL"/>',
        outline("FTP", "ftp://files.example.org/show.xml"),
        outline("One again", one.replace("http://", "HTTP://") + "/"),
        outline("A web page", page),
        outline("Gone", gone),
        f'<outline text="Folder"><outline type="rss" title="Two" xmlUrl="{two}"/></outline>',
    )
    answer = alice.post("/subscriptions/opml", content=data, headers=OPML_TYPE).json()
    assert urls(answer["imported"]) == [one, two]
    reasons = {r["title"]: r["reason"] for r in answer["rejected"]}
    assert list(reasons) == ["No URL", "FTP", "One again", "A web page", "Gone"]
    assert "missing xmlUrl" in reasons["No URL"]
    assert "must start with http:// or https://" in reasons["FTP"]
    assert reasons["One again"] == "duplicate of outline 1 (the same feed URL)"
    # what POST /subscriptions answers for these URLs, word for word
    for title, url in (("A web page", page), ("Gone", gone)):
        refused = assert_error(alice.post("/subscriptions", json={"url": url}), 422)
        assert reasons[title] == refused["detail"], title
    assert "404" in reasons["Gone"]
    assert {f["url"] for f in admin.get("/feeds").json()} == {one, two}


def test_the_export_imported_by_another_tenant_gives_the_same_subscriptions(
    alice: Caller, bob: Caller, http_server: TestHTTPServer
) -> None:
    feeds = [serve_feed(http_server, name) for name in ("alpha", "beta", "gamma")]
    for url in feeds:
        assert alice.post("/subscriptions", json={"url": url}).status_code == 201

    response = alice.get("/subscriptions.opml")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/x-opml; charset=utf-8"
    assert "subscriptions.opml" in response.headers["content-disposition"]
    root = ET.fromstring(response.content)
    assert root.get("version") == "2.0"
    assert root.findtext("head/title") == "podmill subscriptions of alice"
    assert [(o.get("type"), o.get("title"), o.get("xmlUrl")) for o in root.iter("outline")] == [
        ("rss", f"{name} show", url) for name, url in zip(("alpha", "beta", "gamma"), feeds)
    ]

    assert bob.get("/subscriptions.opml").content.count(b"<outline") == 0  # his own: none
    # bob imports alice's export as a multipart upload
    upload = {"file": ("subscriptions.opml", response.content, "text/x-opml")}
    answer = bob.post("/subscriptions/opml", files=upload).json()
    assert urls(answer["imported"]) == feeds and answer["rejected"] == []
    mine = {(s["url"], s["title"]) for s in alice.get("/subscriptions").json()}
    assert {(s["url"], s["title"]) for s in bob.get("/subscriptions").json()} == mine
    assert bob.get("/subscriptions.opml").content.count(b"<outline") == 3


def test_a_file_that_is_not_opml_is_one_422_and_nothing_is_imported(
    alice: Caller, http_server: TestHTTPServer
) -> None:
    html = (OPML / "handmade__not-opml.html").read_bytes()
    body = assert_error(
        alice.post("/subscriptions/opml", content=html, headers=OPML_TYPE), 422, "invalid_opml"
    )
    assert "it is an HTML page" in body["detail"] and "export your subscriptions" in body["detail"]
    feed = rss([], title="a feed")
    body = assert_error(
        alice.post("/subscriptions/opml", content=feed, headers={"Content-Type": "text/xml"}),
        422,
        "invalid_opml",
    )
    assert "subscribe to the feed's URL instead" in body["detail"]
    assert_error(alice.post("/subscriptions/opml", content=b"", headers=OPML_TYPE), 422)
    assert_error(alice.post("/subscriptions/opml", files={"file": ("x", b"", "text/plain")}), 422)
    assert_error(alice.post("/subscriptions/opml", files={"other": ("x", b"<opml/>")}), 422)
    assert_error(alice.post("/subscriptions/opml", json={"url": "x"}), 415)
    assert alice.get("/subscriptions").json() == []


def test_an_opml_body_is_bounded_by_max_body_bytes(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, max_body_bytes=1024)
    platform = Platform(settings)
    try:
        with TestClient(create_app(settings)) as client:
            carol = make_caller(platform, client, "carol")
            big = opml(*[outline(f"n{n}", f"https://e.example/{n}.xml") for n in range(40)])
            assert len(big) > 1024
            body = assert_error(
                carol.post("/subscriptions/opml", content=big, headers=OPML_TYPE), 413, "too_large"
            )
            assert "server.max_body_bytes" in body["detail"]
            upload = {"file": ("big.opml", big, "text/x-opml")}
            assert_error(carol.post("/subscriptions/opml", files=upload), 413)
            assert carol.get("/subscriptions").json() == []
            assert client.post("/subscriptions/opml", content=big).status_code == 401
            assert client.get("/subscriptions.opml").status_code == 401
    finally:
        platform.close()


def test_podmill_subscribe_opml_lists_each_outline_and_exits_1_on_rejects(
    db_url: str, tmp_path: Path, platform: Platform, http_server: TestHTTPServer
) -> None:
    feed = serve_feed(http_server, "downcast")
    export = tmp_path / "downcast.opml"
    export.write_bytes(pointed_at("podcast-archiver__opml_downcast_valid.xml", feed))
    env = {"PODMILL_DB": db_url, "PODMILL_ALLOW_PRIVATE_NETWORKS": "true"}
    data_dir = ("--data-dir", str(tmp_path / "data"))

    done = run_cli("subscribe", "--opml", export, *data_dir, env=env)
    assert done.code == 0, done.stderr
    assert "Downcast Podcasts" in done.stdout and "imported" in done.stdout
    assert "local: 1 imported, 0 already subscribed, 0 rejected" in done.stderr
    local = platform.tenant("local")  # the default: `podmill serve --no-auth`'s tenant
    assert local is not None and local.is_admin
    assert [s["url"] for s in platform.subscriptions(local)] == [feed]

    mixed = tmp_path / "mixed.opml"
    other = serve_feed(http_server, "other")
    mixed.write_bytes(
        opml(
            outline("Downcast", feed), '<outline type="rss" text="Nope"/>', outline("Other", other)
        )
    )
    shown = run_cli("subscribe", "--opml", mixed, "--json", *data_dir, env=env)
    assert shown.code == 1 and "1 outline(s) rejected" in shown.error_line
    [answer] = shown.json_lines()
    assert urls(answer["imported"]) == [other]
    assert urls(answer["already_subscribed"]) == [feed]
    assert [(r["outline"], r["title"]) for r in answer["rejected"]] == [(2, "Nope")]

    platform.create_tenant("dana")
    one = run_cli("subscribe", feed, "--tenant", "dana", *data_dir, env=env)
    assert one.code == 0 and "dana subscribed: downcast show" in one.stderr
    dana = platform.tenant("dana")
    assert dana is not None
    assert [s["url"] for s in platform.subscriptions(dana)] == [feed]

    nobody = run_cli("subscribe", "--opml", mixed, "--tenant", "nobody", *data_dir, env=env)
    assert nobody.code == 1 and "podmill tenants create nobody" in nobody.error_line
    html = run_cli("subscribe", "--opml", OPML / "handmade__not-opml.html", *data_dir, env=env)
    assert html.code == 1 and "it is an HTML page" in html.error_line
    missing = run_cli("subscribe", "--opml", tmp_path / "nope.opml", *data_dir, env=env)
    assert missing.code == 1 and "cannot read it" in missing.error_line
