"""Reading podcast apps' OPML exports and writing podmill's (feeds/opml.py), on real
exports (tests/fixtures/opml/, tests/fixtures/README.md) and hand-made bad files."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from podmill.errors import MissingExtraError
from podmill.feeds.opml import InvalidOpml, OpmlFeed, read_opml, write_opml

listparser = pytest.importorskip("listparser", reason="pip install 'podmill[server]'")

OPML = Path(__file__).resolve().parents[1] / "fixtures" / "opml"
REAL_EXPORTS = {
    "podcast-archiver__feeds.opml": ("Abonnierte iTunes-Feeds", 23),
    "podcast-archiver__opml_pocketcasts_valid.xml": ("Pocket Casts Feeds", 1),
    "podcast-archiver__opml_downcast_valid.xml": ("Downcast Podcasts", 1),
}


def good(name: str) -> list[tuple[str | None, str | None]]:
    opml = read_opml((OPML / name).read_bytes())
    return [(o.title, o.url) for o in opml.outlines if o.problem is None]


@pytest.mark.parametrize("name", sorted(REAL_EXPORTS))
def test_a_real_export_reads_as_listparser_reads_it(name: str) -> None:
    data = (OPML / name).read_bytes()
    opml = read_opml(data)
    title, feeds = REAL_EXPORTS[name]
    assert opml.title == title
    ours = [(o.title, o.url) for o in opml.outlines if o.problem is None]
    assert len(ours) == feeds
    # the same feeds, titles and order as listparser's own parse of the file
    theirs = [(f.title, f.url) for f in listparser.parse(data).feeds]
    assert ours == theirs


def test_an_itunes_export_keeps_its_titles_and_urls_exact() -> None:
    feeds = dict(good("podcast-archiver__feeds.opml"))
    assert feeds["Quarks & Co - zum Mitnehmen"] == "http://podcast.wdr.de/quarks.xml"
    assert feeds["Sanft & Sorgfältig | radioeins"].endswith("zwei_alte_hasen.feed.podcast.xml")
    assert feeds['ZDF - "Die Anstalt"'] == (
        "http://www.zdf.de/ZDFmediathek/podcast/2085930?view=podcast"
    )


def test_pocket_casts_outlines_without_a_url_are_rejected_each_by_name() -> None:
    opml = read_opml((OPML / "podcast-archiver__opml_pocketcasts_valid.xml").read_bytes())
    # outline 1 is the "feeds" folder: not listed, its outlines are
    assert [(o.position, o.title, o.url) for o in opml.outlines] == [
        (2, "Lautsprecher", "https://feeds.metaebene.me/lautsprecher/m4a"),
        (3, "Other", None),
        (4, "Another", None),
    ]
    assert [o.problem for o in opml.outlines] == [
        None,
        "missing xmlUrl: the outline names no feed URL",
        "missing xmlUrl: the outline names no feed URL",
    ]


def test_every_bad_outline_says_what_is_wrong_and_the_good_ones_are_kept() -> None:
    opml = read_opml((OPML / "handmade__bad-outlines.opml").read_bytes())
    problems = {o.title: o.problem for o in opml.outlines}
    assert problems["Good show"] is None and problems["Nested show"] is None
    assert [o.url for o in opml.outlines if o.problem is None] == [
        "https://podcasts.example.org/good.xml",
        "https://podcasts.example.org/nested.xml",  # XMLURL: attribute names any case
    ]
    assert problems["No URL at all"] == problems["Empty URL"]
    assert "missing xmlUrl" in str(problems["No URL at all"])
    for title in ("FTP show", "iTunes scheme"):
        assert "must start with http:// or https://" in str(problems[title]), title
    assert "contains a space" in str(problems["Space in URL"])
    assert "invalid host 'bad_host-.example..org'" in str(problems["Bad host"])
    assert problems["Good show again"] == "duplicate of outline 1 (the same feed URL)"
    assert "links to another list (https://lists.example.org/more.opml)" in str(
        problems["Another list"]
    )
    assert "'podcast-playlist' is not a podcast" in str(problems["Queue"])
    assert "missing xmlUrl" in str(problems["Empty folder"])
    assert "Folder" not in problems  # a folder is not an outline to import


def test_a_cut_off_file_keeps_the_outlines_before_the_cut() -> None:
    opml = read_opml((OPML / "handmade__truncated.opml").read_bytes())
    assert [o.title for o in opml.outlines] == ["First", "Second"]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ((OPML / "handmade__not-opml.html").read_bytes(), "it is an HTML page"),
        ((OPML / "handmade__latin1-declared-utf8.opml").read_bytes(), "not valid UTF-8"),
        (b"", "the file is empty"),
        (b"  \n", "the file is empty"),
        (b'{"feeds": []}', "it is JSON, not XML"),
        (b"just some words", "it is not XML"),
        (b'<?xml version="1.0"?><subscriptions/>', "whose root is <subscriptions>"),
        (b'<?xml version="1.0"?>\n<rss version="2.0"><channel/></rss>', "it is a feed"),
        (b'<?xml version="1.0" encoding="klingon"?><opml/>', "encoding 'klingon'"),
    ],
    ids=["html", "latin1", "empty", "blank", "json", "text", "other-xml", "rss", "encoding"],
)
def test_a_file_that_is_not_opml_is_one_error_that_says_what_it_is(data: bytes, says: str) -> None:
    with pytest.raises(InvalidOpml) as caught:
        read_opml(data)
    message = str(caught.value)
    assert says in message
    assert "import" in message or "subscribe" in message  # and what to do


def test_encodings_a_file_may_be_in() -> None:
    text = (
        '<?xml version="1.0" encoding="{enc}"?><opml version="2.0"><head><title>Café</title>'
        '</head><body><outline type="rss" text="Ça va" xmlUrl="https://e.example/ç.xml"/>'
        "</body></opml>"
    )
    for data in (
        text.format(enc="utf-8").encode("utf-8-sig"),
        text.format(enc="utf-16").encode("utf-16"),
        text.format(enc="ISO-8859-1").encode("latin-1"),
    ):
        opml = read_opml(data)
        assert opml.title == "Café"
        assert [(o.title, o.url, o.problem) for o in opml.outlines] == [
            ("Ça va", "https://e.example/ç.xml", None)
        ]


def test_the_export_is_opml_2_that_reads_back_to_the_same_feeds() -> None:
    feeds = [
        OpmlFeed("Quarks & Co", "http://podcast.wdr.de/quarks.xml?a=1&b=2"),
        OpmlFeed('ZDF - "Die Anstalt" <live>', "https://www.zdf.de/a"),
        OpmlFeed("bell\x07 and tab\there", "https://e.example/bell"),
        OpmlFeed(None, "https://e.example/untitled"),
        OpmlFeed("Ça va", "https://e.example/cava", html_url="https://e.example/"),
    ]
    created = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
    data = write_opml("podmill subscriptions of alice & co", feeds, created=created)

    root = ET.fromstring(data)  # well-formed XML, whatever the titles held
    assert root.tag == "opml" and root.get("version") == "2.0"
    assert root.findtext("head/title") == "podmill subscriptions of alice & co"
    assert root.findtext("head/dateCreated") == "Fri, 04 Dec 2026 18:00:00 GMT"
    outlines = root.findall("body/outline")
    assert [o.get("type") for o in outlines] == ["rss"] * 5
    assert [o.get("xmlUrl") for o in outlines] == [f.url for f in feeds]
    assert outlines[2].get("title") == "bell and tab\there"  # no character XML refuses
    assert outlines[3].get("text") == "https://e.example/untitled"
    assert [o.get("htmlUrl") for o in outlines] == [None] * 4 + ["https://e.example/"]

    opml = read_opml(data)
    assert opml.title == "podmill subscriptions of alice & co"
    assert [(o.url, o.problem) for o in opml.outlines] == [(f.url, None) for f in feeds]
    assert [f.url for f in listparser.parse(data).feeds] == [f.url for f in feeds]


def test_without_listparser_reading_names_the_server_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "listparser", None)  # as on an install without it
    with pytest.raises(MissingExtraError) as caught:
        read_opml((OPML / "podcast-archiver__opml_downcast_valid.xml").read_bytes())
    assert "pip install 'podmill[server]'" in str(caught.value)
    # writing needs nothing but the standard library
    assert b"<opml" in write_opml("t", [], created=datetime.now(UTC))
