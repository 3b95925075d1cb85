"""The digest of a small library: ordering, the window, stories, duplicates, the time
budget and the versioned schema (real MiniLM vectors). What reads the database runs on
SQLite and Postgres (``library``); the rest on the embedded SQLite (``sqlite_library``)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from digest_library import CABLES, NOW, OTHER, STORM, Library, days_ago, timed

from podmill.digest import json_schema
from podmill.digest.build import SCHEMA, DigestOptions
from podmill.digest.collect import newest_finished_set
from podmill.digest.render import render
from podmill.digest.service import make_digest
from podmill.digest.window import WindowError, parse_window


def digest(library: Library, since: str = "7d", **options: Any) -> dict[str, Any]:
    feeds = options.pop("feeds", ())
    document = make_digest(
        library.engine,
        parse_window(since, None, NOW),
        newest_finished_set(library.settings.data_dir),
        NOW,
        options=DigestOptions(**options),
        feeds=feeds,
    )
    validate(document)
    return document


def validate(document: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(
        json_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(document)


@pytest.fixture
def week(sqlite_library: Library) -> Library:
    """Three shows, one week: a storm story in all three, a cable story in two."""
    library = sqlite_library
    library.add("Byte Sized", "Tech 1", days_ago(1), timed([STORM[0], OTHER[0], CABLES[0]]))
    library.add("World Desk", "World 1", days_ago(2.5), timed([CABLES[1], STORM[1], OTHER[1]]))
    library.add(
        "Lab Notes",
        "Lab 1",
        days_ago(4),
        timed([OTHER[2], STORM[2]]),
        children={0: timed([("Improvising", "How a saxophonist improvises a solo.")], 100)},
    )
    library.add("Lab Notes", "Lab 0", days_ago(9), timed([OTHER[3]]))  # before the window
    library.add("World Desk", "World 2", days_ago(0.5), timed([OTHER[4]]), processed=False)
    return library


def test_new_episodes_newest_first_in_the_window(week: Library) -> None:
    doc = digest(week)
    assert doc["schema"] == SCHEMA == "podmill.digest/1"
    assert [e["title"] for e in doc["episodes"]] == ["Tech 1", "World 1", "Lab 1"]
    published = [e["published"] for e in doc["episodes"]]
    assert published == sorted(published, reverse=True)
    assert doc["stats"]["not_processed"] == 1  # World 2 is in the catalog, not processed
    tech = doc["episodes"][0]
    assert tech["feed_title"] == "Byte Sized"
    assert tech["lead"].startswith("The strongest geomagnetic storm")
    assert [t["title"] for t in tech["top_topics"]] == [
        "Solar storm and satellites", "Sourdough starter", "Undersea cables cut"
    ]  # fmt: skip
    assert [t["start"] for t in tech["top_topics"]] == [0.0, 300.0, 600.0]
    assert [e["title"] for e in digest(week, since="10d")["episodes"]][-1] == "Lab 0"


def test_window_is_half_open(library: Library) -> None:
    library.add("Byte Sized", "At since", days_ago(7), timed([OTHER[0]]))
    library.add("Byte Sized", "At until", NOW, timed([OTHER[1]]))
    assert [e["title"] for e in digest(library)["episodes"]] == ["At since"]


def test_stories_group_topics_across_shows(week: Library) -> None:
    doc = digest(week)
    stories = {
        frozenset((t["feed_title"], t["title"]) for t in s["topics"]) for s in doc["stories"]
    }
    assert stories == {
        frozenset({("Byte Sized", STORM[0][0]), ("World Desk", STORM[1][0]),
                   ("Lab Notes", STORM[2][0])}),
        frozenset({("Byte Sized", CABLES[0][0]), ("World Desk", CABLES[1][0])}),
    }  # fmt: skip
    storm = doc["stories"][0]  # three feeds rank above two
    assert (storm["feeds"], storm["episodes"]) == (3, 3)
    assert storm["title"] in {t[0] for t in STORM}
    assert sum(t["central"] for t in storm["topics"]) == 1
    tagged = {t["title"]: t["story_id"] for e in doc["episodes"] for t in e["top_topics"]}
    assert tagged[STORM[0][0]] == storm["id"]
    assert tagged[OTHER[0][0]] is None


def test_a_higher_threshold_splits_stories(week: Library) -> None:
    assert digest(week, threshold=0.99)["stories"] == []


def test_one_episodes_similar_topics_are_not_a_story(sqlite_library: Library) -> None:
    library = sqlite_library
    library.add("Byte Sized", "Storm special", days_ago(1), timed(STORM))
    assert digest(library)["stories"] == []


def test_duplicate_recordings_are_removed(library: Library) -> None:
    library.add("Byte Sized", "Storm night", days_ago(1), timed([STORM[0]]), audio_sha256="a" * 64)
    library.add("World Desk", "Relay: storm", days_ago(2), timed([STORM[0]]), audio_sha256="a" * 64)
    library.add("Lab Notes", "Storm night", days_ago(3), timed([STORM[0]]))  # rebroadcast
    library.add("Lab Notes", "Storm, later", days_ago(3), timed([STORM[1], OTHER[0]]))
    doc = digest(library, budget_seconds=3600)
    assert [e["title"] for e in doc["episodes"]] == ["Storm night", "Storm, later"]
    assert {d["feed_title"] for d in doc["episodes"][0]["also_in"]} == {"World Desk", "Lab Notes"}
    assert doc["stats"]["duplicates_removed"] == 2
    (story,) = doc["stories"]
    assert story["episodes"] == 2  # the copies do not make the story bigger
    heard = [(i["episode_key"], i["title"]) for i in doc["listen"]["items"]]
    assert len(heard) == len(set(heard))
    assert sum(i["story_id"] == story["id"] for i in doc["listen"]["items"]) == 1


def test_budget_fits_and_hears_each_story_once(week: Library) -> None:
    doc = digest(week, budget_seconds=20 * 60)
    listen = doc["listen"]
    assert listen["total_seconds"] == pytest.approx(sum(i["duration"] for i in listen["items"]))
    assert listen["total_seconds"] <= 20 * 60
    assert len(listen["items"]) == 4  # four 5-minute topics fill 20 minutes
    stories = [i["story_id"] for i in listen["items"] if i["story_id"]]
    assert len(stories) == len(set(stories)) == 2
    assert listen["items"][0]["story_id"] == doc["stories"][0]["id"]  # most shows first
    relevance = [i["relevance"] for i in listen["items"]]
    assert relevance == sorted(relevance, reverse=True)
    for item in listen["items"]:
        assert item["end"] - item["start"] == pytest.approx(item["duration"])


def test_a_sub_topic_stands_in_when_its_topic_is_too_long(week: Library) -> None:
    doc = digest(week, budget_seconds=15 * 60 + 100)
    items = doc["listen"]["items"]
    assert sum(i["duration"] for i in items) <= 15 * 60 + 100
    assert ("Improvising", 2, 100.0) in {(i["title"], i["level"], i["duration"]) for i in items}


def test_nothing_fits_a_tiny_budget(week: Library) -> None:
    doc = digest(week, budget_seconds=30)
    assert doc["listen"] == {"budget_seconds": 30, "total_seconds": 0, "items": []}


def test_no_budget_no_listen_list(week: Library) -> None:
    assert digest(week)["listen"] is None


def test_feed_filter_by_title_key_or_id(week: Library) -> None:
    by_title = digest(week, feeds=("lab notes",))
    assert [e["title"] for e in by_title["episodes"]] == ["Lab 1"]
    feed_id = by_title["episodes"][0]["feed_id"]
    assert by_title["feeds"] == [feed_id]
    assert [e["title"] for e in digest(week, feeds=(str(feed_id),))["episodes"]] == ["Lab 1"]
    with pytest.raises(WindowError, match=r"--feed 'Nope': no such feed \(feeds: 1 Byte Sized"):
        digest(week, feeds=("Nope",))


def test_an_empty_window_is_a_valid_digest(week: Library) -> None:
    doc = digest(week, since="1h")
    assert doc["episodes"] == doc["stories"] == []
    assert "No new processed episodes" in render(doc, "md")


def test_schema_rejects_what_it_does_not_describe(week: Library) -> None:
    doc = digest(week, budget_seconds=600)
    broken = {**doc, "schema": "podmill.digest/2"}
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    extra = {**doc, "episodes": [{**doc["episodes"][0], "surprise": 1}]}
    with pytest.raises(jsonschema.ValidationError):
        validate(extra)


HOSTILE = '<script>alert("x")</script> *bold* [link](javascript:x) # & done'


def test_markdown_and_html_escape_what_feeds_and_transcripts_say(sqlite_library: Library) -> None:
    library = sqlite_library
    library.add(HOSTILE, HOSTILE, days_ago(1), timed([(HOSTILE, HOSTILE)]))
    library.add("Other", "Other", days_ago(2), timed([(HOSTILE, HOSTILE)]))
    doc = digest(library, budget_seconds=3600)
    page = render(doc, "html")
    assert page.startswith("<!doctype html>")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "src=" not in page and "href=" not in page  # standalone: loads nothing
    md = render(doc, "md")
    assert "<script>" not in md
    assert r"\<script\>" in md and r"\*bold\*" in md and r"\[link\](javascript:x)" in md
    assert "[link]" not in md.replace(r"\[link\]", "")  # no bracket left to open a link
    assert "\n# " not in md.split("\n", 1)[1]  # a title cannot open a heading


def test_a_local_file_without_date_or_feed_counts_from_when_podmill_saw_it(
    sqlite_library: Library,
) -> None:
    from datetime import UTC, datetime

    sqlite_library.add(None, "Voice memo", None, timed([OTHER[0]]))
    now = datetime.now(UTC)
    doc = make_digest(
        sqlite_library.engine,
        parse_window("1h", None, now),
        newest_finished_set(sqlite_library.settings.data_dir),
        now,
        options=DigestOptions(budget_seconds=600),
    )
    validate(doc)
    (episode,) = doc["episodes"]
    assert (episode["title"], episode["feed_title"], episode["feed_id"]) == (
        "Voice memo",
        None,
        None,
    )
    assert doc["listen"]["items"][0]["reason"] == "new in your episodes"
    md, page = render(doc, "md"), render(doc, "html")
    assert "Voice memo" in md and "Voice memo" in page
    # no dangling separator where the feed title would go; one episode is not "episodes"
    assert "### Voice memo\n" in md and "1 new episode, 0 stories" in md
    assert "Voice memo, \n" not in md and "<p class=meta> · " not in page
