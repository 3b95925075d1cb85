"""`podmill run` on a URL that serves something other than a feed says what it got, in
words (never the document's bytes): a real PDF (partytime's real-world fixtures, MIT)
and a real HTML page without an <html> element (the podcast-namespace HTML transcript,
CC0: the closest real stand-in for an IIS "Document Moved" body, <head><title>…)."""

from __future__ import annotations

import pytest

from support.cli import run_cli
from support.paths import FIXTURES


@pytest.mark.parametrize(
    ("fixture", "content_type", "said"),
    [
        ("feeds/partytime__epic-web.pdf", "application/pdf", "the document is a PDF document"),
        (
            "transcripts/podcast-namespace__buzzsprout-10-things.html",
            "text/html",
            "the document is HTML",
        ),
    ],
)
def test_what_was_served_is_said(http_server, tmp_path, fixture, content_type, said) -> None:
    url = http_server.add_file("/feed.xml", FIXTURES / fixture, content_type)
    result = run_cli("run", url, "--data-dir", tmp_path / "d", "--allow-private-networks")
    assert result.code != 0
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert f"not a feed: {said}; give the podcast's RSS or Atom feed URL" in line
    assert "not XML" not in line
    assert "Travis" not in line and "PDF-1.4" not in line  # no bytes of the document
