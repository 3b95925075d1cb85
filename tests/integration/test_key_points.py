"""Key points are never filler, on real publisher transcripts (issue 17, item 6).

The topic stages run for real (real embedder) on the podcast-namespace transcripts of
a real Buzzsprout episode, whose speech has "Yes, no.", "Too.", "So you can start."
among its sentences; before the filter several of them became key points. The LLM's
key points pass the same filter (a scripted chat server answers with filler).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podmill.domain import Episode, TranscriptLink
from podmill.engine.runner import run_pipeline
from podmill.settings import Settings

from support.paths import FIXTURES

pytestmark = pytest.mark.slow

# The test's own notion of filler, written independently of podmill's stop list: fewer
# than three distinct words (two letters or more) outside these function words and
# interjections says nothing on its own.
FUNCTION_WORDS = set(
    """a an the and or but so if then than that this these those there here it its it's is
    are was were be been being am do does did done have has had i i'm you you're we we're
    they they're he she him her his them our your my me us to of in on at by for with from
    up down out about into over as not no yes yeah yep ok okay oh ah uh um mm hmm mhm huh
    right well just like really very too also now what who why how when where which can
    could would should will going get got go say said know think thing things all some any
    one two three first next start let let's sure mean kind sort lot""".split()
)
WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")

TRANSCRIPTS = [
    ("podcast-namespace__buzzsprout-10-things.srt", "application/srt"),
    ("podcast-namespace__buzzsprout-10-things.vtt", "text/vtt"),
    ("podcast-namespace__buzzsprout-10-things.html", "text/html"),
    ("podcast-namespace__podcasting-qa-trailer.vtt", "text/vtt"),
]
CORPUS = sorted((FIXTURES / "corpus" / "transcripts").iterdir())
CORPUS_MIME = {".srt": "application/srt", ".vtt": "text/vtt", ".json": "application/json"}


def is_filler(point: str) -> bool:
    words = set(WORD.findall(point.lower().replace("’", "'")))
    return len(words - FUNCTION_WORDS - {w for w in words if len(w) < 2}) < 3


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node["children"]:
        yield from nodes(child)


def tree_of(path: Path, mime: str, tmp_path: Path) -> dict[str, Any]:
    settings = Settings(data_dir=tmp_path / "data")
    episode = Episode(
        episode_key=re.sub(r"\W", "-", path.name),
        title=path.name,
        audio_url=None,
        transcripts=[TranscriptLink(url=path.resolve().as_uri(), mime_type=mime)],
        allow_file_urls=True,
    )
    run_pipeline(settings, episode, end_stage="synthesize")
    (topics,) = (settings.data_dir).rglob("topics.json")
    return json.loads(topics.read_text())["root"]


def test_the_rule_of_this_test_flags_the_issues_examples() -> None:
    for filler in ("Yeah.", "Right?", "So.", "Okay.", "Mm-hmm.", "42.", "So you can start."):
        assert is_filler(filler), filler
    assert not is_filler("Water deeply in the morning before the soil dries.")


@pytest.mark.parametrize(("name", "mime"), TRANSCRIPTS, ids=[t[0] for t in TRANSCRIPTS])
def test_no_key_point_of_a_publisher_transcript_is_filler(
    name: str, mime: str, tmp_path: Path
) -> None:
    root = tree_of(FIXTURES / "transcripts" / name, mime, tmp_path)
    points = [(node["id"], point) for node in nodes(root) for point in node["key_points"]]
    assert points, "the tree has key points"
    assert [(i, p) for i, p in points if is_filler(p)] == []
    # the root's points are "topic title: that topic's point"; the point itself counts
    assert [p for p in root["key_points"] if is_filler(p.partition(": ")[2])] == []


def test_no_key_point_of_the_corpus_is_filler(tmp_path: Path) -> None:
    points = []
    for path in CORPUS:
        root = tree_of(path, CORPUS_MIME[path.suffix], tmp_path / path.stem)
        points += [(path.name, p) for node in nodes(root) for p in node["key_points"]]
    assert points, "the trees have key points"
    assert [(name, p) for name, p in points if is_filler(p)] == []


def test_an_llms_filler_key_points_are_dropped(tmp_path: Path) -> None:
    from support.llmserver import Scripted, ScriptedChatServer, completion

    point = "Record each episode in a quiet room with soft furnishings."
    answer = {
        "title": "Podcast trailers",
        "summary": "What a podcast trailer should include.",
        "key_points": ["Yeah.", "42", point],  # three: the schema's maximum
    }

    def respond(body: dict[str, Any]) -> Scripted:
        schema = json.dumps(body.get("response_format") or {})
        if "key_points" in schema:
            return completion(json.dumps(answer))
        return Scripted(500, b"only summaries here")  # boundaries, decide: extractive

    server = ScriptedChatServer(responder=respond)
    name = "podcast-namespace__podcasting-qa-trailer.vtt"
    settings = Settings(
        data_dir=tmp_path / "data",
        topics={"backend": "llm"},
        llm={"backoff_seconds": 0.01, "max_retries": 0, "base_url": server.base_url},
    )
    episode = Episode(
        episode_key="llm-trailer",
        title="Trailer",
        audio_url=None,
        transcripts=[
            TranscriptLink(
                url=(FIXTURES / "transcripts" / name).resolve().as_uri(), mime_type="text/vtt"
            )
        ],
        allow_file_urls=True,
    )
    with server.running():
        run_pipeline(settings, episode, end_stage="synthesize")
    (topics,) = settings.data_dir.rglob("topics.json")
    root = json.loads(topics.read_text())["root"]
    assert [node["title"] for node in nodes(root)][1:] == ["Podcast trailers"]  # the LLM's
    assert [node["key_points"] for node in nodes(root)] == [[point]] * len(list(nodes(root)))
