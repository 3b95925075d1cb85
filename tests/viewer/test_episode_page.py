"""The episode page over what a real ``podmill run`` made, served by a real ``podmill
view``: the HTML (sentences with times, the topic tree, chapters, downloads), the media
with HTTP ranges, and (with chromium) the player synced to the transcript and the tree."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from itertools import accumulate
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.browser import ViewProcess, axe_check, screenshot, start_view
from support.cli import run_cli
from support.paths import DEMO, FIXTURES
from support.workers import wait_for

pytestmark = pytest.mark.slow

CHAPTERS = (
    '<psc:chapters version="1.1" xmlns:psc="http://podlove.org/simple-chapters">'
    '<psc:chapter start="00:00:00" title="Coffee &lt;b&gt;time&lt;/b&gt;"/>'
    '<psc:chapter start="00:01:05" title="Mars rovers" href="javascript:alert(1)"/>'
    '<psc:chapter start="00:02:15" title="Marathon" href="https://example.invalid/run"/>'
    "</psc:chapters>"
)
PUBLISHER_VTT = """WEBVTT

00:00:00.000 --> 00:00:04.000
<v Alice>Hello and welcome to a show with a publisher transcript.

00:00:04.000 --> 00:00:09.000
<v Bob>Nothing here was recognised by a machine, the feed gave it.
"""


def feed_xml() -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:podcast="https://podcastindex.org/namespace/1.0"
     xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">
<channel><title>Viewer show</title><link>https://example.invalid/</link>
<description>test</description>
<item><title>Three topics</title><guid>three</guid>
<pubDate>Mon, 02 Mar 2026 09:00:00 +0000</pubDate>
<description>&lt;p&gt;Coffee, &lt;b&gt;Mars&lt;/b&gt; and running&lt;/p&gt;</description>
<enclosure url="three-topics.ogg" length="340077" type="audio/ogg"/>{CHAPTERS}</item>
<item><title>JFK</title><guid>jfk</guid><pubDate>Mon, 12 Jan 2026 09:00:00 +0000</pubDate>
<enclosure url="jfk.flac" length="1152693" type="audio/flac"/>
<podcast:chapters url="https://example.invalid/jfk-chapters.json" type="application/json+chapters"/>
</item>
<item><title>Stereo</title><guid>wav</guid><pubDate>Mon, 05 Jan 2026 09:00:00 +0000</pubDate>
<enclosure url="stereo.wav" length="320044" type="audio/wav"/></item>
<item><title>Told by the feed</title><guid>told</guid>
<pubDate>Mon, 02 Feb 2026 09:00:00 +0000</pubDate><itunes:duration>00:00:09</itunes:duration>
<enclosure url="http://127.0.0.1:9/missing.mp3" length="1000" type="audio/mpeg"/>
<podcast:transcript url="told.vtt" type="text/vtt"/></item>
</channel></rss>
"""


@dataclass
class Ran:
    data: Path
    keys: dict[str, str]  # title -> episode key
    artifacts: dict[str, dict[str, str]]  # title -> kind -> path


@pytest.fixture(scope="session")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    """One real ``podmill run`` of a local feed: ASR episodes (Opus, FLAC, WAV), one with
    feed chapters, and one from a publisher transcript whose audio is never fetched."""
    root = tmp_path_factory.mktemp("episode-page")
    feed = root / "feed"
    feed.mkdir()
    shutil.copy(DEMO / "three-topics.ogg", feed / "three-topics.ogg")
    shutil.copy(DEMO / "jfk.flac", feed / "jfk.flac")
    shutil.copy(FIXTURES / "audio" / "stereo_diarization.wav", feed / "stereo.wav")
    (feed / "told.vtt").write_text(PUBLISHER_VTT)
    (feed / "feed.xml").write_text(feed_xml())
    data = root / "data"
    result = run_cli("run", feed / "feed.xml", "--data-dir", data, "--json", timeout=900)
    assert result.code == 0, result.stderr
    lines = result.json_lines()
    assert {line["status"] for line in lines} == {"done"}, lines
    return Ran(
        data,
        {line["title"]: line["episode_key"] for line in lines},
        {line["title"]: line["artifacts"] for line in lines},
    )


@dataclass
class View:
    """The harness's ``podmill view`` process, with a GET helper."""

    process: ViewProcess

    @property
    def url(self) -> str:
        return self.process.url

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)


@pytest.fixture(scope="session")
def view(ran: Ran, tmp_path_factory: pytest.TempPathFactory) -> Iterator[View]:
    """``podmill view`` over the run's data dir (read-only, no login)."""
    process = start_view(ran.data, tmp_path_factory.mktemp("view-log") / "view.log")
    try:
        yield View(process)
    finally:
        process.stop()


class Outline(HTMLParser):
    """The parts of an episode page the tests read: sentence spans with their times and
    text, topic nodes, chapter items, links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sentences: list[dict[str, str]] = []
        self.topics: list[dict[str, str]] = []
        self.links: list[dict[str, str]] = []
        self.speakers: list[str] = []
        self.tags: list[str] = []
        self.words: dict[str, list[int]] | None = None
        self._in: str | None = None
        self._script_json = False
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if tag == "span" and a.get("class") == "s":
            self.sentences.append({**a, "text": ""})
            self._in = "sentence"
        elif tag == "span" and a.get("class") == "spk":
            self._in, self._text = "speaker", ""
        elif tag == "details" and "topic" in a.get("class", ""):
            self.topics.append({**a, "title": ""})
        elif tag == "span" and a.get("class") == "topic-title":
            self._in = "topic"
        elif tag == "a":
            self.links.append({**a, "text": ""})
            self._in = "link"
        elif tag == "script" and a.get("id") == "ep-words":
            self._script_json, self._text = True, ""

    def handle_endtag(self, tag: str) -> None:
        if self._in == "speaker" and tag == "span":
            self.speakers.append(self._text)
        if self._script_json and tag == "script":
            self.words = json.loads(self._text)
            self._script_json = False
        if tag in ("span", "a"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._script_json or self._in == "speaker":
            self._text += data
        elif self._in == "sentence":
            self.sentences[-1]["text"] += data
        elif self._in == "topic":
            self.topics[-1]["title"] += data
        elif self._in == "link":
            self.links[-1]["text"] += data


def outline(html: str) -> Outline:
    parsed = Outline()
    parsed.feed(html)
    return parsed


def flat_tree(node: dict) -> list[dict]:
    return [node, *(n for child in node["children"] for n in flat_tree(child))]


# ------------------------------------------------------------------------ the HTML


def test_the_page_shows_sentences_with_their_times_and_word_times(view: View, ran: Ran) -> None:
    key = ran.keys["Three topics"]
    answer = view.get(f"/view/episode/{key}")
    assert answer.status_code == 200
    page = outline(answer.text)
    transcript = json.loads(Path(ran.artifacts["Three topics"]["transcript_json"]).read_text())
    words = [w for s in transcript["segments"] for w in s["words"]]
    sentences = json.loads(
        (Path(ran.artifacts["Three topics"]["topics"]).parent / "sentences.json").read_text()
    )
    # one element per sentence, never one per word
    assert len(page.sentences) == len(sentences) < len(words) / 5
    for shown, stored in zip(page.sentences, sentences):
        assert float(shown["data-start"]) == pytest.approx(stored["start"], abs=0.006)
        assert float(shown["data-end"]) == pytest.approx(stored["end"], abs=0.006)
        assert int(shown["data-w"]) == stored["word_start"]
        assert shown["text"] == stored["text"]
    # every word's time and where it begins in its sentence's text
    assert page.words is not None
    assert list(accumulate(page.words["d"])) == [round(w["start"] * 100) for w in words]
    for shown, stored in zip(page.sentences, sentences):
        for n in range(stored["word_start"], stored["word_end"]):
            offset = page.words["o"][n]
            word = words[n]["text"].strip()
            assert shown["text"][offset : offset + len(word)] == word
    assert page.tags.count("span") < len(words)
    assert '<script src="/static/episode.js" defer></script>' in answer.text
    assert "style=" not in answer.text and "onclick" not in answer.text.lower()


def test_the_tree_chapters_and_downloads_are_on_the_page(view: View, ran: Ran) -> None:
    key = ran.keys["Three topics"]
    html = view.get(f"/view/episode/{key}").text
    page = outline(html)
    tree = json.loads(Path(ran.artifacts["Three topics"]["topics"]).read_text())
    nodes = flat_tree(tree["root"])
    assert len(nodes) >= 3
    assert [t["title"] for t in page.topics] == [n["title"] for n in nodes]
    assert [float(t["data-start"]) for t in page.topics] == pytest.approx(
        [n["start"] for n in nodes], abs=0.006
    )
    assert {int(t["data-level"]) for t in page.topics} == {n["level"] for n in nodes}
    for node in nodes:
        assert node["summary"].replace("'", "&#39;") in html
        for point in node["key_points"]:
            assert point.replace("'", "&#39;") in html
    seeks = {float(a["data-t"]) for a in page.links if a.get("class") == "seek"}
    assert {round(n["start"], 2) for n in nodes} <= {round(t, 2) for t in seeks}
    # chapters from the feed: titles as text, a javascript: link is no link
    assert {0.0, 65.0, 135.0} <= seeks
    assert "Coffee &lt;b&gt;time&lt;/b&gt;" in html
    assert "javascript:" not in html
    assert any(a.get("href") == "https://example.invalid/run" for a in page.links)
    # the show notes are text, not markup
    assert "Coffee, Mars and running" in html and "<b>Mars" not in html
    hrefs = {a.get("href") for a in page.links}
    for fmt in ("json", "srt", "vtt", "txt"):
        assert f"/view/episode/{key}/download/{fmt}" in hrefs
    assert f"/view/episode/{key}/summary.md" in hrefs
    assert f'src="/view/episode/{key}/media"' in html


def test_a_chapters_file_is_linked_not_fetched(view: View, ran: Ran) -> None:
    html = view.get(f"/view/episode/{ran.keys['JFK']}").text
    links = outline(html).links
    assert any(a.get("href") == "https://example.invalid/jfk-chapters.json" for a in links)
    assert 'class="ep-chapters"' not in html  # no chapter list: podmill never read the file


@pytest.mark.parametrize(
    "fmt,kind", [("json", "transcript_json"), ("srt", "srt"), ("vtt", "vtt"), ("txt", "txt")]
)
def test_downloads_are_the_stored_files(view: View, ran: Ran, fmt: str, kind: str) -> None:
    key = ran.keys["JFK"]
    answer = view.get(f"/view/episode/{key}/download/{fmt}")
    assert answer.status_code == 200
    assert answer.content == Path(ran.artifacts["JFK"][kind]).read_bytes()
    assert "attachment" in answer.headers["content-disposition"]


def test_summary_md_is_the_stored_file(view: View, ran: Ran) -> None:
    key = ran.keys["JFK"]
    answer = view.get(f"/view/episode/{key}/summary.md")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/markdown")
    assert answer.content == Path(ran.artifacts["JFK"]["summary_md"]).read_bytes()


def test_a_publisher_transcript_without_audio_says_so_and_shows_speakers(
    view: View, ran: Ran
) -> None:
    key = ran.keys["Told by the feed"]
    html = view.get(f"/view/episode/{key}").text
    page = outline(html)
    assert "Audio not stored" in html and "<audio" not in html
    original = [a for a in page.links if a.get("href") == "http://127.0.0.1:9/missing.mp3"]
    assert original and original[0]["text"] == "http://127.0.0.1:9/missing.mp3"
    assert page.speakers == ["Alice", "Bob"]
    assert page.sentences[0]["text"].startswith("Hello and welcome")
    assert view.get(f"/view/episode/{key}/media").status_code == 404


def test_unknown_episodes_are_404_pages(view: View) -> None:
    for path in (
        "/view/episode/nosuchkey",
        "/view/episode/nosuchkey/media",
        "/view/episode/nosuchkey/download/srt",
        "/view/episode/nosuchkey/summary.md",
    ):
        answer = view.get(path)
        assert answer.status_code == 404, path
        assert "text/html" in answer.headers["content-type"]
        assert "Traceback" not in answer.text
    assert view.get("/view/episode/nosuchkey/download/exe").status_code in (404, 422)


# ------------------------------------------------------------------------ the media


@pytest.mark.parametrize(
    "title,content_type",
    [("Three topics", "audio/ogg; codecs=opus"), ("JFK", "audio/flac"), ("Stereo", "audio/wav")],
)
def test_media_is_the_stored_file_with_its_type(
    view: View, ran: Ran, title: str, content_type: str
) -> None:
    key = ran.keys[title]
    stored = next((ran.data / "episodes" / key / "media").glob("audio.*")).read_bytes()
    whole = view.get(f"/view/episode/{key}/media")
    assert whole.status_code == 200
    assert whole.headers["content-type"] == content_type
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["x-content-type-options"] == "nosniff"
    assert hashlib.sha256(whole.content).digest() == hashlib.sha256(stored).digest()


def test_ranges_are_206_with_the_files_bytes(view: View, ran: Ran) -> None:
    key = ran.keys["JFK"]
    stored = next((ran.data / "episodes" / key / "media").glob("audio.*")).read_bytes()
    size = len(stored)
    url = f"/view/episode/{key}/media"
    for header, first, last in [
        ("bytes=0-0", 0, 0),
        ("bytes=100-4195", 100, 4195),
        (f"bytes={size - 10}-", size - 10, size - 1),
        ("bytes=-500", size - 500, size - 1),
        (f"bytes=1000-{size + 5000}", 1000, size - 1),  # clipped to the end
    ]:
        part = view.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}", header
        assert int(part.headers["content-length"]) == last - first + 1
        assert part.content == stored[first : last + 1], header
        assert part.headers["x-content-type-options"] == "nosniff"
    for bad in (
        f"bytes={size}-",
        f"bytes={size + 10}-{size + 20}",
        "bytes=50-10",
        "bytes=-0",
        "items=0-10",
        "bytes=abc",
    ):
        refused = view.get(url, headers={"Range": bad})
        assert refused.status_code == 416, bad
        assert refused.headers["content-range"] == f"bytes */{size}", bad
    # a range for a file that changed since (If-Range no longer matches): the whole file
    stale = view.get(url, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.content == stored
    etag = stale.headers["etag"]
    fresh = view.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert fresh.status_code == 206 and fresh.content == stored[:10]


def test_head_answers_the_headers_only(view: View, ran: Ran) -> None:
    key = ran.keys["Three topics"]
    size = next((ran.data / "episodes" / key / "media").glob("audio.*")).stat().st_size
    head = httpx.head(f"{view.url}/view/episode/{key}/media", timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == size
    part = httpx.head(f"{view.url}/view/episode/{key}/media", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == b""
    assert part.headers["content-range"] == f"bytes 10-19/{size}"


def test_the_media_route_refuses_writes(view: View, ran: Ran) -> None:
    answer = httpx.post(f"{view.url}/view/episode/{ran.keys['JFK']}/media", timeout=30)
    assert answer.status_code == 405


def test_pages_name_no_file_outside_the_data_dir(view: View, ran: Ran) -> None:
    html = view.get(f"/view/episode/{ran.keys['JFK']}").text
    assert str(ran.data) not in html
    assert not re.search(r"/tmp/|\\\\", html)


# ------------------------------------------------------------------------ in a browser
# The shared harness (tests/viewer/conftest.py): `page` / `page360` fail a test on any
# dialog or console error; screenshots go to bench/out/screenshots/.


VISIBLE = """() => {
  const box = document.getElementById('ep-text'), s = box.querySelector('span.s.current');
  if (!s) return false;
  const b = box.getBoundingClientRect(), r = s.getBoundingClientRect();
  return r.bottom > b.top && r.top < b.bottom;
}"""
READY = "() => document.documentElement.dataset.episodeReady === '1'"


def open_episode(page: object, view: View, key: str, fragment: str = "") -> None:
    page.goto(f"{view.url}/view/episode/{key}{fragment}")  # type: ignore[attr-defined]
    page.wait_for_function(READY)  # type: ignore[attr-defined]
    page.wait_for_function("() => document.getElementById('ep-audio').readyState >= 1")  # type: ignore[attr-defined]


STATE = """() => {
  const audio = document.getElementById('ep-audio');
  const s = document.querySelector('#ep-text span.s.current');
  const topic = document.querySelector('details.topic.current');
  const hl = CSS.highlights.get('ep-word');
  const word = hl ? [...hl][0].toString() : null;
  const all = [...document.querySelectorAll('#ep-text span.s')];
  return {t: audio.currentTime, paused: audio.paused, sentence: all.indexOf(s),
          start: s ? parseFloat(s.dataset.start) : null, sentenceText: s ? s.textContent : null,
          topic: topic ? parseFloat(topic.dataset.start) : null, word: word,
          hash: location.hash};
}"""


@pytest.mark.browser
def test_playing_moves_the_highlight_and_the_current_topic(page, view: View, ran: Ran) -> None:
    key = ran.keys["Three topics"]
    tree = json.loads(Path(ran.artifacts["Three topics"]["topics"]).read_text())
    leaves = [n for n in flat_tree(tree["root"]) if not n["children"]]
    open_episode(page, view, key)
    page.evaluate("document.getElementById('ep-audio').playbackRate = 8")
    page.locator("body").press(" ")  # space plays
    seen: list[dict] = []
    words: set[str] = set()

    def reached_last_topic() -> bool:
        state = page.evaluate(STATE)
        seen.append(state)
        if state["word"]:
            words.add(state["word"])
        return state["topic"] is not None and state["topic"] >= leaves[-1]["start"] - 0.01

    wait_for(
        reached_last_topic, 60, "playback to reach the last topic", detail=lambda: str(seen[-3:])
    )
    page.keyboard.press(" ")  # and pauses
    page.wait_for_function("() => document.getElementById('ep-audio').paused")
    playing = [s for s in seen if s["sentence"] >= 0]
    indices = [s["sentence"] for s in playing]
    assert indices == sorted(indices) and len(set(indices)) >= 5  # the highlight advanced
    for state in playing:  # the marked sentence is where the player is
        assert state["start"] <= state["t"] + 0.3
    topics = [s["topic"] for s in playing]
    assert topics == sorted(topics)
    assert {round(n["start"], 2) for n in leaves[:-1]} <= {round(t, 2) for t in topics}
    for state in playing:  # the current topic is the leaf that holds the current time
        leaf = next(n for n in leaves if n["start"] <= state["t"] + 0.3 < n["end"] + 0.3)
        assert abs(state["topic"] - leaf["start"]) < 0.01 or abs(state["t"] - leaf["start"]) < 1
    assert len(words) >= 5  # the current word is marked too, and moves
    # the view followed: the current sentence is inside the transcript's box, and only
    # the box scrolled, never the window
    assert page.evaluate(VISIBLE) and page.evaluate("window.scrollY") == 0
    assert page.evaluate("document.getElementById('ep-text').scrollTop") > 0
    # the permalink follows the player (written by the "pause" event, after `paused`)
    page.wait_for_function(
        "() => location.hash === "
        "'#t=' + Math.floor(document.getElementById('ep-audio').currentTime)"
    )
    assert page.locator("#ep-permalink").get_attribute("href") == page.evaluate("location.hash")


@pytest.mark.browser
def test_the_view_does_not_fight_the_reader_scrolling(page, view: View, ran: Ran) -> None:
    open_episode(page, view, ran.keys["Three topics"], "#t=150")
    page.wait_for_function("() => document.getElementById('ep-audio').currentTime >= 150")
    page.wait_for_function(VISIBLE)
    box = page.locator("#ep-text").bounding_box()
    page.mouse.move(box["x"] + 50, box["y"] + 50)
    for _ in range(40):  # the reader scrolls back to the beginning while it plays
        page.mouse.wheel(0, -400)
    page.wait_for_function("() => document.getElementById('ep-text').scrollTop === 0")
    page.wait_for_timeout(1500)  # sentences change meanwhile; the box stays where it was put
    assert page.evaluate("document.getElementById('ep-text').scrollTop") == 0
    assert not page.evaluate("document.getElementById('ep-audio').paused")


@pytest.mark.browser
def test_clicking_a_topic_a_chapter_and_a_word_seeks_there(page, view: View, ran: Ran) -> None:
    key = ran.keys["Three topics"]
    tree = json.loads(Path(ran.artifacts["Three topics"]["topics"]).read_text())
    target = flat_tree(tree["root"])[-1]
    open_episode(page, view, key)
    page.locator(f"details.topic[data-start='{target['start']:.2f}'] > p.topic-when a.seek").click()
    page.wait_for_function(
        f"() => Math.abs(document.getElementById('ep-audio').currentTime - {target['start']}) < 0.5"
    )
    state = page.evaluate(STATE)
    assert state["topic"] == pytest.approx(target["start"], abs=0.01)
    assert state["hash"] == f"#t={int(target['start'])}"

    page.locator("li.chapter a.seek").nth(1).click()  # "Mars rovers" at 1:05
    page.wait_for_function(
        "() => Math.abs(document.getElementById('ep-audio').currentTime - 65) < 0.5"
    )

    words = page.evaluate("JSON.parse(document.getElementById('ep-words').textContent)")
    starts = list(accumulate(words["d"]))
    sentence = 12
    first = int(page.locator("#ep-text span.s").nth(sentence).get_attribute("data-w"))
    count = int(page.locator("#ep-text span.s").nth(sentence + 1).get_attribute("data-w")) - first
    pick = first + count // 2  # a word in the middle of the sentence
    box = page.evaluate(
        """([i, w]) => {
          const span = document.querySelectorAll('#ep-text span.s')[i];
          span.scrollIntoView({block: 'center'});
          const o = JSON.parse(document.getElementById('ep-words').textContent).o;
          const r = document.createRange();
          r.setStart(span.firstChild, o[w] + 1); r.setEnd(span.firstChild, o[w] + 2);
          const b = r.getBoundingClientRect();
          return {x: b.left + b.width / 2, y: b.top + b.height / 2};
        }""",
        [sentence, pick],
    )
    page.mouse.click(box["x"], box["y"])
    expected = starts[pick] / 100
    page.wait_for_function(
        f"() => Math.abs(document.getElementById('ep-audio').currentTime - {expected}) < 0.3"
    )
    state = page.evaluate(STATE)
    assert state["sentence"] == sentence


@pytest.mark.browser
def test_a_t_link_starts_playback_there(page, view: View, ran: Ran) -> None:
    key = ran.keys["Three topics"]
    open_episode(page, view, key, "#t=100")
    page.wait_for_function("() => !document.getElementById('ep-audio').paused")
    page.wait_for_function("() => document.getElementById('ep-audio').currentTime >= 100")
    state = page.evaluate(STATE)
    assert 100 <= state["t"] < 110
    assert state["start"] <= state["t"] and state["sentenceText"]


@pytest.mark.browser
def test_keys_seek_toggle_and_find(page, view: View, ran: Ran) -> None:
    key = ran.keys["Three topics"]
    open_episode(page, view, key, "#t=30")
    page.wait_for_function("() => document.getElementById('ep-audio').currentTime >= 30")
    page.keyboard.press(" ")
    page.wait_for_function("() => document.getElementById('ep-audio').paused")
    before = page.evaluate("document.getElementById('ep-audio').currentTime")
    page.keyboard.press("ArrowRight")
    after = page.evaluate("document.getElementById('ep-audio').currentTime")
    assert after == pytest.approx(before + 5, abs=0.05)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("document.getElementById('ep-audio').currentTime") == pytest.approx(
        before - 5, abs=0.05
    )
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "ep-find"
    page.keyboard.type("rover")
    page.keyboard.press("Enter")
    hits = page.locator("#ep-text span.s.hit")
    assert hits.count() >= 2
    assert all("rover" in hits.nth(i).inner_text().lower() for i in range(hits.count()))
    # typing in the box never toggles the player
    page.keyboard.press(" ")
    assert page.evaluate("document.getElementById('ep-audio').paused")


@pytest.mark.browser
@pytest.mark.parametrize("title", ["Three topics", "Told by the feed"])
def test_screenshots_axe_and_layout(page, page360, view: View, ran: Ran, title: str) -> None:
    slug = re.sub(r"\W+", "-", title.lower())
    for shown, width in ((page, 1280), (page360, 360)):
        shown.goto(f"{view.url}/view/episode/{ran.keys[title]}")
        shown.wait_for_function(READY)
        assert shown.evaluate("document.documentElement.scrollWidth") <= width
        axe_check(shown)
        text = shown.locator(".ep-transcript").bounding_box()
        side = shown.locator("aside.ep-side").bounding_box()
        if width == 360:  # stacked: the tree under the transcript
            assert side["y"] >= text["y"] + text["height"] - 1
        else:  # side by side
            assert side["x"] >= text["x"] + text["width"] - 1
    screenshot(page, f"episode-{slug}")
