"""OPML subscription lists: read a podcast app's export, write podmill's (OPML 2.0).

Reading goes through ``listparser`` (the ``server`` extra) and is lenient where apps are
sloppy (attribute case, ``text`` or ``title``, folders, unclosed tags). It is strict
where podmill would act on a value: every outline that is not a folder either names a
feed podmill may try to subscribe to, or carries the reason it cannot be imported
(:attr:`Outline.problem`): no ``xmlUrl``, a URL podmill would never fetch
(:func:`podmill.feeds.urls.fetchable_url`, the API's own rule), a second copy of a URL
the list already gave, a link to another list. Whether the feed behind a URL is usable
is the catalog's to decide when it subscribes (``platform/catalog.py``).

A file that is not an OPML document at all raises :class:`InvalidOpml`: one error that
says what the file is and what to do.
"""

from __future__ import annotations

import codecs
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from podmill.errors import PodmillError, require
from podmill.feeds.identity import normalize_url
from podmill.feeds.urls import MAX_URL_LENGTH, fetchable_url

OPML_MEDIA_TYPE = "text/x-opml"
_EXPORT_HOWTO = (
    "export your subscriptions as OPML from your podcast app (usually under Settings, "
    "Import/Export) and import that file"
)


class InvalidOpml(PodmillError):
    """The file is not an OPML list podmill can read; nothing in it was imported."""


@dataclass(frozen=True)
class Outline:
    """One ``<outline>`` of a list that is not a folder.

    ``position`` counts every ``<outline>`` element of the file from 1, in document
    order (folders included), so a reader can find it; ``url`` is its ``xmlUrl`` as
    written, stripped; ``problem`` says why it cannot be imported (``None``: it can be
    tried)."""

    position: int
    title: str | None
    url: str | None
    problem: str | None = None


@dataclass(frozen=True)
class OpmlList:
    """A read OPML list: its ``<head><title>`` and its outlines, folders left out."""

    title: str | None
    outlines: list[Outline]


@dataclass(frozen=True)
class OpmlFeed:
    """A feed written into an exported list; ``html_url`` when podmill knows it."""

    title: str | None
    url: str
    html_url: str | None = None


def read_opml(data: bytes) -> OpmlList:
    """The outlines of the OPML document ``data``; :class:`InvalidOpml` when it is not one."""
    listparser = require("listparser", "server", "OPML import")
    text = _decode(data)
    handler = _recorder(listparser)()
    handler.harvest.update(
        {"feeds": [], "lists": [], "opportunities": [], "meta": {}, "version": ""}
    )
    try:
        handler.feed(text)
        handler.close()
    except Exception as exc:  # listparser's handler on a document it cannot follow
        raise InvalidOpml(
            f"the file could not be read as OPML ({type(exc).__name__}: {exc}); {_EXPORT_HOWTO}"
        ) from None
    version = str(handler.harvest.get("version") or "")
    if not version.startswith("opml"):
        what, advice = _describe(text)
        raise InvalidOpml(f"the file is not an OPML list: it is {what}; {advice}")
    title = str(handler.harvest["meta"].get("title") or "").strip() or None
    return OpmlList(title, _outlines(handler.records))


def write_opml(title: str, feeds: Iterable[OpmlFeed], *, created: datetime) -> bytes:
    """An OPML 2.0 document (UTF-8) listing ``feeds`` as ``type="rss"`` outlines, the
    way podcast apps import them: ``text`` and ``title`` the feed's title, ``xmlUrl``
    its URL, ``htmlUrl`` its web page when known."""
    root = ET.Element("opml", {"version": "2.0"})
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = _xml_text(title)
    ET.SubElement(head, "dateCreated").text = format_datetime(created, usegmt=True)
    ET.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = ET.SubElement(root, "body")
    for feed in feeds:
        name = _xml_text(feed.title or "") or feed.url
        attrs = {"type": "rss", "text": name, "title": name, "xmlUrl": feed.url}
        if feed.html_url:
            attrs["htmlUrl"] = feed.html_url
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    document = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{document}\n'.encode()


# ------------------------------------------------------------------------- reading


@dataclass
class _Record:
    """An ``<outline>`` as the parser met it: its attributes (names lowercased) and
    how many outlines it holds."""

    position: int
    attrs: dict[str, str]
    children: int = 0


def _recorder(listparser: Any) -> type:
    """listparser's own handler (OPML, attribute case, namespaces, the HTML parser that
    survives broken XML), also recording every ``<outline>``: listparser keeps only the
    ones with a URL, and silently drops the ones this import must report."""

    class Recorder(listparser.Handler):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.records: list[_Record] = []
            self._open: list[_Record] = []

        def start_opml_outline(self, attrs: dict[str, str]) -> None:
            if self._open:
                self._open[-1].children += 1
            record = _Record(len(self.records) + 1, dict(attrs))
            self.records.append(record)
            self._open.append(record)
            super().start_opml_outline(attrs)

        def end_opml_outline(self) -> None:
            if self._open:
                self._open.pop()
            super().end_opml_outline()

    return Recorder


def _outlines(records: list[_Record]) -> list[Outline]:
    outlines: list[Outline] = []
    seen: dict[str, int] = {}
    for record in records:
        attrs = record.attrs
        title = attrs.get("text", "").strip() or attrs.get("title", "").strip() or None
        kind = attrs.get("type", "").strip().lower()
        if "xmlurl" in attrs or kind == "rss":
            url = attrs.get("xmlurl", "").strip() or None
            problem = _feed_problem(url, kind, seen, record.position)
        elif kind in ("link", "include"):
            url = attrs.get("url", "").strip() or None
            problem = (
                f"links to another list ({url or 'no url'}), not a feed; "
                "import that list's own file"
            )
        elif record.children == 0:
            url = None
            problem = "missing xmlUrl: the outline names no feed" + (
                f" (an outline of type {kind!r} is not a podcast)" if kind else ""
            )
        else:
            continue  # a folder: its outlines are listed themselves
        outlines.append(Outline(record.position, title, url, problem))
    return outlines


def _feed_problem(url: str | None, kind: str, seen: dict[str, int], position: int) -> str | None:
    """Why the feed outline with ``xmlUrl`` ``url`` cannot be imported, or ``None``;
    records ``url`` in ``seen`` (normalized URL → position) when it can."""
    if kind == "source":
        return "is another subscription list (type 'source'), not a feed; import that list"
    if url is None:
        return "missing xmlUrl: the outline names no feed URL"
    if len(url) > MAX_URL_LENGTH:
        return f"xmlUrl is {len(url)} characters long; podmill takes at most {MAX_URL_LENGTH}"
    try:
        fetchable_url(url)
    except ValueError as exc:
        return str(exc)
    key = normalize_url(url)
    if key in seen:
        return f"duplicate of outline {seen[key]} (the same feed URL)"
    seen[key] = position
    return None


_DECLARED = re.compile(rb"""\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _decode(data: bytes) -> str:
    """The document's text: by its byte-order mark, else its declared encoding, else
    UTF-8 (what OPML files are in practice)."""
    if not data.strip():
        raise InvalidOpml(f"the file is empty; {_EXPORT_HOWTO}")
    boms = {
        codecs.BOM_UTF8: "utf-8-sig",
        codecs.BOM_UTF16_LE: "utf-16",
        codecs.BOM_UTF16_BE: "utf-16",
    }
    marked = next((name for bom, name in boms.items() if data.startswith(bom)), None)
    declared = _DECLARED.match(data)
    encoding = marked or (declared.group(1).decode("ascii") if declared else "utf-8")
    try:
        return data.decode(encoding)
    except LookupError:
        raise InvalidOpml(
            f"the file declares encoding {encoding!r}, which podmill does not know; "
            "save it as UTF-8 and import it again"
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidOpml(
            f"the file is not valid {encoding} (bad byte at offset {exc.start}); "
            "save it as UTF-8 and import it again"
        ) from None


def _describe(text: str) -> tuple[str, str]:
    """What a document that is not OPML looks like, in a few words, and what to do."""
    head = text.lstrip()[:2048].lower()
    if re.search(r"<(rss|feed|rdf:rdf)\b", head):
        return "a feed, not a list of feeds", "subscribe to the feed's URL instead"
    if re.search(r"<(!doctype html|html|head|body)\b", head):
        what = "an HTML page"
    elif (root := re.search(r"<(?![?!])([\w:.-]+)", head)) and head.startswith("<"):
        what = f"an XML document whose root is <{root.group(1)}>, not <opml>"
    elif head.startswith(("{", "[")):
        what = "JSON, not XML"
    else:
        what = "not XML"
    return what, _EXPORT_HOWTO


def _xml_text(value: str) -> str:
    """``value`` without the characters XML 1.0 cannot carry."""
    return _CONTROL.sub("", value)
