"""Untrusted text inside the Markdown podmill writes (``summary.md``, the digest).

Titles, summaries and key points come from feeds and transcripts, written by strangers:
:func:`md_escape` makes Markdown show them as written. It sits at the bottom of the
layers (docs/architecture.md) because the pipeline's outline and the digest both render
Markdown and neither may import the other.
"""

from __future__ import annotations

import re

# What can start emphasis, code, a link, a heading, a table cell, HTML or an entity. An
# underscore between letters or digits never opens emphasis (CommonMark), and parentheses
# make a link only after "]" (escaped): both stay as written ("SPEAKER_1 (70%)").
_MD_SPECIAL = re.compile(r"([\\`*{}\[\]#+!|<>~&]|(?<![^\W_])_|_(?![^\W_]))")


def md_escape(text: str | None) -> str:
    """Text that Markdown shows as written: no emphasis, links, headings or raw HTML."""
    flat = " ".join((text or "").split())  # a newline could start a heading or a list
    return _MD_SPECIAL.sub(r"\\\1", flat)
