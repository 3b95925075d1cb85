"""Podcasting 2.0 routes (api/podcasting.py) and ``podmill feed``: a tenant subscribes to
a real feed on the test HTTP server, one of its episodes gets a finished artifact set,
and what the routes serve is read by third-party parsers (webvtt-py, srt, feedparser)
and checked against the specs' shapes (tests/support/podcasting.py)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import pytest
import srt
import webvtt

from podmill.domain import Segment, TopicNode, Transcript, Word
from podmill.platform import Platform
from podmill.settings import Settings
from podmill.transcript_formats import to_json, to_srt, to_txt, to_vtt

from support.api import Caller, LiveFeed, assert_error, make_settings
from support.cli import run_cli
from support.podcasting import PODCAST_NS, check_chapters, check_json_transcript


def _transcript() -> Transcript:
    hello = [Word("Hello", 1.0, 1.4, speaker="Ada"), Word("there.", 1.5, 2.0, speaker="Ada")]
    reply = [Word("Hi", 62.0, 62.3, speaker="Bo"), Word("Ada.", 62.4, 63.0, speaker="Bo")]
    return Transcript(
        "en",
        120.0,
        [
            Segment(1.0, 2.0, "Hello there.", hello, "Ada"),
            Segment(62.0, 63.0, "Hi Ada.", reply, "Bo"),
        ],
        "asr:test",
    )


def _tree() -> dict[str, Any]:
    split = [
        TopicNode("a.1", 2, 0.0, 30.0, 0, 1, title="Greeting"),
        TopicNode("a.2", 2, 30.0, 60.0, 1, 2, title="Small talk"),
    ]
    topics = [
        TopicNode("a", 1, 0.0, 60.0, 0, 2, title="Hello", children=split),
        TopicNode("b", 1, 60.0, 120.0, 2, 4, title="Reply"),
    ]
    root = TopicNode("r", 0, 0.0, 120.0, 0, 4, title="An episode", children=topics)
    return {"episode_key": "", "title": root.title, "root": root.to_dict()}


def finish_episode(platform: Platform, key: str) -> None:
    """A finished artifact set for ``key`` as publish leaves it (manifest last)."""
    transcript, fp, store = _transcript(), platform.fingerprint, platform.artifacts
    store.write_text(key, fp, "transcript.json", to_json(transcript))
    store.write_text(key, fp, "transcript.vtt", to_vtt(transcript))
    store.write_text(key, fp, "transcript.srt", to_srt(transcript))
    store.write_text(key, fp, "transcript.txt", to_txt(transcript))
    store.write_json(key, fp, "topics.json", _tree())
    store.write_manifest(key, fp, {})


@pytest.fixture
def show(alice: Caller, live_feed: LiveFeed, platform: Platform) -> dict[str, Any]:
    """Alice's subscription to the live feed; its newest episode processed."""
    feed_id = alice.post("/subscriptions", json={"url": live_feed.url}).json()["feed_id"]
    episodes = alice.get(f"/episodes?feed={feed_id}").json()
    assert [e["title"] for e in episodes] == ["Episode 2", "Episode 1", "Episode 0"]
    finish_episode(platform, episodes[0]["episode_key"])
    return {"feed": feed_id, "done": episodes[0]["episode_key"], "new": episodes[1]["episode_key"]}


def test_transcript_json_is_the_podcasting_format_with_speakers(
    alice: Caller, show: dict[str, Any]
) -> None:
    response = alice.get(f"/episodes/{show['done']}/transcript.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert check_json_transcript(document) == []
    assert document == {
        "version": "1.0.0",
        "segments": [
            {"speaker": "Ada", "startTime": 1.0, "endTime": 2.0, "body": "Hello there."},
            {"speaker": "Bo", "startTime": 62.0, "endTime": 63.0, "body": "Hi Ada."},
        ],
    }
    # podmill's own word-timed JSON stays where it was
    assert "words" in alice.get(f"/episodes/{show['done']}/transcript").json()["segments"][0]


def test_captions_have_their_mime_types_and_parse(alice: Caller, show: dict[str, Any]) -> None:
    vtt = alice.get(f"/episodes/{show['done']}/transcript.vtt")
    assert vtt.headers["content-type"] == "text/vtt; charset=utf-8"
    captions = webvtt.from_string(vtt.text)
    assert [(c.voice, c.text, c.start_in_seconds) for c in captions] == [
        ("Ada", "Hello there.", 1),
        ("Bo", "Hi Ada.", 62),
    ]
    same = alice.get(f"/episodes/{show['done']}/transcript?format=vtt")
    assert (same.headers["content-type"], same.text) == (vtt.headers["content-type"], vtt.text)
    subrip = alice.get(f"/episodes/{show['done']}/transcript.srt")
    assert subrip.headers["content-type"] == "application/x-subrip"
    subtitles = list(srt.parse(subrip.text))
    assert [(s.content, s.start.total_seconds()) for s in subtitles] == [
        ("Ada: Hello there.", 1.0),
        ("Bo: Hi Ada.", 62.0),
    ]


def test_chapters_from_topics_and_with_depth_two_sub_topics(
    alice: Caller, show: dict[str, Any]
) -> None:
    response = alice.get(f"/episodes/{show['done']}/chapters.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json+chapters"
    document = json.loads(response.text)
    assert check_chapters(document) == []
    assert (document["title"], document["podcastName"]) == ("Episode 2", "Test show")
    assert [(c["startTime"], c["title"]) for c in document["chapters"]] == [
        (0.0, "Hello"),
        (60.0, "Reply"),
    ]
    deeper = json.loads(alice.get(f"/episodes/{show['done']}/chapters.json?depth=2").text)
    assert check_chapters(deeper) == []
    assert [c["title"] for c in deeper["chapters"]] == ["Greeting", "Small talk", "Reply"]
    assert_error(alice.get(f"/episodes/{show['done']}/chapters.json?depth=3"), 422)


ROUTES = ["transcript.json", "transcript.vtt", "transcript.srt", "chapters.json"]


@pytest.mark.parametrize("name", ROUTES)
def test_not_processed_yet_unknown_and_another_tenants_are_404(
    alice: Caller, bob: Caller, show: dict[str, Any], name: str
) -> None:
    body = assert_error(alice.get(f"/episodes/{show['new']}/{name}"), 404, "not_found")
    assert "yet" in body["detail"]
    assert_error(alice.get(f"/episodes/nosuchkey/{name}"), 404, "not_found")
    assert_error(bob.get(f"/episodes/{show['done']}/{name}"), 404, "not_found")


def test_a_damaged_topic_tree_is_a_409(
    alice: Caller, show: dict[str, Any], platform: Platform
) -> None:
    path = platform.artifacts.path(show["done"], platform.fingerprint, "topics.json")
    path.write_text('{"root": {}}', encoding="utf-8")  # no longer what the manifest says
    assert_error(alice.get(f"/episodes/{show['done']}/chapters.json"), 409, "artifact_damaged")


def _items(document: bytes) -> list[ET.Element]:
    channel = ET.fromstring(document).find("channel")
    assert channel is not None
    return channel.findall("item")


def _tags(item: ET.Element, name: str) -> list[dict[str, str]]:
    return [dict(t.attrib) for t in item.findall(f"{{{PODCAST_NS}}}{name}")]


def test_the_enriched_feed_links_each_processed_episode_and_the_links_work(
    alice: Caller, bob: Caller, show: dict[str, Any]
) -> None:
    response = alice.get(f"/feeds/{show['feed']}/enriched.xml")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/rss+xml; charset=utf-8"
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title == "Test show"
    assert [e.id for e in parsed.entries] == ["item-2", "item-1", "item-0"]
    assert all(e.enclosures for e in parsed.entries)
    done, *others = _items(response.content)
    base = f"http://testserver/episodes/{show['done']}"
    assert _tags(done, "transcript") == [
        {"url": f"{base}/transcript.json", "type": "application/json"},
        {"url": f"{base}/transcript.vtt", "type": "text/vtt", "rel": "captions"},
        {"url": f"{base}/transcript.srt", "type": "application/x-subrip", "rel": "captions"},
    ]
    assert _tags(done, "chapters") == [
        {"url": f"{base}/chapters.json", "type": "application/json+chapters"}
    ]
    assert all(_tags(i, "transcript") == _tags(i, "chapters") == [] for i in others)
    for tag in [*_tags(done, "transcript"), *_tags(done, "chapters")]:
        linked = alice.get(urlsplit(tag["url"]).path)
        assert linked.status_code == 200, tag
        assert linked.headers["content-type"].startswith(tag["type"]), tag
    # bob has no subscription and none of its episodes: the feed is not his to see
    assert_error(bob.get(f"/feeds/{show['feed']}/enriched.xml"), 404, "not_found")
    assert_error(alice.get("/feeds/999999/enriched.xml"), 404, "not_found")


def test_base_url_makes_the_feeds_links(tmp_path: Path, db_url: str, live_feed: LiveFeed) -> None:
    from fastapi.testclient import TestClient

    from podmill.api.app import create_app

    settings = make_settings(tmp_path, db_url, base_url="https://pod.example.com/mill/")
    service = Platform(settings)
    try:
        service.create_tenant("carol")
        _, key = service.create_key("carol")
        with TestClient(create_app(settings)) as client:
            carol = Caller("carol", key, client)
            feed_id = carol.post("/subscriptions", json={"url": live_feed.url}).json()["feed_id"]
            newest = carol.get(f"/episodes?feed={feed_id}").json()[0]["episode_key"]
            finish_episode(service, newest)
            document = carol.get(f"/feeds/{feed_id}/enriched.xml").content
    finally:
        service.close()
    urls = [t["url"] for t in _tags(_items(document)[0], "chapters")]
    assert urls == [f"https://pod.example.com/mill/episodes/{newest}/chapters.json"]


def test_podmill_feed_writes_the_feed_and_its_files_for_a_static_host(
    api_settings: Settings, show: dict[str, Any], tmp_path: Path
) -> None:
    """``podmill feed`` on the same data: stdout, then --out DIR as a site to upload."""
    where = ["--db", api_settings.database_url, "--data-dir", api_settings.data_dir]
    base = "https://static.example/show"
    printed = run_cli("feed", str(show["feed"]), "--base-url", base, *where, timeout=120)
    assert printed.code == 0, printed.stderr
    items = _items(printed.stdout.encode())
    assert len(items) == 3
    assert _tags(items[0], "chapters")[0]["url"] == f"{base}/episodes/{show['done']}/chapters.json"

    site = tmp_path / "site"
    args = ["feed", "Test show", "--base-url", base, "--out", site, "--depth", "2", *where]
    written = run_cli(*args, timeout=120)
    assert written.code == 0, written.stderr
    assert feedparser.parse((site / "feed.xml").read_bytes()).entries[0].id == "item-2"
    folder = site / "episodes" / show["done"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(ROUTES)
    for tag in [*_tags(items[0], "transcript"), *_tags(items[0], "chapters")]:
        assert (site / tag["url"].removeprefix(base + "/")).is_file(), tag
    chapters = json.loads((folder / "chapters.json").read_text())
    assert check_chapters(chapters) == []
    assert [c["title"] for c in chapters["chapters"]] == ["Greeting", "Small talk", "Reply"]
    assert check_json_transcript(json.loads((folder / "transcript.json").read_text())) == []
    assert len(webvtt.from_string((folder / "transcript.vtt").read_text())) == 2
    assert len(list(srt.parse((folder / "transcript.srt").read_text()))) == 2

    bad = run_cli("feed", "1", "--base-url", "static.example/show", *where, timeout=120)
    assert bad.code != 0
    assert bad.error_line.startswith(
        "error: --base-url 'static.example/show' is not an absolute http(s) URL"
    )
