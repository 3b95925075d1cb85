"""``podmill mcp``: a real subprocess over a data dir ``podmill run`` wrote, driven by the
official SDK's client over stdio, one session for the module (as an assistant keeps it).

Each tool is called and checked against the artifacts on disk: hits and topic spans
cite the episode key and times, a transcript span holds exactly the words said in it,
the digest covers the processed episodes, submit says how to process a URL instead
(the embedded server writes nothing), and the episode resources read as outlines.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podmill.timespec import clock

from support import bare
from support.browser import ViewerData
from support.mcp_client import SyncClient, stdio_session
from support.paths import DEMO

# The first test builds the session's data (real `podmill run`s of two feeds): minutes on
# a loaded machine, so a bound above the suite's 600 s (a safety bound, not a check).
pytestmark = pytest.mark.timeout(1800)
TOOLS = {"search", "list_episodes", "get_episode_tree", "get_transcript_span", "digest"}
AT = re.compile(r"^\d+:\d\d(:\d\d)?–\d+:\d\d(:\d\d)?$")


@pytest.fixture(scope="module")
def stdio(mcp_data: ViewerData) -> Iterator[SyncClient]:
    with stdio_session(mcp_data.data_dir) as client:
        yield client


def _three_topics(data: ViewerData) -> str:
    return data.titled("Coffee, Mars rovers").key


def _artifact(data: ViewerData, key: str, name: str) -> Any:
    [path] = (data.data_dir / "episodes" / key).glob(f"*/{name}")
    return json.loads(path.read_text())


def _assert_cites(item: dict[str, Any], key: str) -> None:
    """An item of a result names its episode and time span, three ways."""
    if "episode_key" in item:
        assert item["episode_key"] == key, item
    assert 0 <= item["start"] < item["end"], item
    assert AT.match(item["at"]) and item["at"] == f"{clock(item['start'])}–{clock(item['end'])}"
    assert f"[{key}] {item['at']}" in item["cite"], item


def test_the_tools_and_episode_resources_are_listed(stdio: SyncClient) -> None:
    tools = stdio.tools()
    assert set(tools) == {*TOOLS, "submit_url"}
    for name in TOOLS:
        assert tools[name].annotations.read_only_hint is True, name
        assert tools[name].description, name
    assert tools["search"].input_schema["required"] == ["query"]
    assert set(stdio.templates()) == {
        "podmill://episodes/{episode_key}",
        "podmill://episodes/{episode_key}/transcript",
    }


def test_list_episodes_shows_every_processed_episode_of_the_data_dir(
    stdio: SyncClient, mcp_data: ViewerData
) -> None:
    listed = stdio.ok("list_episodes")["episodes"]
    assert sorted(e["episode_key"] for e in listed) == sorted(e.key for e in mcp_data.episodes)
    assert {e["status"] for e in listed} == {"done"}
    for episode in listed:
        assert episode["uri"] == f"podmill://episodes/{episode['episode_key']}"
        assert episode["duration"] == clock(episode["duration_seconds"])
    only = stdio.ok("list_episodes", {"title_contains": "COUNTRY"})["episodes"]
    assert [e["title"] for e in only] == ["Ask not what your country can do for you"]
    talk = stdio.ok("list_episodes", {"feed": "talk show"})["episodes"]
    assert sorted(e["episode_key"] for e in talk) == sorted(
        e.key for e in mcp_data.of_feed(mcp_data.demo_feed)
    )


def test_search_finds_the_topic_and_cites_episode_and_times(
    stdio: SyncClient, mcp_data: ViewerData
) -> None:
    key = _three_topics(mcp_data)
    result = stdio.ok("search", {"query": "robotic rovers exploring Mars", "limit": 5})
    hits = result["hits"]
    assert hits and hits[0]["episode_key"] == key, hits
    # the best hit overlaps the Mars part as the demo episode was written (its ground truth)
    mars = json.loads((DEMO / "three-topics.json").read_text())["topics"][1]
    assert "Mars" in mars["text"]
    assert hits[0]["start"] < mars["end"] and hits[0]["end"] > mars["start"], (hits[0], mars)
    for hit in hits:
        _assert_cites(hit, hit["episode_key"])
        assert hit["uri"] == f"podmill://episodes/{hit['episode_key']}"
    # the feed filter is a feed of the library, named by id, URL or title
    query = {"query": "robotic rovers exploring Mars", "feed": mcp_data.hostile_feed}
    other = stdio.ok("search", query)
    assert {h["episode_key"] for h in other["hits"]} <= {mcp_data.hostile.key}
    assert "no feed 'no such show'" in stdio.error(
        "search", {"query": "Mars", "feed": "no such show"}
    )


def test_episode_tree_is_the_topic_tree_with_times(stdio: SyncClient, mcp_data: ViewerData) -> None:
    key = _three_topics(mcp_data)
    answer = stdio.ok("get_episode_tree", {"episode_key": key})
    on_disk = _artifact(mcp_data, key, "topics.json")["root"]
    tree = answer["tree"]
    assert answer["status"] == "done" and answer["uri"] == f"podmill://episodes/{key}"
    assert [c["title"] for c in tree["children"]] == [c["title"] for c in on_disk["children"]]
    assert len(tree["children"]) >= 2
    for node, disk in zip(tree["children"], on_disk["children"]):
        _assert_cites(node, key)
        assert (node["start"], node["end"]) == (round(disk["start"], 2), round(disk["end"], 2))
    shallow = stdio.ok("get_episode_tree", {"episode_key": key, "depth": 0})["tree"]
    assert shallow["children"] == [] and shallow["title"] == tree["title"]
    assert "no episode 'feedfacefeedface'" in stdio.error(
        "get_episode_tree", {"episode_key": "feedfacefeedface"}
    )


def test_transcript_span_holds_the_words_said_in_it(
    stdio: SyncClient, mcp_data: ViewerData
) -> None:
    key = _three_topics(mcp_data)
    topic = _artifact(mcp_data, key, "topics.json")["root"]["children"][1]
    start, end = topic["start"], topic["end"]
    answer = stdio.ok("get_transcript_span", {"episode_key": key, "start": start, "end": end})
    words = [
        w["text"].strip()
        for seg in _artifact(mcp_data, key, "transcript.json")["segments"]
        for w in seg["words"]
        if w["end"] > start and w["start"] < end
    ]
    assert answer["text"].split() == words
    assert answer["segments"] and answer["cite"].startswith('"Coffee, Mars rovers')
    _assert_cites(answer, key)
    for segment in answer["segments"]:
        assert start - 1 <= segment["start"] < segment["end"] <= end + 1, segment
    assert "must be after start" in stdio.error(
        "get_transcript_span", {"episode_key": key, "start": 20, "end": 10}
    )
    assert "no words between" in stdio.error(
        "get_transcript_span", {"episode_key": key, "start": 9000, "end": 9010}
    )


def test_digest_covers_the_processed_episodes(stdio: SyncClient, mcp_data: ViewerData) -> None:
    answer = stdio.ok("digest", {"since": "2025-01-01", "format": "md"})
    document = answer["digest"]
    assert document["schema"] == "podmill.digest/1"
    assert {e["episode_key"] for e in document["episodes"]} == {e.key for e in mcp_data.episodes}
    assert "Coffee, Mars rovers" in answer["markdown"]
    assert "not a time" in stdio.error("digest", {"since": "not a time"})


def test_submit_says_how_to_process_a_url_and_writes_nothing(
    stdio: SyncClient, mcp_data: ViewerData
) -> None:
    url = "https://example.com/new-episode.mp3"
    message = stdio.error("submit_url", {"url": url})
    assert f"podmill run {url} --data-dir {mcp_data.data_dir}" in message, message
    assert "/mcp" in message and "read-only" in message
    assert len(stdio.ok("list_episodes")["episodes"]) == len(mcp_data.episodes)


def test_episode_resources_read_as_outline_and_timed_transcript(
    stdio: SyncClient, mcp_data: ViewerData
) -> None:
    from mcp import MCPError

    key = _three_topics(mcp_data)
    outline = stdio.read(f"podmill://episodes/{key}")
    assert outline.startswith("# Coffee, Mars rovers and a first marathon\n")
    assert f"- episode key: {key}" in outline
    for topic in _artifact(mcp_data, key, "topics.json")["root"]["children"]:
        line = f"- [{clock(topic['start'])}–{clock(topic['end'])}] {topic['title']}"
        assert line in outline, (line, outline)
    transcript = stdio.read(f"podmill://episodes/{key}/transcript")
    lines = transcript.splitlines()
    assert lines[0] == f"# Coffee, Mars rovers and a first marathon [{key}]"
    assert all(re.match(r"^\[\d+:\d\d–\d+:\d\d\] \S", line) for line in lines[1:]), lines
    assert "coffee" in transcript.lower()
    with pytest.raises(MCPError, match="no episode"):
        stdio.read("podmill://episodes/feedfacefeedface")


def test_without_the_mcp_extra_the_command_names_it(tmp_path: Path) -> None:
    installed = tuple(e for e in bare.extras() if e != "mcp")
    site = bare.write_sitecustomize(tmp_path / "site", ("mcp",), installed)
    src = Path(__file__).resolve().parents[2] / "src"
    result = subprocess.run(
        [sys.executable, "-m", "podmill", "mcp", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{site}:{src}", "PATH": "/usr/bin:/bin"},
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.strip() == (
        "error: podmill mcp needs the 'mcp' extra (missing module 'mcp'): "
        "pip install 'podmill[mcp]'"
    ), result.stderr
