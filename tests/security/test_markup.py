"""Feed markup never reaches summary.md raw (issue 20, item 10): a feed whose titles and
publisher transcript carry ``<script>``, ``<img onerror>`` and a ``javascript:`` link is
processed by the embedded runner; the Markdown shows the text, escaped."""

from __future__ import annotations

import re
from pathlib import Path

from podmill.engine.runner import Runner
from podmill.feeds.sources import resolve
from podmill.settings import Settings

from support.feeds import item, rss

HOSTILE = "<script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3))"
VTT = "WEBVTT\n\n" + "".join(
    f"00:00:{2 * n:02d}.000 --> 00:00:{2 * n + 2:02d}.000\n"
    f"Sentence {n} about {HOSTILE} and the weather.\n\n"
    for n in range(20)
)


def test_summary_md_carries_no_raw_feed_markup(tmp_path: Path) -> None:
    transcript = tmp_path / "t.vtt"
    transcript.write_text(VTT)
    extra = f'<podcast:transcript url="{transcript.as_uri()}" type="text/vtt"/>'
    title = "&lt;script&gt;alert(1)&lt;/script&gt; [x](javascript:alert(4))"
    feed = tmp_path / "feed.xml"
    feed.write_bytes(rss([item("g1", title, None, extra=extra)], title=title))
    settings = Settings(data_dir=tmp_path / "data")
    resolved = resolve(str(feed), settings)
    (result,) = Runner(settings).run_many(resolved.episodes, feed=resolved.feed)
    assert result.status == "done", result.error
    summary = Path(result.artifacts["summary_md"]).read_text()
    assert "alert" in summary  # the text is there, shown as written
    # Markdown shows a backslash-escaped character as text: only an unescaped one is markup.
    for raw in (r"<script", r"<img", r"\]\(javascript:", r"\[click\]"):
        assert not re.search(r"(?<!\\)" + raw, summary), (raw, summary)
    assert r"\<script\>" in summary
